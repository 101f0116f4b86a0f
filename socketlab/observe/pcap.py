"""Pcap reading: a pcap or pcapng file -> `Pkt` records (pure; reads files only).

`read_pcap` decodes the headers itself with `struct` straight from the file's bytes (faster than
dpkt's object parse alone, and scapy's by far) and keeps, per IPv4 packet, the header fields the
analysis needs (`Pkt`) plus the first bytes of payload. Lengths are the ones the headers declare,
as Wireshark reports them, also on a frame captured short (a snap length below the frame).
Times are seconds (pcap clock). pcapng files go through dpkt's reader, then the same decoding.
The interpretation of these records (handshakes, flows, datagrams, ...) is in
`socketlab.observe.analysis`.
"""

from __future__ import annotations

import socket
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

PAYLOAD_KEEP = 64  # bytes of payload kept per packet (length and digest cover all of it)
PROTOS = {1: "icmp", 6: "tcp", 17: "udp"}
ICMP_ERRORS = {3: "unreachable", 4: "source quench", 5: "redirect", 11: "time exceeded",
               12: "parameter problem"}
UNREACH = {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable",
           3: "port unreachable", 4: "fragmentation needed", 13: "administratively prohibited"}
_FLAGS = (("S", 0x02), ("F", 0x01), ("R", 0x04), ("P", 0x08), ("A", 0x10), ("U", 0x20),
          ("E", 0x40), ("C", 0x80))
_RAW_DLTS = (12, 14, 101, 228)  # raw IP (DLT_RAW spellings, LINKTYPE_IPV4)
Endpoint = tuple[str, int]


@dataclass(frozen=True)
class Quote:
    """The datagram an ICMP error quotes (its IP header and first 8 bytes)."""

    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    ip_id: int


# A packet's first fields as the IP header gives them: index, ts, src, dst, proto, ip_len,
# ip_id, df, mf, frag_offset (Pkt's own order).
Head = tuple[int, float, str, str, str, int, int, bool, bool, int]


class Pkt(NamedTuple):
    """One IPv4 packet. `index` is the frame ordinal in its file (Wireshark's number - 1).

    A named tuple: immutable like a frozen dataclass, and built in a tenth of the time, which
    is most of what reading a large capture costs."""

    # Shadows tuple.index() on purpose: a packet's frame ordinal reads best as p.index, and
    # nothing calls tuple.index on a Pkt (mypy sees the shadowing as an incompatible override).
    index: int  # type: ignore[assignment]
    ts: float
    src: str
    dst: str
    proto: str  # 'tcp' | 'udp' | 'icmp' | 'ip-<n>'
    ip_len: int = 0  # total length, as the IP header declares it
    ip_id: int = 0
    df: bool = False
    mf: bool = False
    frag_offset: int = 0  # bytes
    sport: int = 0
    dport: int = 0
    flags: str = ""  # TCP: "S", "SA", "A", "PA", "FA", "R", "RA", ...
    seq: int = 0
    ack: int = 0
    window: int = 0  # raw header value, unscaled
    mss: int | None = None
    wscale: int | None = None
    length: int = 0  # L4 payload bytes the headers declare (fragment data for a non-first fragment)
    payload: bytes = b""  # first PAYLOAD_KEEP bytes (of what was captured)
    digest: int = 0  # crc32 of the captured payload, for matching captures
    udp_len: int | None = None  # payload length the UDP header declares (whole datagram)
    icmp_type: int | None = None
    icmp_code: int | None = None
    quote: Quote | None = None
    ip_hl: int = 20  # IP header length in bytes
    icmp_mtu: int | None = None  # "fragmentation needed": the next hop's MTU (RFC 1191)

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag_offset > 0

    @property
    def ip_payload(self) -> int:
        """Bytes after the IP header (what Wireshark calls a fragment's length)."""
        return self.ip_len - self.ip_hl

    @property
    def icmp_error(self) -> str | None:
        """What an ICMP error says ("port unreachable", "fragmentation needed", "time
        exceeded", ...); None for any other packet."""
        if self.proto != "icmp" or self.icmp_type is None or self.icmp_type not in ICMP_ERRORS:
            return None
        if self.icmp_type == 3 and self.icmp_code is not None:
            return UNREACH.get(self.icmp_code, ICMP_ERRORS[3])
        return ICMP_ERRORS[self.icmp_type]


