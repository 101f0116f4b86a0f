"""Commands in a lab host: a finished one (ExecResult) and one still running (RunningExec),
and what runs them: the protocols the lab's users type against (Hosts, PlacedHosts; a
command left running is a Running), so that a Lab, the user-mode kernel's UmlLab and the
swarm's underlay taps each are what they are, checked, and none pretends to be another.

A running command's first line, printed by its launcher, is its pid in the host, so it can be
signalled by pid; every command is bounded in time inside its host (`timeout`), so nothing
outlives its budget whatever happens on this side.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from socketlab.errors import LabTimeout

if TYPE_CHECKING:
    from socketlab.lab.config import LabConfig
    from socketlab.lab.topology import Topology

PID_PREFIX = "socketlab-pid="  # the launcher's first line: the command's pid in its host


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float


class Running(Protocol):
    """A command left running in a host, read line by line as it prints: RunningExec (a
    Docker exec), UmlExec (a command in the user-mode kernel, socketlab.tools.uml)."""

    stdout_lines: list[str]
    pid: str | None

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...

    def wait_for(self, match: Callable[[str], object], timeout: float) -> str | None: ...

    def wait_pid(self, timeout: float) -> str | None: ...

    def wait(self, timeout: float) -> int: ...

    def release(self, go: bool = True) -> None: ...

    def signal(self, name: str = "TERM") -> bool: ...


class Hosts(Protocol):
    """Commands in a lab's named hosts, with the lab's settings: a Lab; the swarm's underlay
    taps (observe/underlay.py); the user-mode kernel's two hosts (socketlab.tools.uml)."""

    @property
    def config(self) -> LabConfig: ...

    def exec(self, host: str, argv: Sequence[str], *, timeout: float | None = None,
             instruments: bool = False) -> ExecResult: ...

    def start(self, host: str, argv: Sequence[str], *, timeout: float, gated: bool = False,
              instruments: bool = False) -> Running: ...


class PlacedHosts(Hosts, Protocol):
    """Hosts that are a topology's, asked who is where (roles, addresses): what programs and
    shaping need. A Lab; the user-mode kernel's UmlLab."""

    @property
    def topology(self) -> Topology: ...


class RunningExec:
    """A command left running in a host; its output lines arrive as they are printed.
    Its first line (from the launcher) is its pid in the host, so it can be signalled."""

    def __init__(self, stream: Iterator, exit_code: Callable[[], int],
                 kill: Callable[[str, str], bool] | None = None, gate=None) -> None:
        """stream: (stdout, stderr) chunks; exit_code: the ended command's exit code (from
        its engine); kill(pid, signal name): signal a process in the same host."""
        self._exit_code, self._kill = exit_code, kill
        self._gate = gate  # the exec's stdin socket, for a command started gated
        self.pid: str | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout_lines: list[str] = []
        self.stderr = ""
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Iterator) -> None:
        pending = ""
        try:
            for out, err in stream:
                self.stderr += (err or b"").decode(errors="replace")
                pending += (out or b"").decode(errors="replace")
                *complete, pending = pending.split("\n")
                for line in complete:
                    self._lines.put(line)
        finally:
            if pending:
                self._lines.put(pending)
            self._lines.put(None)

    def wait_for(self, match: Callable[[str], object], timeout: float) -> str | None:
        """The first new line for which `match` is true; None if the command ended first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._lines.put(None)  # keep the end marker for later readers
                return None
            if self.pid is None and line.startswith(PID_PREFIX):
                self.pid = line[len(PID_PREFIX):].strip()
                continue
            self.stdout_lines.append(line)
            if match(line):
                return line
        raise LabTimeout(f"no matching output after {timeout:g} s",
                         hint="output so far: " + " | ".join(self.stdout_lines[-5:]))

    def wait_pid(self, timeout: float) -> str | None:
        """The command's pid in its host (the launcher's first line); None if it ended first.
        Reads no further than that line."""
        deadline = time.monotonic() + timeout
        while self.pid is None and (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._lines.put(None)
                return None
            if line.startswith(PID_PREFIX):
                self.pid = line[len(PID_PREFIX):].strip()
            else:
                self.stdout_lines.append(line)
        return self.pid

    def wait(self, timeout: float) -> int:
        """Wait for the end of the command; its exit code."""
        self.wait_for(lambda _line: False, timeout)
        self._thread.join(timeout=1)
        if self._gate is not None:
            self._gate.close()
        return self._exit_code()

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    def release(self, go: bool = True) -> None:
        """Let a gated command run (go), or end it before it ever started (not go)."""
        if self._gate is not None:
            self._gate.sendall(b"go\n" if go else b"stop\n")

    def signal(self, name: str = "TERM") -> bool:
        """Send a signal (TERM, INT, KILL, ...) to this command only; False if it has ended."""
        if self.pid is None:
            self.wait_pid(5)  # the pid line comes first
        if self.pid is None or self._kill is None:
            return False
        return self._kill(self.pid, name)


PROGRAM_LAUNCHER = "lab-program"  # images/lab/bin/lab-program
GATE = "/lab/bin/lab-gate"  # the lab image's warm gate for its own Python programs


def launch_argv(argv: Sequence[str], timeout: float, gated: bool = False) -> list[str]:
    """How a command is started in a host: its pid printed first (PID_PREFIX), bounded by
    `timeout`; gated, it waits for a line "go" on stdin before it runs (anything else: exit
    125). A gated Python program of the lab image (`python3 /lab/....py`) waits in lab-gate,
    its interpreter already started and its modules imported, so "go" runs it at once."""
    argv = list(argv)
    at = 1 if argv[:1] == [PROGRAM_LAUNCHER] else 0  # as the program user: the gate runs as it too
    if gated and len(argv) > at + 1 and argv[at] == "python3" and argv[at + 1].startswith("/lab/") \
            and argv[at + 1].endswith(".py"):
        argv, gated = [*argv[:at + 1], GATE, *argv[at + 1:]], False  # lab-gate does the waiting
    wait = 'read go; [ "$go" = go ] || exit 125; ' if gated else ""
    return ["sh", "-c", f'echo "{PID_PREFIX}$$"; {wait}exec "$@"', "sh", *bounded(argv, timeout)]


def bounded(argv: Sequence[str], timeout: float | None) -> list[str]:
    """`timeout` inside the host: a command never outlives its budget, whatever the host side does."""
    if timeout is None:
        return list(argv)
    return ["timeout", "-k", "1", f"{timeout:g}", *argv]


def as_program(argv: Sequence[str]) -> list[str]:
    """`argv` run as the lab's program user: not root, no capabilities, no way to gain any,
    and only in a sealed host (lab-program). Every program a user or an experiment runs in a
    lab host goes through this; the lab's own tools (tcpdump, tc, iptables) do not."""
    return [PROGRAM_LAUNCHER, *argv]
