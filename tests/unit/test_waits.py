"""Readiness waits (socketlab.act.waits) against a made-up lab whose hosts get ready after a
number of checks, on a made-up clock: what each condition runs, where, and the failure's words."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from socketlab.act.waits import CommandSucceeds, LogLine, PortOpen, wait_for
from socketlab.errors import ConfigError, LabTimeout
from socketlab.lab.process import ExecResult


class Addresses:
    def ip(self, host: str) -> str:
        return {"server": "10.0.0.5", "client": "10.0.0.6"}[host]


class SlowLab:
    """Each command fails until it has been run `ready_after` times; logs grow per read."""

    def __init__(self, ready_after: int = 3, log: str = "starting\nReady to accept\n") -> None:
        self.ready_after, self.log = ready_after, log
        self.runs: list[tuple[str, tuple[str, ...], bool]] = []
        self.topology = Addresses()

    def exec(self, host: str, argv: Sequence[str], *, timeout: float | None = None,
             instruments: bool = False) -> ExecResult:
        self.runs.append((host, tuple(argv), instruments))
        ok = len(self.runs) >= self.ready_after
        out = "UNCONN 0 0 0.0.0.0:53 0.0.0.0:*\n" if ok else ""
        return ExecResult(0 if ok else 1, out, "" if ok else "connection refused", 0.01)

    def logs(self, host: str) -> str:
        return self.log


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_a_port_is_tried_inside_the_lab_until_it_accepts():
    lab, clock = SlowLab(3), Clock()
    took = wait_for(lab, PortOpen("server", 6379), interval=0.5, clock=clock, sleep=clock.sleep)
    assert list(took.values()) == [1.0]
    assert lab.runs == [("server", ("nc", "-z", "-w", "1", "10.0.0.5", "6379"), True)] * 3


def test_a_port_from_another_host_and_a_udp_port():
    lab = SlowLab(1)
    wait_for(lab, PortOpen("server", 6379, from_host="client"), PortOpen("server", 53, "udp"))
    assert lab.runs[0][0] == "client"
    assert lab.runs[1] == ("server", ("ss", "-Hlun", "sport = :53"), True)


def test_a_log_line_and_a_command():
    lab, clock = SlowLab(2), Clock()
    wait_for(lab, LogLine("server", r"Ready to accept"), CommandSucceeds("server", ["redis-cli", "ping"]),
             clock=clock, sleep=clock.sleep)
    assert lab.runs == [("server", ("redis-cli", "ping"), False)] * 2  # the log is read, not run


def test_a_condition_that_never_holds_is_named_with_the_hosts_last_log_lines():
    lab, clock = SlowLab(10**6, log="\n".join(f"line {i}" for i in range(9))), Clock()
    with pytest.raises(LabTimeout) as e:
        wait_for(lab, PortOpen("server", 6379), LogLine("server", "line 3"), timeout=2,
                 clock=clock, sleep=clock.sleep)
    assert str(e.value) == ("not ready after 2 s: server's TCP port 6379 open "
                            "(last: connection refused)")
    assert "server's last log lines: line 4 | line 5 | line 6 | line 7 | line 8" in e.value.hint
    assert clock.t == pytest.approx(2.0)


@pytest.mark.parametrize("bad", [dict(port=0), dict(port=53, proto="sctp"),
                                 dict(port=53, proto="udp", from_host="client")])
def test_a_port_that_cannot_be_waited_for_is_refused(bad):
    with pytest.raises(ConfigError):
        PortOpen("server", **bad)
