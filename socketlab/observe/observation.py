"""What most experiments do: count, capture on both hosts, act, capture ends, count again.

    obs = observe(ctx, lambda: run_pair(ctx.lab, Options(proto="tcp")), name="tcp")
    obs.result                  # what the action returned (here a PairRun)
    obs.packets["server"]       # the server's capture, dissected (socketlab.observe.pcap.Pkt)
    obs.counters["client"]      # the client's kernel counters that changed (counters.delta)
    obs.capture["server"].dropped   # tcpdump's own drop count
    ladder_files(ctx, obs, "tcp")   # ladder (text, SVG) in the run folder; artifact paths
                                    # for the ladders and both hosts' pcaps
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from socketlab.observe.capture import Capture, CaptureResult
from socketlab.observe.counters import Counters, delta, snapshot
from socketlab.observe.ladder import Host, ladder_from_captures, render_svg, render_text
from socketlab.observe.pcap import Pkt, read_pcap

if TYPE_CHECKING:
    from socketlab.act.programs import PairRun
    from socketlab.lab.lab import Lab

T = TypeVar("T")


@dataclass
class Context:
    """What an experiment may use: the lab, its own folder for files, a progress callback."""

    lab: Lab
    run_dir: Path
    progress: Callable[[str], None] = lambda _msg: None


@dataclass(frozen=True)
class Observation(Generic[T]):
    result: T
    capture: CaptureResult
    packets: dict[str, list[Pkt]]
    counters: dict[str, Counters]


def observe(ctx: Context, action: Callable[[], T], *, name: str,
            hosts: Sequence[str] | None = None, **capture_options: Any) -> Observation[T]:
    """Counters before, capture around `action`, counters after; packets read back.
    hosts: where to capture (default: every host of the lab)."""
    hosts = list(ctx.lab.topology.names if hosts is None else hosts)
    before = {h: snapshot(ctx.lab, h) for h in hosts}
    ctx.progress(f"{name}: capturing on {', '.join(hosts)}")
    with Capture(ctx.lab, hosts, ctx.run_dir, name=name, **capture_options) as cap:
        result = action()
    after = {h: snapshot(ctx.lab, h) for h in hosts}
    return Observation(result, cap.result,
                       {h: read_pcap(cap.result[h].pcap) for h in hosts},
                       {h: delta(before[h], after[h]) for h in hosts})


def events_of(run: PairRun) -> dict[str, list[dict[str, Any]]]:
    """A run's program events as plain data, per host (Evidence.events)."""
    def plain(events):
        return [{"event": e.name, **e.fields, "t": e.t} for e in events]
    return {"client": plain(run.client_events), "server": plain(run.server_events)}


def call_label(event: dict[str, Any], bufsize: int = 3) -> str:
    """A program event as a short note for the ladder, e.g. `recv(3) -> "hel"`."""
    name, data = event["event"], event.get("data")
    if isinstance(data, str) and len(data) > 24:  # the note names the call, not the whole message
        data = f"{data[:20]}… ({len(data)} bytes)"
    return {
        "listening": "listen()", "accepted": "accept() returned", "connected": "connect() returned",
        "sent": f"{'sendto' if 'peer' in event else 'sendall'}() returned",  # its moment
        "recv": f'recv({bufsize}) -> "{data}"',
        "recvfrom": f'recvfrom({bufsize}) -> "{data}"', "closed": "close()",
        "error": f"{event.get('op')}() failed: {event.get('errno')}",
    }.get(name, name)


def ladder_files(ctx: Context, obs: Observation, stem: str,
                 events: dict[str, list[dict[str, Any]]] | None = None,
                 bufsize: int = 3) -> dict[str, str]:
    """The exchange as a ladder diagram (text and SVG) in the run folder; artifact paths."""
    topo = ctx.lab.topology  # the ladder's two sides: the hosts whose roles are client, server
    client, server = (topo.role_host(r) or topo.host(r) for r in ("client", "server"))
    named = {"client": client.name, "server": server.name}  # events_of's keys are the roles
    notes = [(named.get(side, side), e["t"], call_label(e, bufsize))
             for side, evs in (events or {}).items()
             for e in evs if e.get("t") is not None and e["event"] != "stop"]
    names = {ip: h.name for h in topo.hosts for _, ip in h.addresses if ip}  # a router's ICMP: who
    ladder = ladder_from_captures(obs.packets.get(client.name, []), obs.packets.get(server.name, []),
                                  Host(client.name, client.ip), Host(server.name, server.ip),
                                  events=notes, names=names)
    text, svg = ctx.run_dir / f"{stem}-ladder.txt", ctx.run_dir / f"{stem}-ladder.svg"
    text.write_text(render_text(ladder))
    svg.write_text(render_svg(ladder))
    pcaps = {f"{stem} capture ({h.host}, pcap)": str(h.pcap) for h in obs.capture.hosts.values()}
    return {f"{stem} ladder (text)": str(text), f"{stem} ladder (SVG)": str(svg), **pcaps}
