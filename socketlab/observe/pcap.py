"""Pcap reading: a pcap or pcapng file -> `Pkt` records (pure; reads files only).

`read_pcap` decodes with dpkt (scapy parses ~25x slower) and keeps, per IPv4 packet, the header
fields the analysis needs (`Pkt`) plus the first bytes of payload. Times are seconds (pcap clock).
The interpretation of these records (handshakes, flows, datagrams, ...) is in `socketlab.observe.analysis`.
"""

from __future__ import annotations

import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dpkt

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


@dataclass(frozen=True)
class Pkt:
    """One IPv4 packet. `index` is the frame ordinal in its file (Wireshark's number - 1)."""

    index: int
    ts: float
    src: str
    dst: str
    proto: str  # 'tcp' | 'udp' | 'icmp' | 'ip-<n>'
    ip_len: int = 0
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
    length: int = 0  # L4 payload bytes in this packet (fragment data for a non-first fragment)
    payload: bytes = b""  # first PAYLOAD_KEEP bytes
    digest: int = 0  # crc32 of the whole payload, for matching captures
    udp_len: int | None = None  # payload length the UDP header declares (whole datagram)
    icmp_type: int | None = None
    icmp_code: int | None = None
    quote: Quote | None = None

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag_offset > 0


# ---------------------------------------------------------------- reading
def read_pcap(path: str | Path) -> list[Pkt]:
    """Every IPv4 packet of a pcap or pcapng file (Ethernet, Linux cooked v1/v2 or raw IP)."""
    with open(path, "rb") as f:
        reader = dpkt.pcap.UniversalReader(f)
        to_ip = _ip_decoder(reader.datalink())
        out = []
        for index, (ts, buf) in enumerate(reader):
            ip = to_ip(buf)
            if ip is not None:
                out.append(_dissect(index, float(ts), ip))
        return out


def _ip_decoder(dlt: int) -> Callable[[bytes], dpkt.ip.IP | None]:
    links = {dpkt.pcap.DLT_EN10MB: dpkt.ethernet.Ethernet, dpkt.pcap.DLT_LINUX_SLL: dpkt.sll.SLL,
             dpkt.pcap.DLT_LINUX_SLL2: dpkt.sll2.SLL2}
    if dlt in _RAW_DLTS:
        link: Callable[[bytes], object] = dpkt.ip.IP
    elif dlt in links:
        link = links[dlt]
    else:
        raise ValueError(f"unsupported pcap link type {dlt}")

    def decode(buf: bytes) -> dpkt.ip.IP | None:
        try:
            frame = link(buf)
        except (dpkt.Error, struct.error):
            return None  # truncated or malformed frame
        ip = frame if isinstance(frame, dpkt.ip.IP) else getattr(frame, "data", None)
        return ip if isinstance(ip, dpkt.ip.IP) and ip.v == 4 else None

    return decode


def _dissect(index: int, ts: float, ip: dpkt.ip.IP) -> Pkt:
    base = dict(index=index, ts=ts, src=socket.inet_ntoa(ip.src), dst=socket.inet_ntoa(ip.dst),
                proto=PROTOS.get(ip.p, f"ip-{ip.p}"), ip_len=ip.len, ip_id=ip.id,
                df=bool(ip.df), mf=bool(ip.mf), frag_offset=ip.offset * 8)
    l4 = ip.data
    if isinstance(l4, dpkt.tcp.TCP):
        base.update(_tcp_fields(l4))
        l4 = l4.data
    elif isinstance(l4, dpkt.udp.UDP):
        base.update(sport=l4.sport, dport=l4.dport, udp_len=max(l4.ulen - 8, 0))
        l4 = l4.data
    elif isinstance(l4, dpkt.icmp.ICMP):
        base.update(icmp_type=l4.type, icmp_code=l4.code)
        if l4.type in ICMP_ERRORS:
            base["quote"] = _quote(l4.data)
        return Pkt(**base, length=max(ip.len - ip.hl * 4 - 8, 0))
    data = l4 if isinstance(l4, bytes) else bytes(l4)
    return Pkt(**base, length=len(data), payload=data[:PAYLOAD_KEEP], digest=zlib.crc32(data))


def _tcp_fields(tcp: dpkt.tcp.TCP) -> dict:
    fields = dict(sport=tcp.sport, dport=tcp.dport, seq=tcp.seq, ack=tcp.ack, window=tcp.win,
                  flags="".join(c for c, bit in _FLAGS if tcp.flags & bit))
    if tcp.flags & 0x02 and tcp.opts:  # options that matter are only negotiated on SYNs
        for opt in dpkt.tcp.parse_opts(tcp.opts):
            if opt and opt[0] == dpkt.tcp.TCP_OPT_MSS and len(opt[1]) == 2:
                fields["mss"] = struct.unpack("!H", opt[1])[0]
            elif opt and opt[0] == dpkt.tcp.TCP_OPT_WSCALE and len(opt[1]) == 1:
                fields["wscale"] = opt[1][0]
    return fields


def _quote(body: object) -> Quote | None:
    """Parse the quoted IP header + 8 bytes by hand: dpkt's nested parse drops truncated quotes."""
    raw = bytes(body)[4:] if not isinstance(body, bytes) else body[4:]
    if len(raw) < 20 or raw[0] >> 4 != 4:
        return None
    hl = (raw[0] & 0x0F) * 4
    ports = struct.unpack("!HH", raw[hl:hl + 4]) if len(raw) >= hl + 4 and raw[9] in (6, 17) \
        else (0, 0)
    return Quote(PROTOS.get(raw[9], f"ip-{raw[9]}"), socket.inet_ntoa(raw[12:16]),
                 socket.inet_ntoa(raw[16:20]), ports[0], ports[1], struct.unpack("!H", raw[4:6])[0])
