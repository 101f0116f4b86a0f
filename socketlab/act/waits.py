"""Readiness waits, as testcontainers' wait strategies: a port that accepts, a log line, a
command that succeeds; each checked inside the lab, within one budget, and a failure that
names what never became ready (with its host's last log lines).

    wait_for(lab, PortOpen("server", 6379), LogLine("server", r"Ready to accept"),
             CommandSucceeds("server", ["redis-cli", "ping"]), timeout=30)

A port is tried from inside the lab, never from this process (the lab's addresses are not
reachable from here, by design): `nc -z` from the host itself (its instruments, so an image of
your own needs no nc), or from another host with `from_host="client"`, which also proves the
path between them. A UDP port is "open" once something has bound it (`ss`): UDP accepts nothing.
A log line is looked for in the host's own output (its container's log: its image's command).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from socketlab.errors import ConfigError, LabTimeout
from socketlab.lab.process import ExecResult

CHECK_S = 5.0  # the most one check may take in its host
LOG_TAIL = 5  # lines of the host's log a failure shows


class _Addresses(Protocol):
    def ip(self, host: str) -> str: ...


class Probed(Protocol):
    """What the waits ask of a lab (socketlab.Lab answers it)."""

    @property
    def topology(self) -> _Addresses: ...

    def exec(self, host: str, argv: Sequence[str], *, timeout: float | None = None,
             instruments: bool = False) -> ExecResult: ...

    def logs(self, host: str) -> str: ...


@dataclass(frozen=True)
class PortOpen:
    host: str
    port: int
    proto: str = "tcp"
    from_host: str | None = None  # where the connection is tried from (default: the host)

    def __post_init__(self) -> None:
        if self.proto not in ("tcp", "udp") or not 1 <= self.port <= 65535:
            raise ConfigError(f"cannot wait for {self.proto} port {self.port}",
                              hint="give a port from 1 to 65535, proto tcp or udp")
        if self.proto == "udp" and self.from_host:
            raise ConfigError("a UDP port can only be checked in its own host (UDP accepts "
                              "nothing)", hint="leave from_host out for proto='udp'")

    def __str__(self) -> str:
        where = f" (tried from {self.from_host})" if self.from_host else ""
        return f"{self.host}'s {self.proto.upper()} port {self.port} open{where}"

    def check(self, lab: Probed) -> tuple[bool, str]:
        if self.proto == "udp":
            done = lab.exec(self.host, ["ss", "-Hlun", f"sport = :{self.port}"],
                            timeout=CHECK_S, instruments=True)
            return bool(done.stdout.strip()), "nothing has bound it"
        ip = lab.topology.ip(self.host)
        done = lab.exec(self.from_host or self.host, ["nc", "-z", "-w", "1", ip, str(self.port)],
                        timeout=CHECK_S, instruments=True)
        return done.exit_code == 0, (done.stderr.strip().splitlines() or ["refused"])[-1]


@dataclass(frozen=True)
class LogLine:
    host: str
    pattern: str  # a regular expression, searched line by line
    times: int = 1  # how many lines must match (e.g. a restart prints it twice)

    def __str__(self) -> str:
        many = f" {self.times} times" if self.times > 1 else ""
        return f"a line matching {self.pattern!r} in {self.host}'s log{many}"

    def check(self, lab: Probed) -> tuple[bool, str]:
        found = [ln for ln in lab.logs(self.host).splitlines() if re.search(self.pattern, ln)]
        return len(found) >= self.times, f"{len(found)} matching line(s)"


@dataclass(frozen=True)
class CommandSucceeds:
    host: str
    argv: tuple[str, ...]

    def __init__(self, host: str, argv: Sequence[str]) -> None:
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "argv", tuple(argv))

    def __str__(self) -> str:
        return f"`{' '.join(self.argv)}` succeeding in {self.host}"

    def check(self, lab: Probed) -> tuple[bool, str]:
        done = lab.exec(self.host, self.argv, timeout=CHECK_S)
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return done.exit_code == 0, f"exit {done.exit_code}" + (f": {said[-1]}" if said else "")


Condition = PortOpen | LogLine | CommandSucceeds


def wait_for(lab: Probed, *conditions: Condition, timeout: float = 30.0, interval: float = 0.25,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, float]:
    """Wait until every condition holds (each checked until it does, then not again); how long
    each took, in seconds. LabTimeout names those that never held, and why, after `timeout`."""
    start = clock()
    took: dict[str, float] = {}
    last: dict[str, str] = {}
    while True:
        for c in conditions:
            if str(c) not in took:
                ok, last[str(c)] = c.check(lab)
                if ok:
                    took[str(c)] = clock() - start
        if len(took) == len({str(c) for c in conditions}):
            return took
        if clock() - start >= timeout:
            raise _timeout(lab, [c for c in conditions if str(c) not in took], last, timeout)
        sleep(interval)


def _timeout(lab: Probed, waiting: list[Condition], last: dict[str, str],
             timeout: float) -> LabTimeout:
    what = "; ".join(f"{c} (last: {last[str(c)]})" for c in waiting)
    tails = []
    for host in dict.fromkeys(c.host for c in waiting):
        try:
            lines = lab.logs(host).splitlines()[-LOG_TAIL:]
        except Exception as e:  # the log is for the reader; its absence must not hide the wait
            lines = [f"(its log could not be read: {e})"]
        tails.append(f"{host}'s last log lines: " + (" | ".join(lines) or "(none)"))
    return LabTimeout(f"not ready after {timeout:g} s: {what}",
                      hint="; ".join(tails) + "; give it more time with timeout=")
