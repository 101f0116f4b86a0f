"""The probes that measure a shaping: one set for `bench shaping` and the tests, run through
any PlacedHosts (a Lab, or the user-mode kernel's UmlLab: socketlab.lab.process), so
the engine and netem are measured the same way: the same instruments, the same counts.

    rtts = ping(lab)                          # PINGS UDP round trips against an echo
    sent, sink = flow(lab, 10_000, 10_000)    # numbered datagrams into a counting sink
    sink = tcp_flow(lab, 3_750_000)           # one TCP transfer into a counting sink
    result = under(lab, "netem", "loss 10%", lambda: flow(lab, 10_000, 10_000))

Every probe is bounded in count and time; servers run on `server`, senders on `client`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from socketlab.act import instruments
from socketlab.act.programs import Options, run_programs
from socketlab.lab.process import PlacedHosts

PINGS, PING_GAP_S = 400, 0.004          # 1.6 s of pings, 4 ms apart, each matched by number
NEVER_FIRES = [{"match": {"proto": "icmp", "nth": [10**9]}, "action": "drop"}]  # lab-nfq, idle


def pair(lab: PlacedHosts, proto: str, server: list[str], client: list[str]) -> tuple[dict, dict]:
    """Run a server instrument, then a client one (run_programs: bounded, server first);
    their summaries."""
    run = run_programs(lab, Options(proto), server, client)
    why = f"(exit codes: server {run.server_exit}, client {run.client_exit})"
    return (instruments.summary(run.server_events, f"probe's {proto} server {why}"),
            instruments.summary(run.client_events, f"probe's {proto} client {why}"))


def ping(lab: PlacedHosts, count: int = PINGS, gap: float = PING_GAP_S) -> list[float]:
    """RTTs (ms) of `count` UDP pings, `gap` s apart, against an echo on the server."""
    c = lab.config
    echo = instruments.argv("udp_echo", c.port, idle=3.0, most=15.0 + count * gap)
    _server, client = pair(lab, "udp", echo, instruments.argv("udp_ping", c.server_ip, c.port,
                                                              count=count, gap=gap, wait=1.5))
    return instruments.numbers(client["rtts"])


def flow(lab: PlacedHosts, count: int, pps: float, early_ms: float = 0.0,
         size: int = 64) -> tuple[dict, dict]:
    """(the sender's summary, the sink's) for `count` numbered datagrams at `pps` (0: at once)."""
    c = lab.config
    sink, sent = pair(lab, "udp", instruments.argv("udp_sink", c.port, first=10.0, idle=0.5, most=18.0,
                                                   numbered=True, early_ms=early_ms, expect=count),
                      instruments.argv("udp_blast", c.server_ip, c.port, count=count, pps=float(pps),
                                       size=size, most=12.0))
    return sent, sink


def tcp_flow(lab: PlacedHosts, nbytes: int) -> dict:
    """The sink's summary of one TCP transfer of `nbytes` (at most 12 s)."""
    c = lab.config
    sink, _sent = pair(lab, "tcp", instruments.argv("tcp_sink", c.port, most=15.0),
                       instruments.argv("tcp_send", c.server_ip, c.port, bytes=nbytes, most=12.0))
    return sink


def under(lab: PlacedHosts, backend: str, spec: str, measure: Callable[[], Any],
          faults: list | None = None, host: str = "client", direction: str = "egress") -> Any:
    """`measure()` with `host`'s `direction` shaped by `spec` through `backend`; cleared
    afterwards, whatever happens."""
    from socketlab.act import shaping

    try:
        shaping.shape(lab, host, spec, direction, backend, faults=faults)
        return measure()
    finally:
        shaping.clear(lab, host)
