"""Packet-exact faults ("drop the first SYN-ACK"), and the packet fields they match on.

A fault is a dict: {"match": {"proto": "tcp", "flags": "SA", "nth": 1}, "action": "drop"}.
Actions: drop, delay (with "ms"), duplicate, corrupt. `parse_fault` is the one judge of a
fault dict (lab-nfq's, lab-shape's and the host side's); `parse_fault_text` reads the compact
form the CLI takes: `ACTION [TIME] [PROTO] [KEY=VALUE ...]`, and `fault_text` writes a fault
dict in it (for every place that shows one). Pure: no sockets, no clock.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass, field
from socket import inet_ntoa  # bytes -> "192.168.33.5" (a pure function)
from typing import Any

from .spec import ShapeError, parse_time

FLAG_LETTERS = "FSRPAUEC"  # TCP flag bits 0..7, in scapy's order: SYN+ACK is "SA"
PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17}
PROTO_NAMES = {n: name for name, n in PROTO_NUMBERS.items()}
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
        raise ShapeError('match key "last" is not supported: whether a packet is the last one '
                         "is unknown when it passes; count the packets once and use nth")
    if unknown:
        raise ShapeError(f"unknown match keys {sorted(unknown)}; known: {', '.join(MATCH_KEYS)}")
    values = dict(spec)
    if values.get("proto") is not None and values["proto"] not in PROTO_NUMBERS:
        raise ShapeError(f"match proto {values['proto']!r}: use one of {', '.join(PROTO_NUMBERS)}")
    if values.get("flags") is not None:
        flags = str(values["flags"]).upper()
        if set(flags) - set(FLAG_LETTERS):
            raise ShapeError(f"match flags {flags!r}: use letters of {FLAG_LETTERS}")
        values["flags"] = frozenset(flags)
    if values.get("nth") is not None:
        nth = values["nth"] if isinstance(values["nth"], list) else [values["nth"]]
        if not all(isinstance(n, int) and n >= 1 for n in nth):
            raise ShapeError(f"match nth {values['nth']!r}: ordinals are whole numbers from 1")
        values["nth"] = frozenset(nth)
    return Match(**values)


def parse_fault(index: int, spec: dict) -> Fault:
    if not isinstance(spec, dict) or not isinstance(spec.get("match") or {}, dict):
        raise ShapeError(f"fault {index}: a fault is a dict with an action and a match dict")
    action = spec.get("action")
    if action not in ACTIONS:
        raise ShapeError(f"fault {index}: action {action!r}; use one of {', '.join(ACTIONS)}")
    unknown = set(spec) - {"match", "action", "ms"}
    if unknown:
        raise ShapeError(f"fault {index}: unknown keys {sorted(unknown)}")
    ms = spec.get("ms", 0)
    if not isinstance(ms, int | float) or isinstance(ms, bool) or not 0 <= ms <= 60_000:
        raise ShapeError(f"fault {index}: ms {ms!r} is not a time in ms (0-60000)")
    if action == "delay" and ms <= 0:
        raise ShapeError(f"fault {index}: a delay needs ms > 0")
    try:
        match = parse_match(spec.get("match") or {})
    except ShapeError as e:
        raise ShapeError(f"fault {index}: {e}") from None
    return Fault(index, match, action, float(ms), dict(spec))


def parse_faults(specs: list) -> tuple[Fault, ...]:
    if not isinstance(specs, list | tuple):
        raise ShapeError("faults must be a list of fault dicts")
    return tuple(parse_fault(i, f) for i, f in enumerate(specs))


# -- the compact form: "drop tcp flags=SA nth=1" -----------------------------------------------
FAULT_EXAMPLES = ('e.g. "drop tcp flags=SA nth=1", "delay 300ms tcp min_len=1 nth=3", '
                  '"duplicate udp dport=6666 nth=2"')
_INT_KEYS = ("sport", "dport", "len", "min_len", "max_len")


def parse_fault_text(text: str) -> dict:
    """`ACTION [TIME] [PROTO] [KEY=VALUE ...]` -> a fault dict; ShapeError (one line).

    ACTION: drop, delay (then a time: 300ms), duplicate, corrupt. PROTO: tcp, udp or icmp
    (or proto=...). KEYs: flags, src, dst, sport, dport, len, min_len, max_len, nth (1 or 1,3).
    "drop tcp flags=SA nth=1" -> {"match": {"proto": "tcp", "flags": "SA", "nth": 1},
    "action": "drop"}. parse_fault has the last word on the result."""
    words = text.split()
    if not words:
        raise _text_error(text, "the fault is empty")
    fault: dict[str, Any] = {"action": words[0].lower()}
    rest = words[1:]
    if fault["action"] == "delay":
        if not rest or not rest[0][:1].isdigit():
            raise _text_error(text, "a delay needs a time after it (e.g. delay 300ms)")
        try:
            fault["ms"] = parse_time(rest.pop(0), "delay")
        except ShapeError as e:
            raise _text_error(text, str(e)) from None
    fault["match"] = _text_match(text, rest)
    try:
        parse_fault(0, fault)
    except ShapeError as e:
        raise _text_error(text, str(e).removeprefix("fault 0: ")) from None
    return fault


def fault_text(fault: dict) -> str:
    """A fault dict in the compact form parse_fault_text reads back (the one way a fault is
    shown): {"action": "drop", "match": {"proto": "tcp", "flags": "SA", "nth": 1}} ->
    "drop tcp flags=SA nth=1". The keys in MATCH_KEYS' order; a time only for a delay (the
    only action that reads it)."""
    words = [str(fault.get("action"))]
    if fault.get("action") == "delay":
        words.append(f"{float(fault.get('ms', 0)):g}ms")
    match = dict(fault.get("match") or {})
    if match.get("proto") is not None:
        words.append(str(match.pop("proto")))
    for key in sorted(match, key=lambda k: MATCH_KEYS.index(k) if k in MATCH_KEYS else len(MATCH_KEYS)):
        value = match[key]
        if value is None:
            continue
        if key == "nth" and isinstance(value, list | tuple | set | frozenset):
            value = ",".join(str(n) for n in sorted(value))
        elif key == "flags":
            value = "".join(value) if not isinstance(value, str) else value
        words.append(f"{key}={value}")
    return " ".join(words)


def _text_match(text: str, words: list[str]) -> dict[str, Any]:
    match: dict[str, Any] = {}
    for word in words:
        key, eq, value = word.partition("=")
        key = key.lower().replace("-", "_")
        if not eq:
            key, value = "proto", word
        if key in match:
            raise _text_error(text, f"{key} is given twice")
        if not value:
            raise _text_error(text, f"{key}= needs a value")
        match[key] = _text_value(text, key, value)
    return match


def _text_value(text: str, key: str, value: str) -> Any:
    if key == "proto":
        return value.lower()
    if key == "flags":
        return value.upper()
    if key == "nth":
        parts = value.split(",")
        if not all(p.isdigit() and int(p) >= 1 for p in parts):
            raise _text_error(text, f"nth={value}: ordinals are whole numbers from 1 (e.g. nth=1,3)")
        nth = [int(p) for p in parts]
        return nth[0] if len(nth) == 1 else nth
    if key in _INT_KEYS:
        if not value.isdigit() or (key.endswith("port") and int(value) > 65535):
            raise _text_error(text, f"{key}={value} is not a " +
                              ("port (0-65535)" if key.endswith("port") else "length in bytes"))
        return int(value)
    if key in ("src", "dst"):
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise _text_error(text, f"{key}={value} is not an IPv4 address") from None
    return value  # an unknown key is parse_fault's to refuse


def _text_error(text: str, why: str) -> ShapeError:
    return ShapeError(f"fault {text.strip()!r}: {why}")
