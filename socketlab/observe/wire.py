"""What crossed the wire during a block of code, dissected for assertions.

    with watching(lab, run_dir) as watch:        # tcpdump on every host, counters before
        lab.exec("client", [...])
    wire = watch.wire                            # filled when the block ends
    wire.handshakes, wire.retransmissions, wire.datagrams, wire.icmp, wire.faults
    wire["client"].count(proto="tcp", flags="S")  # one host's own capture
    wire.counters["server"]["Udp.NoPorts"]       # kernel counters that changed in the block
    wire.files                                   # pcaps and the ladder (text, SVG)

Each host's capture is dissected on its own (`wire["server"]`); the shortcuts on `Wire` read
the capture of `view` (the server by default: where the client's traffic arrives). A packet
that a shaper or a fault dropped is in no capture (both act before the sending host's tap):
`faults` lists the packet-exact faults that fired in the block, from lab-nfq's own log.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socketlab.act.shaping import NFQ_LOG, nfq_records
from socketlab.lab.lab import Lab
from socketlab.observe.analysis import (
    Datagram,
    FragmentGroup,
    Handshake,
    IcmpError,
    Segment,
    TcpFlow,
    fragments,
    icmp_errors,
    tcp_flow,
    udp_datagrams,
)
from socketlab.observe.capture import Capture
from socketlab.observe.counters import Counters, delta, snapshot
from socketlab.observe.ladder import Host, Ladder, ladder_from_captures, render_svg, render_text
from socketlab.observe.pcap import Pkt, read_pcap

ALL_IP = "ip"  # the capture filter: everything IP on the host's lab interface


@dataclass(frozen=True)
class HostWire:
    """One host's capture, dissected: every connection, datagram and ICMP error it saw."""

    host: str
    address: str
    packets: tuple[Pkt, ...]
    counters: Counters = field(default_factory=dict)

    @property
    def connections(self) -> tuple[TcpFlow, ...]:
        """One TcpFlow per TCP connection (4-tuple), in the order they began."""
        conns: dict[frozenset, list[Pkt]] = {}
        for p in self.packets:
            if p.proto == "tcp" and not p.is_fragment:
                conns.setdefault(frozenset({(p.src, p.sport), (p.dst, p.dport)}), []).append(p)
        flows = (tcp_flow(pkts, _server_of(pkts)) for pkts in conns.values())
        return tuple(f for f in flows if f is not None)

    @property
    def handshakes(self) -> tuple[Handshake, ...]:
        return tuple(f.handshake for f in self.connections if f.handshake is not None)

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(s for f in self.connections for s in f.segments)

    @property
    def retransmissions(self) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if s.retransmission)

    @property
    def datagrams(self) -> tuple[Datagram, ...]:
        return tuple(udp_datagrams(self.packets))

    @property
    def icmp(self) -> tuple[IcmpError, ...]:
        return tuple(icmp_errors(self.packets))

    @property
    def fragments(self) -> tuple[FragmentGroup, ...]:
        return tuple(fragments(self.packets))

    def select(self, proto: str | None = None, *, flags: str | None = None,
               src: str | None = None, dst: str | None = None,
               sport: int | None = None, dport: int | None = None) -> list[Pkt]:
        """The packets that match every criterion given (flags exactly, e.g. "SA")."""
        want = {"proto": proto, "flags": flags, "src": src, "dst": dst, "sport": sport,
                "dport": dport}
        return [p for p in self.packets
                if all(v is None or getattr(p, k) == v for k, v in want.items())]

    def count(self, proto: str | None = None, **criteria: Any) -> int:
        return len(self.select(proto, **criteria))

    def payload(self, src: str | None = None, dst: str | None = None) -> bytes:
        """TCP data bytes in stream order, each byte once (resent copies not counted), of the
        connections from `src` to `dst` (addresses; any if None). Only the first 64 bytes of
        each packet are kept by the dissection: see Pkt.payload."""
        out = b""
        for seg in self.segments:
            p = seg.pkt
            if seg.length and not seg.retransmission and (src in (None, p.src)) \
                    and (dst in (None, p.dst)):
                out += p.payload
        return out


