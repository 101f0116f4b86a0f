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
    assert [r.t for r in tcp_ladder.rows if not isinstance(r, ld.Gap)] == pytest.approx(
        [0.0, 0.1, 0.2, 0.3, 0.6, 1.1, 201.1, 201.2, 201.3], abs=2e-3)
    gaps = [(i, r) for i, r in enumerate(tcp_ladder.rows) if isinstance(r, ld.Gap)]
    assert [(i, round(g.t, 1), round(g.ms)) for i, g in gaps] == [(6, 1.1, 200)]
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


def _rows(*times_ms: float) -> list:
    return [ld.Arrow(t, True, f"ACK at {t}") for t in times_ms]


def test_long_silences_become_gaps_and_steady_paces_do_not():
    timer = ld.with_gaps(_rows(0, 9, 12, 1012, 1013))  # a 1 s retransmission timer
    assert [type(r).__name__ for r in timer] == ["Arrow"] * 3 + ["Gap"] + ["Arrow"] * 2
    assert timer[3].ms == pytest.approx(1000)
    assert not any(isinstance(r, ld.Gap) for r in ld.with_gaps(_rows(0, 300, 600, 900)))
    assert not any(isinstance(r, ld.Gap) for r in ld.with_gaps(_rows(0, 0.1, 0.2, 50)))
    assert ld.with_gaps([]) == []


def test_a_gap_is_drawn_in_text_and_svg():
    ladder = ld.Ladder(CLIENT, SERVER, tuple(ld.with_gaps(_rows(0, 9, 12, 1012, 1013))), T0)
    lines = ld.render_text(ladder).splitlines()
    gap = next(line for line in lines if "later" in line)
    assert gap.strip().startswith("┆")
    assert gap.rstrip().endswith("┆")
    assert "1.00 s later" in gap
    assert lines.index(gap) == [i for i, line in enumerate(lines) if "ACK at 12" in line][0] + 1
    assert ":" in ld.render_text(ladder, ascii_only=True)
    texts = [t.text for t in ET.fromstring(ld.render_svg(ladder)).iter(f"{SVG}text")]
    assert "1.00 s later" in texts


@pytest.mark.parametrize("rightward", [True, False])
def test_lost_mark_is_clear_of_its_label(rightward):
    label = "SYN,ACK seq=0 ack=1 win=65160"
    ladder = ld.Ladder(CLIENT, SERVER, (ld.Arrow(0.0, rightward, label, dropped=True),), T0)
    root = ET.fromstring(ld.render_svg(ladder))
    texts = {t.text: t for t in root.iter(f"{SVG}text")}
    half = len(label) * ld._CW / 2
    centre, lost = float(texts[label].get("x")), float(texts["lost"].get("x"))
    line = next(ln for ln in root.iter(f"{SVG}line") if ln.get("stroke") == ld._COLOURS["drop"])
    end = float(line.get("x2"))
    if rightward:
        assert centre + half < end - 6 < end + 6 < lost  # label, then the X, then "lost"
    else:
        assert lost < end - 6 < end + 6 < centre - half
    lifelines = sorted(float(ln.get("x1")) for ln in root.iter(f"{SVG}line")
                       if ln.get("stroke") == "#888")
    word = 4 * ld._CW * 1.1  # "lost" in bold
    if rightward:
        assert lost + word < lifelines[1]  # short of the receiver's lifeline
    else:
        assert lost - word > lifelines[0]


def test_send_note_says_it_is_when_the_call_returned():
    from socketlab.observe.observation import call_label

    assert call_label({"event": "sent", "n": 11, "data": "hello,world"}) == "sendall() returned"
    assert call_label({"event": "sent", "n": 3, "data": "abc", "peer": "10.0.0.5:6666"}) == \
        "sendto() returned"


def test_fragment_labels_count_ip_payload_as_wireshark_does(tmp_path):
    from scapy.all import UDP, fragment

    big = IP(src=C, dst=S, id=7) / UDP(sport=50000, dport=6666) / (b"x" * 3000)
    frames = [Ether() / f for f in fragment(big, 1480)]
    for i, f in enumerate(frames):
        f.time = T0 + i * 1e-4
    labels = [a.label for a in ld.build_ladder(_write(tmp_path, "f.pcap", frames), CLIENT,
                                               SERVER).arrows]
    assert labels[0].startswith("UDP len=3000 (frag off=0 len=1480 MF)")
    assert labels[1:] == ["IP frag UDP id=7 off=1480 len=1480 MF", "IP frag UDP id=7 off=2960 len=48"]


