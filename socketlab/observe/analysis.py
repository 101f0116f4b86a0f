"""Pcap analysis: `Pkt` records -> small frozen dataclasses (pure; reads files only).

Every function reads fields of any iterable of `Pkt` (from `read_pcap`, in socketlab.observe.pcap), so
tests and experiments can hand it plain lists. Times are seconds (pcap clock). The names of
socketlab.observe.pcap are re-exported here: `from socketlab.observe.analysis import read_pcap, Pkt` works.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from socketlab.observe.pcap import (
    ICMP_ERRORS,
    PAYLOAD_KEEP,
    PROTOS,
    UNREACH,
    Endpoint,
    Pkt,
    Quote,
    read_pcap,
)

__all__ = [
    # re-exported from socketlab.observe.pcap
    "ICMP_ERRORS", "PAYLOAD_KEEP", "PROTOS", "UNREACH", "Endpoint", "Pkt", "Quote", "read_pcap",
    # defined here
    "Datagram", "Exchange", "FragmentGroup", "Handshake", "IcmpError", "Segment", "TcpFlow",
    "exchange", "fragments", "handshake", "icmp_errors", "match_captures", "match_key", "summary",
    "tcp_flow", "udp_datagrams",
]


# ---------------------------------------------------------------- TCP
@dataclass(frozen=True)
class Handshake:
    """The three-way handshake (or the SYN and the RST that refused it)."""

    client: Endpoint
    server: Endpoint
    syn: Pkt
    synack: Pkt | None = None
    ack: Pkt | None = None
    reset: Pkt | None = None

    @property
    def established(self) -> bool:
        return self.ack is not None

    @property
    def syn_to_synack(self) -> float | None:
        return self.synack.ts - self.syn.ts if self.synack else None

    @property
    def synack_to_ack(self) -> float | None:
        return self.ack.ts - self.synack.ts if self.ack and self.synack else None

    @property
    def wscales(self) -> tuple[int, int]:
        """(client, server) shift counts; both 0 unless both SYNs carried the option."""
        theirs = self.synack.wscale if self.synack else None
        if self.syn.wscale is None or theirs is None:
            return 0, 0
        return self.syn.wscale, theirs

    def relative(self, pkt: Pkt) -> tuple[int, int]:
        """(seq, ack) of a packet of this connection relative to the ISNs, as Wireshark shows
        them: a side whose SYN is not in the capture counts from the packet's seq - 1 (so the
        RST that refuses a SYN reads 1/1), and ack is 0 without the ACK flag."""
        mine: int | None = self.syn.seq
        theirs: int | None = self.synack.seq if self.synack else None
        if (pkt.src, pkt.sport) != self.client:
            mine, theirs = theirs, mine
        if mine is None:
            mine = pkt.seq if "S" in pkt.flags else (pkt.seq - 1) % 2**32
        if theirs is None:
            theirs = (pkt.ack - 1) % 2**32
        return (pkt.seq - mine) % 2**32, (pkt.ack - theirs) % 2**32 if "A" in pkt.flags else 0

    def window(self, pkt: Pkt) -> int:
        """The window a packet of this connection advertises, scaled as the handshake agreed
        (a SYN's window is never scaled)."""
        if "S" in pkt.flags:
            return pkt.window
        client, server = self.wscales
        return pkt.window << (client if (pkt.src, pkt.sport) == self.client else server)


def handshake(pkts: Iterable[Pkt], server: Endpoint | None = None) -> Handshake | None:
    """The first SYN to `server` (any server if None) and the replies that belong to it."""
    pkts = [p for p in pkts if p.proto == "tcp"]
    syn = next((p for p in pkts if p.flags.startswith("S") and "A" not in p.flags
                and (server is None or (p.dst, p.dport) == server)), None)
    if syn is None:
        return None
    cli, srv = (syn.src, syn.sport), (syn.dst, syn.dport)
    later = [p for p in pkts if p.ts >= syn.ts and p is not syn]
    back = [p for p in later if (p.src, p.sport, p.dst, p.dport) == srv + cli]
    synack = next((p for p in back if "S" in p.flags and "A" in p.flags
                   and p.ack == (syn.seq + 1) % 2**32), None)
    reset = None if synack else next((p for p in back if "R" in p.flags), None)
    ack = None
    if synack is not None:
        ack = next((p for p in later if (p.src, p.sport) == cli and "S" not in p.flags
                    and "A" in p.flags and p.ack == (synack.seq + 1) % 2**32), None)
    return Handshake(cli, srv, syn, synack, ack, reset)


@dataclass(frozen=True)
class Segment:
    """A TCP packet of one connection with numbers relative to the ISNs, window scaled."""

    pkt: Pkt
    from_client: bool
    rel_seq: int
    rel_ack: int
    window: int
    retransmission: bool = False

    @property
    def flags(self) -> str:
        return self.pkt.flags

    @property
    def length(self) -> int:
        return self.pkt.length


@dataclass(frozen=True)
class TcpFlow:
    client: Endpoint
    server: Endpoint
    handshake: Handshake | None
    segments: tuple[Segment, ...]

    def _pick(self, keep: Callable[[Segment], bool]) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if keep(s))

    @property
    def data(self) -> tuple[Segment, ...]:
        return self._pick(lambda s: s.length > 0)

    @property
    def acks(self) -> tuple[Segment, ...]:
        return self._pick(lambda s: s.length == 0 and s.flags == "A")

    @property
    def retransmissions(self) -> tuple[Segment, ...]:
        return self._pick(lambda s: s.retransmission)

    @property
    def teardown(self) -> tuple[Segment, ...]:
        return self._pick(lambda s: "F" in s.flags or "R" in s.flags)

    @property
    def zero_windows(self) -> tuple[Segment, ...]:
        return self._pick(lambda s: s.window == 0 and "R" not in s.flags)

    def bytes_sent(self, by_client: bool = True) -> int:
        """Payload bytes, retransmissions not counted twice."""
        return sum(s.length for s in self.data if s.from_client == by_client
                   and not s.retransmission)