def _server_of(pkts: Sequence[Pkt]) -> tuple[str, int]:
    """The endpoint the connection was made to: the first SYN's target, else the lower port."""
    syn = next((p for p in pkts if p.flags.startswith("S") and "A" not in p.flags), None)
    if syn is not None:
        return syn.dst, syn.dport
    p = pkts[0]
    return (p.dst, p.dport) if p.dport <= p.sport else (p.src, p.sport)


@dataclass(frozen=True)
class Wire:
    """Every host's capture of one block, the faults that fired, the counters that changed."""

    hosts: dict[str, HostWire]
    faults: tuple[dict[str, Any], ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    view: str = ""

    def __getitem__(self, host: str) -> HostWire:
        return self.hosts[host]

    @property
    def seen(self) -> HostWire:
        return self.hosts[self.view]

    @property
    def counters(self) -> dict[str, Counters]:
        return {h: w.counters for h, w in self.hosts.items()}

    @property
    def packets(self) -> tuple[Pkt, ...]:
        return self.seen.packets

    @property
    def connections(self) -> tuple[TcpFlow, ...]:
        return self.seen.connections

    @property
    def handshakes(self) -> tuple[Handshake, ...]:
        return self.seen.handshakes

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self.seen.segments

    @property
    def retransmissions(self) -> tuple[Segment, ...]:
        return self.seen.retransmissions

    @property
    def datagrams(self) -> tuple[Datagram, ...]:
        return self.seen.datagrams

    @property
    def icmp(self) -> tuple[IcmpError, ...]:
        return self.seen.icmp

    def count(self, proto: str | None = None, **criteria: Any) -> int:
        return self.seen.count(proto, **criteria)

    def fired(self, action: str | None = None) -> list[dict[str, Any]]:
        """The faults that fired (lab-nfq's log lines), those of one action if given."""
        return [f for f in self.faults if action in (None, f.get("action"))]


def ladder(wire: Wire, left: str, right: str) -> Ladder:
    """The exchange between two captured hosts as a ladder diagram (left: the initiator). A
    packet a fault dropped before its sender's tap is drawn too, as lost (lab-nfq's log)."""
    a, b = wire[left], wire[right]
    drawn = {}
    for side in (a, b):
        mine = list(side.packets)
        drops = [f for f in wire.fired("drop") if f.get("src") == side.address]
        drawn[side.host] = mine + [fault_packet(f, mine) for f in drops if not _captured(f, mine)]
    return ladder_from_captures(drawn[left], drawn[right], Host(left, a.address),
                                Host(right, b.address))


def fault_packet(line: Mapping[str, Any], captured: Sequence[Pkt] = ()) -> Pkt:
    """A packet lab-nfq logged (dropped before the sender's tap), as a Pkt for the ladder.
    The log has no window or options: they are taken from a resent copy (same flags, seq and
    ack) in the sender's capture, when there is one. A UDP or ICMP line has no ports, flags,
    seq or ack where the protocol has none (null in the log): they are 0 and "" as in a pcap."""
    fields = _logged(line)
    key = (fields["src"], fields["sport"], fields["flags"], fields["seq"], fields["ack"])
    like = next((p for p in captured if (p.src, p.sport, p.flags, p.seq, p.ack) == key), None)
    udp_len = fields["length"] if fields["proto"] == "udp" else None
    return Pkt(index=-1, ts=float(line["time"]), ip_id=int(line.get("ip_id") or 0),
               **fields, udp_len=udp_len, window=like.window if like else 0,
               mss=like.mss if like else None, wscale=like.wscale if like else None)


def _logged(line: Mapping[str, Any]) -> dict[str, Any]:
    """A lab-nfq log line's header fields, as a Pkt holds them (null -> 0 or "")."""
    return {"src": line["src"], "dst": line["dst"], "proto": line["proto"],
            "sport": int(line.get("sport") or 0), "dport": int(line.get("dport") or 0),
            "flags": line.get("flags") or "", "seq": int(line.get("seq") or 0),
            "ack": int(line.get("ack") or 0), "length": int(line.get("len") or 0)}


def _captured(line: Mapping[str, Any], pkts: Sequence[Pkt], slack: float = 0.05) -> bool:
    """The logged packet is in the capture (dropped after the tap: drawn from there). Without
    TCP's seq, datagrams of one flow differ only in IP id and length: those are compared too."""
    f = _logged(line)
    key = (f["src"], f["sport"], f["dst"], f["dport"], f["flags"], f["seq"])
    ident = None if f["proto"] == "tcp" else (int(line.get("ip_id") or 0), f["length"])
    return any((p.src, p.sport, p.dst, p.dport, p.flags, p.seq) == key
               and (ident is None or (p.ip_id, p.length) == ident)
               and abs(p.ts - float(line["time"])) < slack for p in pkts)


class Watch:
    """What `watching` yields: `wire` is there once the block has ended, and the Watch reads
    as that Wire (`watch.handshakes` is `watch.wire.handshakes`)."""

    def __init__(self) -> None:
        self._wire: Wire | None = None

    @property
    def wire(self) -> Wire:
        if self._wire is None:
            raise RuntimeError("the capture is still running: read .wire after the with block")
        return self._wire

    def __getattr__(self, name: str) -> Any:  # the Wire's own attributes, once it is there
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.wire, name)

    def __getitem__(self, host: str) -> HostWire:
        return self.wire[host]


