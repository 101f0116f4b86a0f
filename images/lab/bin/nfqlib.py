"""nfqlib: what lab-nfq decides about each packet (pure: no sockets, no clock, no files).

lab-nfq (beside this file) does the netlink plumbing: it reads each packet the kernel
queues, asks a Decider what to do with it, and tells the kernel the verdict. Everything
here is plain computation, so tests can run it without root and without a network.

The config (JSON, every key optional), as netem understands the same words:
  delay_ms, jitter_ms    hold each packet delay_ms, +- jitter_ms drawn from `distribution`:
  distribution           "uniform" (default), "normal", "pareto", "paretonormal"
                         (jitter reorders packets, as in netem: each is sent at its own time)
  loss_pct               drop this % of packets at random (each packet on its own: Bernoulli)
  loss_burst             mean length of a loss burst: the simple Gilbert model (netem's
                         `loss gemodel P R`): a Good state that never loses, a Bad state that
                         always loses; Bad->Good with R = 1/loss_burst, Good->Bad with
                         P = R * loss / (1 - loss), so that the long-run loss is loss_pct.
  duplicate_pct          send this % of packets twice
  corrupt_pct            flip one random bit in this % of packets (see corrupt_bit)
  reorder_pct, reorder_gap  netem's reorder (needs delay_ms): after gap-1 delayed packets,
                         each packet is sent at once with probability reorder_pct, the rest
                         are delayed; gap defaults to 1 (any packet may jump the queue)
  seed                   one random.Random(seed) makes every random choice: the same seed
                         and the same packets give the same decisions
  limit                  most packets held at once (netem's limit); the kernel drops beyond
  faults                 packet-exact faults, see Fault below

Faults are decided first, on every packet, so their ordinals never depend on chance.
A packet a fault fired on is never lost at random (the fault happens exactly as written);
it still gets the random delay, duplication and corruption like any other packet.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass, field
from socket import inet_ntoa  # bytes -> "192.168.33.5" (a pure function)

FLAG_LETTERS = "FSRPAUEC"  # TCP flag bits 0..7, in scapy's order: SYN+ACK is "SA"
PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17}
PROTO_NAMES = {n: name for name, n in PROTO_NUMBERS.items()}
DISTRIBUTIONS = ("uniform", "normal", "pareto", "paretonormal")
ACTIONS = ("drop", "delay", "duplicate", "corrupt")
MATCH_KEYS = ("proto", "flags", "src", "dst", "sport", "dport", "len", "min_len", "max_len", "nth")


# -- the packet, as far as the decisions need it ------------------------------------------
@dataclass(frozen=True)
class Packet:
    """An IPv4 packet's header fields; `length` is the transport payload's length."""

    proto: str  # "tcp", "udp", "icmp", or "ip<number>"
    src: str
    dst: str
    size: int  # the whole IP packet, bytes
    ip_id: int = 0
    sport: int | None = None
    dport: int | None = None
    flags: str | None = None  # TCP only, e.g. "SA"
    seq: int | None = None
    ack: int | None = None
    length: int = 0
    l4_offset: int = 20  # where the TCP/UDP/ICMP header starts
    payload_offset: int = 20  # where the transport payload starts

    def fields(self) -> dict[str, object]:
        """The fields a log line shows."""
        return {"proto": self.proto, "src": self.src, "dst": self.dst, "sport": self.sport,
                "dport": self.dport, "flags": self.flags, "seq": self.seq, "ack": self.ack,
                "len": self.length, "ip_id": self.ip_id}


def tcp_flags(bits: int) -> str:
    return "".join(letter for i, letter in enumerate(FLAG_LETTERS) if bits & (1 << i))


def parse_ipv4(data: bytes) -> Packet | None:
    """The fields of an IPv4 packet; None for anything else (it is then let through)."""
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    total, ip_id, frag, proto_num = struct.unpack_from("!HHHxB", data, 2)
    base = {"proto": PROTO_NAMES.get(proto_num, f"ip{proto_num}"),
            "src": inet_ntoa(data[12:16]), "dst": inet_ntoa(data[16:20]),
            "size": len(data), "ip_id": ip_id, "l4_offset": ihl}
    end = min(total, len(data))
    if frag & 0x1FFF:  # a later fragment: no transport header in it
        return Packet(**base, length=end - ihl, payload_offset=ihl)
    if proto_num == 6 and end >= ihl + 20:
        sport, dport, seq, ack, off, bits = struct.unpack_from("!HHIIBB", data, ihl)
        start = ihl + (off >> 4) * 4
        return Packet(**base, sport=sport, dport=dport, seq=seq, ack=ack, flags=tcp_flags(bits),
                      length=max(0, end - start), payload_offset=start)
    if proto_num == 17 and end >= ihl + 8:
        sport, dport = struct.unpack_from("!HH", data, ihl)
        return Packet(**base, sport=sport, dport=dport, length=end - ihl - 8, payload_offset=ihl + 8)
    header = 8 if proto_num == 1 else 0
    return Packet(**base, length=max(0, end - ihl - header), payload_offset=ihl + header)


# -- corruption: one bit, nothing fixed ------------------------------------------------------
def corrupt_bit(packet: Packet, rng: random.Random) -> int:
    """Which bit to flip (an offset in bits from the start of the IP packet).

    A bit of the transport payload when there is one; otherwise a bit of the transport
    header (a bare TCP ACK). Never the IP header: the packet must still reach its
    destination, whose TCP/UDP checksum then fails and drops it, as with netem's corrupt."""
    start = packet.payload_offset if packet.length > 0 else packet.l4_offset
    nbits = (packet.size - start) * 8
    return start * 8 + rng.randrange(nbits) if nbits > 0 else -1