def test_the_programs_calls_are_on_the_ladder_whatever_the_role_hosts_are_called(tmp_path):
    """The run's events come keyed by role (client, server); the ladder's sides are the hosts
    of those roles, here alice and bob, and each note is on its own host's side."""
    from types import SimpleNamespace

    from socketlab.observe.observation import ladder_files
    from tests.unit.test_topology import from_text

    topo = from_text("""
services:
  alice: {image: x, labels: [io.socketlab.role=client], networks: {n: {ipv4_address: 10.1.0.6}}}
  bob: {image: x, labels: [io.socketlab.role=server], networks: {n: {ipv4_address: 10.1.0.5}}}
networks:
  n: {ipam: {config: [{subnet: 10.1.0.0/24}]}}
""")
    ctx = SimpleNamespace(lab=SimpleNamespace(topology=topo), run_dir=tmp_path)
    obs = SimpleNamespace(packets={}, capture=SimpleNamespace(hosts={}))
    events = {"server": [{"event": "listening", "t": 1.0}], "client": [{"event": "connected", "t": 1.1}]}
    ladder_files(ctx, obs, "tcp", events)
    drawn = (tmp_path / "tcp-ladder.txt").read_text()
    listen = next(line for line in drawn.splitlines() if "listen()" in line)
    connect = next(line for line in drawn.splitlines() if "connect() returned" in line)
    assert listen.rstrip().endswith("│ listen()")  # on bob's side, the right
    assert connect.split("│")[0].strip().endswith("connect() returned")  # on alice's, the left


def test_a_routers_icmp_is_drawn_from_the_path_with_its_sender(tmp_path):
    """r1's "fragmentation needed" reaches the client only: it is on the ladder, from the path,
    named, with the MTU it announced (it was missing from P1's ladders)."""
    big = Ether() / IP(src=C, dst=S, id=30, flags="DF") / UDP(sport=50000, dport=PORT) / (b"x" * 1400)
    big.time = T0
    r1 = "192.168.33.2"
    icmp = Ether() / IP(src=r1, dst=C) / ICMP(type=3, code=4, nexthopmtu=1000) / bytes(big[IP])[:28]
    icmp.time = T0 + 0.0003
    client = _write(tmp_path, "c.pcap", [big, icmp])
    server = _write(tmp_path, "s.pcap", [])
    lad = ld.ladder_from_captures(client, server, CLIENT, SERVER, names={r1: "r1"})
    assert [(a.label, a.rightward, a.dropped, a.origin) for a in lad.arrows] == [
        ('UDP len=1400 "xxxxxxxxxxxxxxxx"...', True, True, ""),
        ("from r1 192.168.33.2: ICMP fragmentation needed mtu=1000 (UDP :50000->:6666)", False, False,
         "r1 192.168.33.2")]
    [line] = [x for x in ld.render_text(lad, width=140).splitlines() if "fragmentation" in x]
    assert re.search(r"│◄─ from r1 192\.168\.33\.2: ICMP fragmentation needed mtu=1000 .*─◆ +│$", line), line
    assert line.index("◆") < len(line) - 5  # it starts from the path, not from the server
    svg = ET.fromstring(ld.render_svg(lad))
    assert any("from r1" in (t.text or "") for t in svg.iter(f"{SVG}text"))
    # an ICMP between the two hosts themselves is not "from the path"
    assert not ld.build_ladder([p for p in client if p.proto == "udp"], CLIENT, SERVER).arrows[0].origin


def test_segments_coalesced_on_the_way_are_neither_lost_nor_resent(tmp_path):
    """Swarm's C8: the client sent five 1398-byte segments, the server's capture holds one of
    6990 (GRO on the overlay's VXLAN device). No loss, no [retx] nobody sent; a note says it."""
    hs = _tcp_exchange()[:3]
    data = [_tcp(0.001 + i * 1e-5, "A", 1001 + i * 1398, 5001, data=b"z" * 1398, ip_id=10 + i)
            for i in range(5)]
    big = _tcp(0.0012, "PA", 1001, 5001, data=b"z" * 6990, ip_id=10)
    ack = _tcp(0.0013, "A", 5001, 7991, to_server=False)
    client = _write(tmp_path, "c.pcap", [*hs, *data, ack])
    server = _write(tmp_path, "s.pcap", [*hs, big, ack])
    lad = ld.ladder_from_captures(client, server, CLIENT, SERVER)
    assert not any(a.dropped or a.retransmission for a in lad.arrows), lad.arrows
    assert sum("len=1398" in a.label for a in lad.arrows) == 5
    assert not any("len=6990" in a.label for a in lad.arrows)
    notes = [n for n in lad.rows if isinstance(n, ld.Note)]
    assert [(n.right, n.label) for n in notes] == [
        (True, "5 coalesced in 6990 B")]  # fits the text ladder's note column
    # a segment the receiver never got, whatever else arrived, is still lost
    client = _write(tmp_path, "c2.pcap", [*hs, *data, ack])
    server = _write(tmp_path, "s2.pcap", [*hs, _tcp(0.0012, "PA", 1001, 5001, data=b"z" * 5592,
                                                   ip_id=10), ack])
    lad = ld.ladder_from_captures(client, server, CLIENT, SERVER)
    assert [a.dropped for a in lad.arrows if "len=1398" in a.label] == [False] * 4 + [True]