def tcp_flow(pkts: Iterable[Pkt], server: Endpoint, client: Endpoint | None = None
             ) -> TcpFlow | None:
    """One connection to `server` (the first one, or the one from `client`)."""
    pkts = [p for p in pkts if p.proto == "tcp" and not p.is_fragment]
    hs = handshake([p for p in pkts if client is None
                    or {(p.src, p.sport), (p.dst, p.dport)} == {client, server}], server)
    if client is None:
        first = next((p for p in pkts if (p.dst, p.dport) == server), None)
        client = hs.client if hs else (first.src, first.sport) if first else None
    if client is None:
        return None
    conn = [p for p in pkts if {(p.src, p.sport), (p.dst, p.dport)} == {client, server}]
    if not conn:
        return None
    isn = {True: hs.syn.seq if hs else None, False: hs.synack.seq if hs and hs.synack else None}
    shift = dict(zip((True, False), hs.wscales if hs else (0, 0), strict=True))
    return TcpFlow(client, server, hs, _number(conn, client, isn, shift))


def _number(conn: list[Pkt], client: Endpoint, isn: dict[bool, int | None],
            shift: dict[bool, int]) -> tuple[Segment, ...]:
    """Relative numbers (ISNs guessed as seq-1 / ack-1 without a handshake), scaled windows,
    and retransmissions as Wireshark flags them: a segment carrying data (or SYN/FIN) that
    starts below the highest sequence number already seen in its direction. That also flags a
    resend whose original never reached the capture (dropped before the capture point), as
    long as later data did; a keep-alive (one byte or none, just below that point) is not one."""
    highest: dict[bool, int | None] = {True: None, False: None}
    segs = []
    for p in conn:
        fwd = (p.src, p.sport) == client
        own, peer = isn[fwd], isn[not fwd]
        if own is None:
            own = isn[fwd] = (p.seq - 1) % 2**32 if "S" not in p.flags else p.seq
        if peer is None and "A" in p.flags:
            peer = isn[not fwd] = (p.ack - 1) % 2**32
        rel = (p.seq - own) % 2**32
        spans = p.length + ("S" in p.flags) + ("F" in p.flags)
        top = highest[fwd]
        retx = spans > 0 and top is not None and _before(rel, top) \
            and not (p.length <= 1 and "S" not in p.flags and "F" not in p.flags
                     and (rel + 1) % 2**32 == top)
        if top is None or _before(top, (rel + spans) % 2**32):
            highest[fwd] = (rel + spans) % 2**32
        rel_ack = (p.ack - peer) % 2**32 if "A" in p.flags and peer is not None else 0
        win = p.window if "S" in p.flags else p.window << shift[fwd]
        segs.append(Segment(p, fwd, rel, rel_ack, win, retx))
    return tuple(segs)


def _before(a: int, b: int) -> bool:
    """a comes before b in sequence space (modulo 2**32, as TCP compares)."""
    return 0 < (b - a) % 2**32 < 2**31


# ---------------------------------------------------------------- UDP, ICMP, fragments
@dataclass(frozen=True)
class Datagram:
    pkt: Pkt
    length: int  # the whole datagram's payload, as its UDP header declares
    fragmented: bool

    @property
    def payload(self) -> bytes:
        return self.pkt.payload


def udp_datagrams(pkts: Iterable[Pkt], port: int | None = None) -> list[Datagram]:
    """UDP datagrams from or to `port` (any port if None); a fragmented one counts once."""
    return [Datagram(p, p.udp_len if p.udp_len is not None else p.length, p.mf)
            for p in pkts if p.proto == "udp" and p.frag_offset == 0
            and (port is None or port in (p.sport, p.dport))]


@dataclass(frozen=True)
class IcmpError:
    pkt: Pkt
    description: str
    quote: Quote | None
    refers_to: Pkt | None  # the packet the error quotes, when it is in the same capture