def flip_bit(data: bytes, bit: int) -> bytes:
    """`data` with bit number `bit` (0 = the top bit of byte 0) inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


# -- packet-exact faults ----------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    """Which packets a fault looks at. Every given key must hold; absent keys match anything.

    proto: "tcp" | "udp" | "icmp";  flags: the exact TCP flag set, letters of FSRPAUEC in
    any order ("SA" is SYN+ACK and nothing else);  src/dst: addresses;  sport/dport: ports;
    len/min_len/max_len: the transport payload's length in bytes;  nth: the ordinal (1-based)
    among the packets that match all the other keys, one number or a list. No nth: every one.
    The direction is the queue's (0 = leaving this host, 1 = arriving)."""

    proto: str | None = None
    flags: frozenset[str] | None = None
    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None
    len: int | None = None
    min_len: int | None = None
    max_len: int | None = None
    nth: frozenset[int] | None = None

    def fits(self, p: Packet) -> bool:
        """True when every key but nth holds for `p`."""
        checks = (
            (self.proto, p.proto), (self.src, p.src), (self.dst, p.dst),
            (self.sport, p.sport), (self.dport, p.dport), (self.len, p.length),
        )
        if any(want is not None and want != have for want, have in checks):
            return False
        if self.flags is not None and (p.flags is None or frozenset(p.flags) != self.flags):
            return False
        if self.min_len is not None and p.length < self.min_len:
            return False
        return self.max_len is None or p.length <= self.max_len


@dataclass(frozen=True)
class Fault:
    """One packet-exact fault: `action` ("drop", "delay" with `ms`, "duplicate", "corrupt")
    on the packets `match` picks. `index` is its place in the config's list."""

    index: int
    match: Match
    action: str
    ms: float = 0.0
    spec: dict = field(default_factory=dict, compare=False)  # as written, for the log


