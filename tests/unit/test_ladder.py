"""Ladder diagrams from synthetic two-host captures (client's and server's pcap of one exchange)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from scapy.all import ICMP, IP, TCP, UDP, Ether, wrpcap

from socketlab.observe import analysis as an
from socketlab.observe import ladder as ld

C, S, PORT, CPORT = "192.168.33.6", "192.168.33.5", 6666, 40000
T0 = 1_700_000_000.0
CLIENT, SERVER = ld.Host("client", C), ld.Host("server", S)
SVG = "{http://www.w3.org/2000/svg}"


def _tcp(dt, flags, seq, ack=0, win=502, data=b"", to_server=True, ip_id=0, opts=None):
    src, dst, sport, dport = (C, S, CPORT, PORT) if to_server else (S, C, PORT, CPORT)
    pkt = Ether() / IP(src=src, dst=dst, id=ip_id) / TCP(
        sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=win,
        options=opts or []) / data
    pkt.time = T0 + dt
    return pkt


def _udp(dt, data: bytes, ip_id: int):
    pkt = Ether() / IP(src=C, dst=S, id=ip_id) / UDP(sport=50000, dport=PORT) / data
    pkt.time = T0 + dt
    return pkt


def _tcp_exchange() -> list:
    return [
        _tcp(0.0, "S", 1000, win=64240, ip_id=1, opts=[("MSS", 1460), ("WScale", 7)]),
        _tcp(0.0001, "SA", 5000, 1001, 65160, to_server=False, opts=[("MSS", 1460),
                                                                        ("WScale", 7)]),
        _tcp(0.0002, "A", 1001, 5001, ip_id=2),
        _tcp(0.001, "PA", 1001, 5001, data=b"hello,world", ip_id=3),
        _tcp(0.201, "PA", 1001, 5001, data=b"hello,world", ip_id=4),
        _tcp(0.2011, "A", 5001, 1012, 509, to_server=False),
    ]


def _write(tmp_path, name: str, pkts: list) -> list[an.Pkt]:
    path = str(tmp_path / name)  # scapy wants str paths
    wrpcap(path, pkts)
    return an.read_pcap(path)


@pytest.fixture
def tcp_ladder(tmp_path) -> ld.Ladder:
    """Both hosts' captures; the client's first data segment never reaches the server."""
    sent = _tcp_exchange()
    client = _write(tmp_path, "client.pcap", sent)
    server = _write(tmp_path, "server.pcap", [p for i, p in enumerate(sent) if i != 3])
    events = [("server", T0 + 0.0005, "accept() returned"),
              ("server", T0 + 0.2012, 'recv(3) -> "hel"'),
              ("client", T0 - 0.0001, "connect()")]
    return ld.ladder_from_captures(client, server, CLIENT, SERVER, events=events)


def test_arrows_in_order_with_labels(tcp_ladder):
    arrows = tcp_ladder.arrows
    assert [a.label for a in arrows] == [
        "SYN seq=0 win=64240",
        "SYN,ACK seq=0 ack=1 win=65160",
        "ACK seq=1 ack=1 win=64256",
        'PSH,ACK seq=1 ack=1 len=11 "hello,world"',
        '[retx] PSH,ACK seq=1 ack=1 len=11 "hello,world"',
        "ACK seq=1 ack=12 win=65152",
    ]
    assert [a.rightward for a in arrows] == [True, False, True, True, True, False]
    assert [a.dropped for a in arrows] == [False, False, False, True, False, False]
    assert [a.retransmission for a in arrows] == [False] * 4 + [True, False]


def test_times_are_ms_from_first_item_and_notes_interleave(tcp_ladder):
    assert tcp_ladder.t0 == pytest.approx(T0 - 0.0001)
    assert [r.t for r in tcp_ladder.rows] == pytest.approx(
        [0.0, 0.1, 0.2, 0.3, 0.6, 1.1, 201.1, 201.2, 201.3], abs=2e-3)
    notes = [r for r in tcp_ladder.rows if isinstance(r, ld.Note)]
    assert [(n.right, n.label) for n in notes] == [
        (False, "connect()"), (True, "accept() returned"), (True, 'recv(3) -> "hel"')]


def test_render_text(tcp_ladder):
    text = ld.render_text(tcp_ladder)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "client" in lines[0]
    assert "server" in lines[0]
    assert C in lines[1]
    assert S in lines[1]
    body = [line for line in lines if "seq=" in line]
    assert len(body) == 6
    assert "SYN seq=0 win=64240" in body[0]
    assert body[0].rstrip().endswith("►│")
    assert "SYN,ACK seq=0 ack=1" in body[1]
    assert "◄" in body[1]
    assert re.search(r"►X +│$", body[3])
    assert "PSH,ACK seq=1 ack=1" in body[3]
    assert "[retx]" in body[4]
    assert body[4].rstrip().endswith("►│")
    assert lines.index(body[0]) < lines.index(body[1]) < lines.index(body[5])
    assert [line for line in lines if "accept() returned" in line][0].rstrip().endswith(
        "│ accept() returned")
    assert [line for line in lines if "connect()" in line][0].split()[1:] == ["connect()", "│",
                                                                             "│"]


def test_render_text_ascii_and_narrow(tcp_ladder):
    text = ld.render_text(tcp_ladder, width=72, ascii_only=True)
    assert text.isascii()
    assert max(len(line) for line in text.splitlines()) <= 72
    assert "->X" in text
    assert "~" in text


def test_render_svg_parses_and_carries_labels(tcp_ladder):
    svg = ld.render_svg(tcp_ladder)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for label in ["SYN seq=0 win=64240", "ACK seq=1 ack=12 win=65152", "accept() returned",
                  'recv(3) -> "hel"', "client", "server", C, S, "lost"]:
        assert label in texts
    lines = list(root.iter(f"{SVG}line"))
    assert sum(1 for ln in lines if ln.get("marker-end")) == 5  # every arrow but the lost one
    assert any(ln.get("stroke-dasharray") for ln in lines)  # the retransmission
    assert len(list(root.iter(f"{SVG}marker"))) >= 1


def test_udp_and_icmp_labels(tmp_path):
    hello = _udp(0.0, b"hello,world", 10)
    icmp = Ether() / IP(src=S, dst=C) / ICMP(type=3, code=3) / bytes(hello[IP])
    icmp.time = T0 + 0.0002
    pkts = _write(tmp_path, "udp.pcap", [hello, icmp, _udp(0.001, b"x" * 40, 11)])
    lad = ld.build_ladder(pkts, CLIENT, SERVER)
    assert [a.label for a in lad.arrows] == [
        'UDP len=11 "hello,world"',
        "ICMP port unreachable (UDP :50000->:6666)",
        'UDP len=40 "xxxxxxxxxxxxxxxx"...',
    ]
    assert [a.rightward for a in lad.arrows] == [True, False, True]


def test_lost_udp_datagram_is_a_drop(tmp_path):
    sent = _write(tmp_path, "c.pcap", [_udp(i * 0.001, b"n=%d" % i, 20 + i) for i in range(3)])
    got = _write(tmp_path, "s.pcap", [_udp(i * 0.001, b"n=%d" % i, 20 + i) for i in (0, 2)])
    lad = ld.ladder_from_captures(sent, got, CLIENT, SERVER)
    assert [(a.label, a.dropped) for a in lad.arrows] == [
        ('UDP len=3 "n=0"', False), ('UDP len=3 "n=1"', True), ('UDP len=3 "n=2"', False)]
    text = ld.render_text(lad)
    assert [bool(re.search(r"►X +│$", line)) for line in text.splitlines() if "UDP" in line] == [
        False, True, False]