# ---------------------------------------------------------------- reading
_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e6), b"\xa1\xb2\xc3\xd4": (">", 1e6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e9), b"\xa1\xb2\x3c\x4d": (">", 1e9)}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_IP_HDR = struct.Struct("!BxHHHxBxx4s4s")  # v/hl, total length, id, flags+offset, proto, addrs
_TCP_HDR = struct.Struct("!HHIIBBH")  # ports, seq, ack, data offset, flags, window
_UDP_HDR = struct.Struct("!HHH")
ETHERNET, _SLL, _SLL2 = 1, 113, 276
_IPV4, _VLANS = 0x0800, (0x8100, 0x88A8)


def read_pcap(path: str | Path) -> list[Pkt]:
    """Every IPv4 packet of a pcap or pcapng file (Ethernet, Linux cooked v1/v2 or raw IP)."""
    data = Path(path).read_bytes()
    if data[:4] == _PCAPNG_MAGIC:
        return _read_pcapng(path)
    if len(data) < 24 or data[:4] not in _PCAP_MAGIC:
        raise ValueError(f"{path}: not a pcap or pcapng file")
    order, divisor = _PCAP_MAGIC[data[:4]]
    link = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    decode = Decoder(link)
    record = struct.Struct(order + "IIII")
    out: list[Pkt] = []
    off, index, size = 24, 0, len(data)
    while off + 16 <= size:
        sec, frac, caplen, _ = record.unpack_from(data, off)
        off += 16
        end = min(off + caplen, size)
        pkt = decode(data, off, end, index, sec + frac / divisor)
        if pkt is not None:
            out.append(pkt)
        off, index = off + caplen, index + 1
    return out


def _read_pcapng(path: str | Path) -> list[Pkt]:
    import dpkt  # only pcapng needs it: its blocks are not worth a second hand-written reader

    with open(path, "rb") as f:
        reader = dpkt.pcapng.Reader(f)
        decode = Decoder(reader.datalink())
        return [p for i, (ts, buf) in enumerate(reader)
                if (p := decode(buf, 0, len(buf), i, float(ts))) is not None]


class Decoder:
    """Frame bytes -> Pkt for one link type; remembers the addresses it has spelled."""

    def __init__(self, link: int) -> None:
        if link not in (ETHERNET, _SLL, _SLL2) and link not in _RAW_DLTS:
            raise ValueError(f"unsupported pcap link type {link}")
        self.link = link
        self.names: dict[bytes, str] = {}

    def __call__(self, data: bytes, off: int, end: int, index: int, ts: float) -> Pkt | None:
        ip = self._ip_offset(data, off, end)
        if ip is None or ip + 20 > end:
            return None
        v_hl, total, ip_id, frag, proto, src, dst = _IP_HDR.unpack_from(data, ip)
        hl = (v_hl & 0x0F) * 4
        if v_hl >> 4 != 4 or hl < 20:
            return None
        names = self.names
        src_name = names.get(src) or names.setdefault(src, socket.inet_ntoa(src))
        dst_name = names.get(dst) or names.setdefault(dst, socket.inet_ntoa(dst))
        total = total or end - ip  # 0: a TSO super-packet captured before segmentation
        l4, stop = ip + hl, min(ip + total, end)
        head: Head = (index, ts, src_name, dst_name, PROTOS.get(proto) or f"ip-{proto}", total, ip_id,
                bool(frag & 0x4000), bool(frag & 0x2000), (frag & 0x1FFF) * 8)
        declared = total - hl
        if frag & 0x1FFF:  # a later fragment: no transport header in it
            return _pkt(head, data, l4, stop, declared, hl)
        if proto == 6 and l4 + 20 <= stop:
            return _tcp(head, data, l4, stop, declared, hl)
        if proto == 17 and l4 + 8 <= stop:
            sport, dport, ulen = _UDP_HDR.unpack_from(data, l4)
            return _pkt(head, data, l4 + 8, stop, declared - 8, hl, ports=(sport, dport),
                        udp_len=max(ulen - 8, 0))
        if proto == 1 and l4 + 4 <= stop:
            kind, code = data[l4], data[l4 + 1]
            quote = _quote(data[l4 + 8:stop]) if kind in ICMP_ERRORS else None
            mtu = (data[l4 + 6] << 8) | data[l4 + 7] if (kind, code) == (3, 4) and l4 + 8 <= stop \
                else None
            return Pkt(*head, length=max(declared - 8, 0), icmp_type=kind, icmp_code=code,
                       quote=quote, ip_hl=hl, icmp_mtu=mtu)
        return _pkt(head, data, l4, stop, declared, hl)

    def _ip_offset(self, data: bytes, off: int, end: int) -> int | None:
        if self.link == ETHERNET:
            kind, off = (data[off + 12] << 8) | data[off + 13] if off + 14 <= end else 0, off + 14
            while kind in _VLANS and off + 4 <= end:
                kind, off = (data[off + 2] << 8) | data[off + 3], off + 4
        elif self.link == _SLL:
            kind, off = (data[off + 14] << 8) | data[off + 15] if off + 16 <= end else 0, off + 16
        elif self.link == _SLL2:
            kind, off = (data[off] << 8) | data[off + 1] if off + 20 <= end else 0, off + 20
        else:
            kind = _IPV4
        return off if kind == _IPV4 else None