def parse_match(spec: dict) -> Match:
    unknown = set(spec) - set(MATCH_KEYS)
    if "last" in unknown:
        raise ValueError('match key "last" is not supported: whether a packet is the last one '
                         "is unknown when it passes; count the packets once and use nth")
    if unknown:
        raise ValueError(f"unknown match keys {sorted(unknown)}; known: {', '.join(MATCH_KEYS)}")
    values = dict(spec)
    if values.get("proto") is not None and values["proto"] not in PROTO_NUMBERS:
        raise ValueError(f"match proto {values['proto']!r}: use one of {', '.join(PROTO_NUMBERS)}")
    if values.get("flags") is not None:
        flags = str(values["flags"]).upper()
        if set(flags) - set(FLAG_LETTERS):
            raise ValueError(f"match flags {flags!r}: use letters of {FLAG_LETTERS}")
        values["flags"] = frozenset(flags)
    if values.get("nth") is not None:
        nth = values["nth"] if isinstance(values["nth"], list) else [values["nth"]]
        if not all(isinstance(n, int) and n >= 1 for n in nth):
            raise ValueError(f"match nth {values['nth']!r}: ordinals are whole numbers from 1")
        values["nth"] = frozenset(nth)
    return Match(**values)


def parse_fault(index: int, spec: dict) -> Fault:
    action = spec.get("action")
    if action not in ACTIONS:
        raise ValueError(f"fault {index}: action {action!r}; use one of {', '.join(ACTIONS)}")
    unknown = set(spec) - {"match", "action", "ms"}
    if unknown:
        raise ValueError(f"fault {index}: unknown keys {sorted(unknown)}")
    ms = float(spec.get("ms", 0))
    if action == "delay" and ms <= 0:
        raise ValueError(f"fault {index}: a delay needs ms > 0")
    return Fault(index, parse_match(spec.get("match") or {}), action, ms, dict(spec))