def icmp_errors(pkts: Iterable[Pkt]) -> list[IcmpError]:
    pkts = list(pkts)
    out = []
    for e in pkts:
        desc = e.icmp_error
        if desc is None:
            continue
        q = e.quote
        match = None if q is None else next(
            (p for p in reversed(pkts) if p.ts <= e.ts and p.index != e.index
             and (p.proto, p.src, p.dst, p.sport, p.dport, p.ip_id) ==
             (q.proto, q.src, q.dst, q.sport, q.dport, q.ip_id)), None)
        out.append(IcmpError(e, desc, q, match))
    return out


@dataclass(frozen=True)
class FragmentGroup:
    src: str
    dst: str
    ip_id: int
    proto: str
    pieces: tuple[Pkt, ...]  # in offset order

    @property
    def complete(self) -> bool:
        end = 0
        for p in self.pieces:
            if p.frag_offset > end:
                return False
            end = max(end, p.frag_offset + p.length + (8 if p.frag_offset == 0 else 0))
        return bool(self.pieces) and not self.pieces[-1].mf

    @property
    def total_length(self) -> int:
        """Bytes of the reassembled IP payload (transport header included)."""
        last = self.pieces[-1]
        return last.frag_offset + last.length + (8 if last.frag_offset == 0 else 0)


def fragments(pkts: Iterable[Pkt]) -> list[FragmentGroup]:
    groups: dict[tuple[str, str, int, str], list[Pkt]] = defaultdict(list)
    for p in pkts:
        if p.is_fragment:
            groups[(p.src, p.dst, p.ip_id, p.proto)].append(p)
    return [FragmentGroup(*key, tuple(sorted(ps, key=lambda p: p.frag_offset)))
            for key, ps in groups.items()]


# ---------------------------------------------------------------- whole captures
def summary(pkts: Iterable[Pkt]) -> dict:
    """Counts for benchmarks and reports (a few tight passes: each is one C-level loop)."""
    pkts = pkts if isinstance(pkts, list | tuple) else list(pkts)
    times = [p.ts for p in pkts]
    return {"packets": len(pkts), "ip_bytes": sum(p.ip_len for p in pkts),
            "payload_bytes": sum(p.length for p in pkts),
            "protocols": dict(Counter(p.proto for p in pkts)),
            "tcp_flags": dict(Counter(p.flags for p in pkts if p.flags)),
            "fragments": sum(1 for p in pkts if p.mf or p.frag_offset),
            "icmp_errors": sum(1 for p in pkts if p.icmp_type in ICMP_ERRORS),
            "duration": (max(times) - min(times)) if times else 0.0}


@dataclass(frozen=True)
class Exchange:
    """Everything between two hosts in one capture, dissected."""

    client: str
    server: str
    port: int
    packets: tuple[Pkt, ...]
    handshake: Handshake | None
    flow: TcpFlow | None
    datagrams: tuple[Datagram, ...]
    icmp: tuple[IcmpError, ...]
    fragments: tuple[FragmentGroup, ...]


def exchange(pkts: Iterable[Pkt], client: str, server: str, port: int) -> Exchange:
    pair = {client, server}
    mine = tuple(p for p in pkts if {p.src, p.dst} == pair)
    return Exchange(client, server, port, mine, handshake(mine, (server, port)),
                    tcp_flow(mine, (server, port)), tuple(udp_datagrams(mine, port)),
                    tuple(icmp_errors(mine)), tuple(fragments(mine)))


def match_key(p: Pkt) -> tuple:
    """What identifies one packet in two captures (TTL and checksums may differ)."""
    return (p.src, p.dst, p.proto, p.sport, p.dport, p.ip_id, p.frag_offset, p.seq, p.ack,
            p.flags, p.length, p.digest, p.icmp_type)


def match_captures(sent_side: Iterable[Pkt], recv_side: Iterable[Pkt]
                   ) -> tuple[list[tuple[Pkt, Pkt]], list[Pkt], list[Pkt]]:
    """Pair the copies of each packet in two captures: (matched, only_sender, only_receiver).

    Give it one direction (packets the first capture's host sent): then `only_sender` is what
    was lost between the hosts. Offloads (TSO/GRO) break the one-to-one pairing; switch them off.
    """
    waiting: dict[tuple, deque[Pkt]] = defaultdict(deque)
    for p in recv_side:
        waiting[match_key(p)].append(p)
    matched, only_sender = [], []
    for p in sent_side:
        queue = waiting.get(match_key(p))
        if queue:
            matched.append((p, queue.popleft()))
        else:
            only_sender.append(p)
    # A packet a router cut into fragments on the way arrived as its first fragment (the
    # others stay receiver-only): it was not lost.
    firsts: dict[tuple, deque[Pkt]] = defaultdict(deque)
    for q in waiting.values():
        for p in q:
            if p.mf and p.frag_offset == 0:
                firsts[(p.src, p.dst, p.proto, p.ip_id)].append(p)
    lost = []
    for p in only_sender:
        found = firsts.get((p.src, p.dst, p.proto, p.ip_id)) if not p.is_fragment else None
        if found:
            first = found.popleft()
            waiting[match_key(first)].remove(first)
            matched.append((p, first))
        else:
            lost.append(p)
    only_sender = lost
    rest = sorted((p for q in waiting.values() for p in q), key=lambda p: (p.ts, p.index))
    return matched, only_sender, rest