def _pkt(head: Head, data: bytes, start: int, stop: int, length: int, hl: int, *,
         ports: tuple[int, int] = (0, 0), udp_len: int | None = None) -> Pkt:
    """A packet whose payload runs from `start` to `stop` (what was captured of it)."""
    body = data[start:stop] if stop > start else b""
    return Pkt(*head, *ports, length=max(length, 0), payload=body[:PAYLOAD_KEEP],
               digest=zlib.crc32(body), ip_hl=hl, udp_len=udp_len)


def _tcp(head: Head, data: bytes, l4: int, stop: int, declared: int, hl: int) -> Pkt:
    sport, dport, seq, ack, doff, bits, win = _TCP_HDR.unpack_from(data, l4)
    doff = (doff >> 4) * 4
    flags = "".join(c for c, bit in _FLAGS if bits & bit)
    mss = wscale = None
    if bits & 0x02 and doff > 20:  # options that matter are only negotiated on SYNs
        mss, wscale = _syn_options(data[l4 + 20:min(l4 + doff, stop)])
    body = data[l4 + doff:stop] if stop > l4 + doff else b""
    return Pkt(*head, sport, dport, flags, seq, ack, win, mss, wscale, max(declared - doff, 0),
               body[:PAYLOAD_KEEP], zlib.crc32(body), ip_hl=hl)


def _syn_options(opts: bytes) -> tuple[int | None, int | None]:
    mss = wscale = None
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        size = opts[i + 1] if i + 1 < len(opts) else 0
        if size < 2:
            break
        if kind == 2 and size == 4 and i + 4 <= len(opts):
            mss = (opts[i + 2] << 8) | opts[i + 3]
        elif kind == 3 and size == 3 and i + 3 <= len(opts):
            wscale = opts[i + 2]
        i += size
    return mss, wscale


def _quote(raw: bytes) -> Quote | None:
    """The quoted IP header + 8 bytes of an ICMP error (parsed by hand: it is often truncated)."""
    if len(raw) < 20 or raw[0] >> 4 != 4:
        return None
    hl = (raw[0] & 0x0F) * 4
    ports = struct.unpack("!HH", raw[hl:hl + 4]) if len(raw) >= hl + 4 and raw[9] in (6, 17) \
        else (0, 0)
    return Quote(PROTOS.get(raw[9], f"ip-{raw[9]}"), socket.inet_ntoa(raw[12:16]),
                 socket.inet_ntoa(raw[16:20]), ports[0], ports[1], struct.unpack("!H", raw[4:6])[0])


def scapy_packets(path: str | Path) -> list:
    """The same file as scapy packets, for digging in by hand (`pkt.show()`, `pkt[TCP].options`,
    `ls(pkt)`); slower than read_pcap (about 5,000 packets/s), and scapy is imported only here."""
    import scapy.layers.inet  # noqa: F401  (registers IP, TCP, UDP, ICMP for the dissection)
    import scapy.layers.l2  # noqa: F401  (registers Ethernet)
    from scapy.utils import rdpcap

    return list(rdpcap(str(path)))  # scapy wants a str: a Path is taken for an open file