# -- the config -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    distribution: str = "uniform"
    loss_pct: float = 0.0
    loss_burst: float | None = None
    duplicate_pct: float = 0.0
    reorder_pct: float = 0.0
    reorder_gap: int = 1
    corrupt_pct: float = 0.0
    seed: int | None = None
    limit: int = 10000
    faults: tuple[Fault, ...] = ()

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls.from_dict(json.loads(text or "{}"))

    @classmethod
    def from_dict(cls, spec: dict) -> Config:
        known = set(cls.__dataclass_fields__)
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known: {', '.join(sorted(known))}")
        values = {k: v for k, v in spec.items() if v is not None}
        values["faults"] = tuple(parse_fault(i, f) for i, f in enumerate(spec.get("faults") or []))
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        for name in ("loss_pct", "duplicate_pct", "reorder_pct", "corrupt_pct"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be within 0..100, not {getattr(self, name)}")
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("delay_ms and jitter_ms cannot be negative")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution {self.distribution!r}: use one of {', '.join(DISTRIBUTIONS)}")
        if self.reorder_pct and not self.delay_ms:
            raise ValueError("reorder_pct needs delay_ms (as in netem: only delayed packets can be passed)")
        if self.reorder_gap < 1 or self.limit < 1:
            raise ValueError("reorder_gap and limit must be at least 1")
        if self.loss_burst is not None:
            gilbert_p(self.loss_pct / 100, self.loss_burst)  # raises if impossible


def gilbert_p(loss: float, burst: float) -> float:
    """Good->Bad probability P that gives long-run loss `loss` with mean burst `burst`."""
    if burst < 1:
        raise ValueError(f"loss_burst {burst} must be at least 1 (packets)")
    if loss >= 1:
        return 1.0
    p = (loss / burst) / (1 - loss)
    if p > 1:
        raise ValueError(f"loss_pct {loss * 100:g} with loss_burst {burst:g} is impossible: "
                         f"bursts must be longer (at least {loss / (1 - loss):.2f})")
    return p


# -- the decisions ----------------------------------------------------------------------------
@dataclass
class Decision:
    """What to do with one packet: drop it, or accept it after `delay_ms`, with `copies`
    extra copies, with bit `corrupt_bit` flipped (-1: none). `fired` is (fault, ordinal)
    for every fault that fired; `random` names the random impairments that struck."""

    drop: bool = False
    delay_ms: float = 0.0
    copies: int = 0
    corrupt_bit: int = -1
    fired: list[tuple[Fault, int]] = field(default_factory=list)
    random: list[str] = field(default_factory=list)


class Decider:
    """Decides, packet by packet, with one seeded random.Random for every random choice."""

    def __init__(self, config: Config, seed: int | None = None) -> None:
        self.config = config
        self.rng = random.Random(config.seed if seed is None else seed)
        self.ordinals = [0] * len(config.faults)  # packets each fault's match has seen
        self.bad_state = False  # Gilbert model: in a loss burst
        self.since_reorder = 0  # netem's reorder counter

    def decide(self, packet: Packet) -> Decision:
        decision = Decision()
        self._apply_faults(packet, decision)
        if decision.drop:
            return decision
        if not decision.fired and self._lost():
            decision.drop = True
            decision.random.append("loss")
            return decision
        self._apply_random(packet, decision)
        return decision

    def _apply_faults(self, packet: Packet, decision: Decision) -> None:
        for fault in self.config.faults:
            if not fault.match.fits(packet):
                continue
            self.ordinals[fault.index] += 1
            ordinal = self.ordinals[fault.index]
            if fault.match.nth is not None and ordinal not in fault.match.nth:
                continue
            decision.fired.append((fault, ordinal))
            if fault.action == "drop":
                decision.drop = True
            elif fault.action == "delay":
                decision.delay_ms += fault.ms
            elif fault.action == "duplicate":
                decision.copies += 1
            elif decision.corrupt_bit < 0:  # corrupt: one bit, even if two faults say so
                decision.corrupt_bit = corrupt_bit(packet, self.rng)

    def _apply_random(self, packet: Packet, decision: Decision) -> None:
        c = self.config
        if c.duplicate_pct and self._chance(c.duplicate_pct):
            decision.copies += 1
            decision.random.append("duplicate")
        if c.corrupt_pct and self._chance(c.corrupt_pct) and decision.corrupt_bit < 0:
            decision.corrupt_bit = corrupt_bit(packet, self.rng)
            decision.random.append("corrupt")
        if c.delay_ms or c.jitter_ms:
            if self._reordered():
                decision.random.append("reorder")
            else:
                decision.delay_ms += self.delay()

    def _chance(self, pct: float) -> bool:
        return self.rng.random() * 100 < pct

    def _lost(self) -> bool:
        """Bernoulli loss, or with loss_burst the simple Gilbert model (see the docstring)."""
        c = self.config
        if not c.loss_pct:
            return False
        if c.loss_burst is None:
            return self._chance(c.loss_pct)
        r = 1 / c.loss_burst
        if self.bad_state:
            self.bad_state = self.rng.random() >= r  # stay Bad with 1 - R
        else:
            self.bad_state = self.rng.random() < gilbert_p(c.loss_pct / 100, c.loss_burst)
        return self.bad_state

    def _reordered(self) -> bool:
        """netem: the first gap-1 packets are delayed; then each is sent at once with
        probability reorder_pct (and the count starts again), or delayed like the rest."""
        c = self.config
        if not c.reorder_pct or self.since_reorder < c.reorder_gap - 1 or not self._chance(c.reorder_pct):
            self.since_reorder += 1
            return False
        self.since_reorder = 0
        return True

    def delay(self) -> float:
        """One delay in ms: delay_ms +- jitter_ms from the distribution, never below 0."""
        c, rng = self.config, self.rng
        if not c.jitter_ms:
            return c.delay_ms
        if c.distribution == "uniform":
            offset = rng.uniform(-1, 1)
        elif c.distribution == "normal":
            offset = rng.gauss(0, 1)
        elif c.distribution == "pareto":
            offset = _pareto(rng)
        else:  # paretonormal, as iproute2 builds its table: 1/4 pareto + 3/4 normal
            offset = 0.25 * _pareto(rng) + 0.75 * rng.gauss(0, 1)
        return max(0.0, c.delay_ms + c.jitter_ms * offset)


def _pareto(rng: random.Random) -> float:
    """A Pareto(alpha 3) draw moved to mean 0 and scaled to standard deviation 1:
    mostly a little early, now and then very late (a long right tail)."""
    alpha = 3.0
    mean = alpha / (alpha - 1)
    sd = (alpha / ((alpha - 1) ** 2 * (alpha - 2))) ** 0.5
    return (rng.paretovariate(alpha) - mean) / sd