@contextlib.contextmanager
def watching(lab: Lab, run_dir: str | Path, hosts: Sequence[str] | None = None, *,
             name: str = "capture", between: tuple[str, str] | None = ("client", "server"),
             view: str | None = None, bpf: str = ALL_IP, counters: bool = True,
             keep: Callable[[], bool] | None = None) -> Iterator[Watch]:
    """Capture on `hosts` (every host by default) around the block; counters before and after
    (unless counters=False); pcaps and a ladder of `between` (text, SVG) in
    run_dir/<time>-<name>/. When the block raises, the capture is still stopped and its files
    written (as far as they can be). keep: asked once the block has ended; False: nothing is
    written or dissected (the capture is discarded, and `wire` is never there)."""
    hosts = list(hosts or lab.topology.names)
    watch = Watch()
    before = {h: snapshot(lab, h) if counters else {} for h in hosts}
    capture = Capture(lab, hosts, run_dir, name=name, bpf=bpf).start()
    started = time.time()  # lab-nfq logs the kernel's clock, which the hosts share with us

    def finish() -> None:
        if keep is not None and not keep():
            capture.discard()
            return
        result = capture.stop()
        wired = {h: HostWire(h, lab.topology.ip(h), tuple(read_pcap(result[h].pcap)),
                             delta(before[h], snapshot(lab, h)) if counters else {})
                 for h in hosts}
        faults = tuple(f for h in hosts for f in _faults_since(lab, h, started))
        files = {f"pcap ({h})": str(result[h].pcap) for h in hosts}
        watch._wire = Wire(wired, faults, files, view or ("server" if "server" in wired else hosts[0]))
        if between and all(h in wired for h in between):
            drawn = ladder(watch._wire, *between)
            text, svg = result.run_dir / "ladder.txt", result.run_dir / "ladder.svg"
            text.write_text(render_text(drawn))
            svg.write_text(render_svg(drawn))
            files.update({"ladder (text)": str(text), "ladder (SVG)": str(svg)})

    try:
        yield watch
    except BaseException:
        with contextlib.suppress(Exception):  # the block's own error is the one to see
            finish()
        raise
    finish()


def _faults_since(lab: Lab, host: str, since: float) -> list[dict[str, Any]]:
    """The packet-exact faults lab-nfq logged in `host` since `since`, each with its host."""
    log = lab.exec(host, ["sh", "-c", f"cat {NFQ_LOG.format(queue=0)} 2>/dev/null"],
                   timeout=10, instruments=True).stdout
    return [{**f, "host": host} for f in nfq_records(log)["nfq_faults"]
            if float(f.get("time", 0)) >= since]
