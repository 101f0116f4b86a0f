"""Analysis over synthetic captures: scapy builds the packets, dpkt (via read_pcap) reads them."""

from __future__ import annotations

import pytest
from scapy.all import ARP, ICMP, IP, TCP, UDP, CookedLinux, Ether, RawPcapWriter, fragment, wrpcap

from socketlab.observe import analysis as an

C, S, PORT, CPORT = "192.168.33.6", "192.168.33.5", 6666, 40000
T0 = 1_700_000_000.0
SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]


def _at(pkt, dt: float):
    pkt.time = T0 + dt
    return pkt


def _tcp(dt, flags, seq, ack=0, win=502, data=b"", to_server=True, opts=None, ip_id=0):
    src, dst, sport, dport = (C, S, CPORT, PORT) if to_server else (S, C, PORT, CPORT)
    tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=win,
              options=opts or [])
    return _at(Ether() / IP(src=src, dst=dst, id=ip_id, flags="DF") / tcp / data, dt)


def conversation() -> list:
    """ARP, a TCP connection (handshake, 'hello,world' sent twice, FIN both ways), a UDP
    datagram answered by ICMP port unreachable, and a 4000-byte UDP datagram in 3 fragments."""
    hello = IP(src=C, dst=S, id=100) / UDP(sport=50000, dport=PORT) / b"hello,world"
    big = IP(src=C, dst=S, id=200) / UDP(sport=50001, dport=PORT) / (b"x" * 4000)
    frags = [_at(Ether() / f, 2.0 + i * 1e-4) for i, f in enumerate(fragment(big, 1480))]
    return [
        _at(Ether() / ARP(psrc=C, pdst=S), -0.01),
        _tcp(0.0, "S", 1000, win=64240, opts=SYN_OPTS, ip_id=1),
        _tcp(0.00012, "SA", 5000, 1001, 65160, to_server=False, opts=[("MSS", 1460),
                                                                         ("WScale", 7)]),
        _tcp(0.0002, "A", 1001, 5001, ip_id=2),
        _tcp(0.001, "PA", 1001, 5001, data=b"hello,world", ip_id=3),
        _tcp(0.205, "PA", 1001, 5001, data=b"hello,world", ip_id=4),  # retransmission
        _tcp(0.2051, "A", 5001, 1012, 509, to_server=False),
        _tcp(0.3, "FA", 1012, 5001, ip_id=5),
        _tcp(0.3001, "FA", 5001, 1013, 509, to_server=False),
        _tcp(0.3002, "A", 1013, 5002, ip_id=6),
        _at(Ether() / hello, 1.0),
        _at(Ether() / IP(src=S, dst=C) / ICMP(type=3, code=3) / bytes(hello), 1.0001),
        *frags,
    ]


@pytest.fixture
def pkts(tmp_path) -> list[an.Pkt]:
    path = str(tmp_path / "conv.pcap")  # scapy wants str: a Path is mistaken for an open file
    wrpcap(path, conversation())
    return an.read_pcap(path)


def test_read_pcap_keeps_ipv4_with_frame_ordinals(pkts):
    assert len(pkts) == 14  # the ARP frame is skipped but keeps its ordinal
    assert [p.index for p in pkts] == list(range(1, 15))
    syn = pkts[0]
    assert (syn.src, syn.dst, syn.proto, syn.sport, syn.dport) == (C, S, "tcp", CPORT, PORT)
    assert (syn.flags, syn.seq, syn.window, syn.mss, syn.wscale) == ("S", 1000, 64240, 1460, 7)
    assert syn.ts == pytest.approx(T0, abs=1e-6)
    assert syn.df
    assert syn.ip_id == 1
    assert [p.flags for p in pkts[:9]] == ["S", "SA", "A", "PA", "PA", "A", "FA", "FA", "A"]
    data = pkts[3]
    assert (data.length, data.payload, data.ip_len) == (11, b"hello,world", 20 + 20 + 11)


@pytest.mark.parametrize("link", ["cooked", "raw"])
def test_read_pcap_other_link_types(tmp_path, link):
    ip = IP(src=C, dst=S, id=7) / UDP(sport=50000, dport=PORT) / b"hello,world"
    frame = CookedLinux(proto=0x0800) / ip if link == "cooked" else ip
    path = str(tmp_path / f"{link}.pcap")
    wrpcap(path, [frame, CookedLinux(proto=0x0806) / ARP() if link == "cooked" else ip])
    got = an.read_pcap(path)
    assert len(got) == (1 if link == "cooked" else 2)
    assert (got[0].proto, got[0].ip_id, got[0].udp_len, got[0].payload) == (
        "udp", 7, 11, b"hello,world")


def test_handshake_numbers_and_times(pkts):
    hs = an.handshake(pkts, (S, PORT))
    assert hs is not None
    assert hs.established
    assert hs.reset is None
    assert (hs.client, hs.server) == ((C, CPORT), (S, PORT))
    assert (hs.syn.seq, hs.synack.seq, hs.synack.ack, hs.ack.seq, hs.ack.ack) == (
        1000, 5000, 1001, 1001, 5001)
    assert [hs.relative(p) for p in (hs.syn, hs.synack, hs.ack)] == [(0, 0), (0, 1), (1, 1)]
    assert hs.syn_to_synack == pytest.approx(120e-6, abs=2e-6)
    assert hs.synack_to_ack == pytest.approx(80e-6, abs=2e-6)
    assert hs.wscales == (7, 7)
    assert (hs.syn.mss, hs.synack.mss) == (1460, 1460)


def test_handshake_refused_by_rst():
    syn = an.Pkt(0, 1.0, C, S, "tcp", sport=CPORT, dport=PORT, flags="S", seq=77)
    rst = an.Pkt(1, 1.0002, S, C, "tcp", sport=PORT, dport=CPORT, flags="RA", ack=78)
    hs = an.handshake([syn, rst], (S, PORT))
    assert hs.reset == rst
    assert hs.synack is None
    assert not hs.established
    assert hs.relative(rst) == (1, 1)  # as Wireshark reads it: no SYN-ACK, seq counts from seq-1
    assert hs.window(rst) == 0
    assert an.handshake([rst], (S, PORT)) is None
    assert an.handshake([syn], (S, 7)) is None


def test_tcp_flow_segments_windows_retransmission(pkts):
    flow = an.tcp_flow(pkts, (S, PORT))
    assert flow.client == (C, CPORT)
    assert len(flow.segments) == 9
    assert [(s.rel_seq, s.length, s.retransmission) for s in flow.data] == [
        (1, 11, False), (1, 11, True)]
    assert [s.pkt.index for s in flow.retransmissions] == [5]
    assert [s.window for s in flow.segments[:3]] == [64240, 65160, 502 * 128]  # SYNs unscaled
    ack = flow.acks[1]
    assert (ack.from_client, ack.rel_seq, ack.rel_ack, ack.window) == (False, 1, 12, 509 * 128)
    assert [(s.flags, s.rel_seq, s.rel_ack) for s in flow.teardown] == [
        ("FA", 12, 1), ("FA", 1, 13)]
    assert flow.bytes_sent(by_client=True) == 11
    assert flow.bytes_sent(by_client=False) == 0
    assert flow.zero_windows == ()
    assert an.tcp_flow(pkts, (S, PORT), client=(C, CPORT)) == flow
    assert an.tcp_flow(pkts, (S, PORT), client=(C, 1)) is None


def test_tcp_flow_without_handshake_starts_at_one(pkts):
    flow = an.tcp_flow(pkts[3:], (S, PORT))
    assert flow.handshake is None
    assert (flow.segments[0].rel_seq, flow.segments[0].rel_ack) == (1, 1)
    assert flow.segments[0].window == 502  # no scale known without the SYNs
    assert an.tcp_flow(pkts, (S, 9999)) is None


def test_udp_datagrams_count_a_fragmented_one_once(pkts):
    grams = an.udp_datagrams(pkts, PORT)
    assert [(g.pkt.sport, g.length, g.fragmented) for g in grams] == [
        (50000, 11, False), (50001, 4000, True)]
    assert grams[0].payload == b"hello,world"
    assert an.udp_datagrams(pkts, 7) == []


def test_icmp_port_unreachable_quotes_the_datagram(pkts):
    (err,) = an.icmp_errors(pkts)
    assert (err.pkt.src, err.pkt.icmp_type, err.pkt.icmp_code) == (S, 3, 3)
    assert err.description == "port unreachable"
    assert err.quote == an.Quote("udp", C, S, 50000, PORT, 100)
    assert err.refers_to is not None
    assert err.refers_to.index == 10


def test_fragments_offsets_and_completeness(pkts):
    (group,) = an.fragments(pkts)
    assert (group.src, group.dst, group.ip_id, group.proto) == (C, S, 200, "udp")
    assert [(p.frag_offset, p.length, p.mf) for p in group.pieces] == [
        (0, 1472, True), (1480, 1480, True), (2960, 1048, False)]
    assert group.complete
    assert group.total_length == 8 + 4000
    holed = an.fragments([group.pieces[0], group.pieces[2]])[0]
    assert not holed.complete


def test_summary_counts(pkts):
    s = an.summary(pkts)
    assert s["packets"] == 14
    assert s["fragments"] == 3
    assert s["icmp_errors"] == 1
    assert s["protocols"] == {"tcp": 9, "udp": 4, "icmp": 1}
    assert s["tcp_flags"] == {"S": 1, "SA": 1, "A": 3, "PA": 2, "FA": 2}
    assert s["payload_bytes"] == 11 * 2 + 11 + (28 + 11) + 4000  # ICMP: its quote
    assert s["duration"] == pytest.approx(2.0002, abs=1e-5)


def test_exchange_bundles_one_conversation(pkts):
    other = an.Pkt(99, T0, "10.0.0.1", S, "udp", sport=1, dport=PORT, udp_len=0)
    ex = an.exchange([*pkts, other], C, S, PORT)
    assert len(ex.packets) == 14
    assert ex.handshake.established
    assert len(ex.flow.segments) == 9
    assert len(ex.datagrams) == 2
    assert len(ex.icmp) == 1
    assert len(ex.fragments) == 1


def test_match_captures_attributes_loss(pkts):
    sent = [p for p in pkts if p.src == C]
    # the receiver's copies: another file (other ordinals, later times), one lost on the way
    recv = [p._replace(index=i, ts=p.ts + 5e-5)
            for i, p in enumerate(sent) if p.ip_id != 3]
    stray = an.Pkt(500, T0 + 9, C, S, "udp", sport=1, dport=2, ip_id=9)
    matched, only_sender, only_receiver = an.match_captures(sent, [*recv, stray])
    assert len(matched) == len(sent) - 1
    assert all(an.match_key(a) == an.match_key(b) for a, b in matched)
    assert [p.ip_id for p in only_sender] == [3]
    assert only_receiver == [stray]


def test_a_packet_fragmented_on_the_way_is_not_lost():
    """Sent whole (no DF), it arrives as fragments a router made: paired with the first one."""
    whole = an.Pkt(0, T0, C, S, "udp", ip_len=1250, ip_id=7, sport=4000, dport=6666, length=1222)
    first = an.Pkt(0, T0 + 1e-4, C, S, "udp", ip_len=996, ip_id=7, mf=True, sport=4000,
                   dport=6666, length=968)
    second = an.Pkt(1, T0 + 2e-4, C, S, "udp", ip_len=274, ip_id=7, frag_offset=976, length=254)
    gone = an.Pkt(1, T0 + 1, C, S, "udp", ip_len=1250, ip_id=8, sport=4000, dport=6666, length=1222)
    matched, only_sender, only_receiver = an.match_captures([whole, gone], [first, second])
    assert matched == [(whole, first)]
    assert only_sender == [gone]  # its fragments never came: lost
    assert only_receiver == [second]


def test_summary_of_50000_udp_packets(tmp_path):
    path = str(tmp_path / "flood.pcap")
    template = bytes(Ether() / IP(src=C, dst=S) / UDP(sport=50000, dport=PORT, chksum=0)
                     / b"00000000")
    with RawPcapWriter(path, linktype=1) as w:  # Packet objects would take minutes to build
        w.write_header(None)
        for i in range(50_000):
            w.write_packet(template[:-8] + b"%08d" % i, sec=1_700_000_000 + i // 1000,
                           usec=(i % 1000) * 1000)
    pkts = an.read_pcap(path)
    s = an.summary(pkts)
    assert s["packets"] == 50_000
    assert s["protocols"] == {"udp": 50_000}
    assert s["payload_bytes"] == 8 * 50_000
    assert s["ip_bytes"] == 36 * 50_000
    assert s["duration"] == pytest.approx(49.999, abs=1e-6)
    assert pkts[-1].payload == b"00049999"
    assert pkts[-1].index == 49_999


def test_retransmission_flagged_when_the_original_never_reached_the_capture():
    """Wireshark's rule: data starting below the highest sequence number already seen."""
    def seg(i, seq, n, flags="PA"):
        return an.Pkt(i, T0 + i * 0.01, C, S, "tcp", sport=CPORT, dport=PORT, flags=flags,
                      seq=seq, ack=5001, length=n)
    syn = an.Pkt(0, T0, C, S, "tcp", sport=CPORT, dport=PORT, flags="S", seq=1000)
    pkts = [syn, syn._replace(index=1, ts=T0 + 1.0),  # the SYN sent again after its timeout
            seg(2, 1001, 100), seg(3, 1201, 100),  # 1101..1200 was dropped before the tap
            seg(4, 1101, 100),  # ... and resent: below the highest seen (1301)
            seg(5, 1300, 1, "A"),  # a keep-alive: one byte just below the highest
            seg(6, 1301, 0, "A"), seg(7, 1301, 0, "FA"), seg(8, 1301, 0, "FA")]
    flow = an.tcp_flow(pkts, (S, PORT))
    assert [s.pkt.index for s in flow.retransmissions] == [1, 4, 8]
    assert flow.bytes_sent() == 200 + 1  # the resend is not counted twice; the keep-alive is


def test_retransmission_across_the_sequence_wrap():
    top = 2**32 - 50
    pkts = [an.Pkt(i, T0 + i, C, S, "tcp", sport=CPORT, dport=PORT, flags="PA", seq=seq % 2**32,
                   ack=1, length=100) for i, seq in enumerate((top, top + 100, top))]
    assert [s.retransmission for s in an.tcp_flow(pkts, (S, PORT)).segments] == [
        False, False, True]


def test_read_pcap_reports_declared_lengths_on_frames_captured_short(tmp_path):
    """A snap length of 128 keeps 62 bytes of a 1448-byte segment: the length is still 1448."""
    data = bytes(range(256)) * 6
    tcp = Ether() / IP(src=C, dst=S) / TCP(sport=CPORT, dport=PORT, flags="PA", seq=9,
                                            options=[("NOP", None), ("NOP", None),
                                                     ("Timestamp", (1, 2))]) / data[:1448]
    udp = Ether() / IP(src=C, dst=S) / UDP(sport=CPORT, dport=PORT) / data[:1000]
    path = str(tmp_path / "short.pcap")
    with RawPcapWriter(path, linktype=1, snaplen=128) as w:
        w.write_header(None)
        for i, frame in enumerate((tcp, udp)):
            raw = bytes(frame)
            w.write_packet(raw[:128], sec=1_700_000_000, usec=i, wirelen=len(raw))
    seg, gram = an.read_pcap(path)
    assert (seg.ip_len, seg.length, len(seg.payload), seg.payload) == (
        1500, 1448, 62 if an.PAYLOAD_KEEP >= 62 else an.PAYLOAD_KEEP, data[:62])
    assert (gram.ip_len, gram.length, gram.udp_len) == (1028, 1000, 1000)


def test_fragment_length_is_the_ip_payload_as_wireshark_counts_it(pkts):
    first, *rest = an.fragments(pkts)[0].pieces
    assert (first.length, first.ip_payload) == (1472, 1480)  # UDP payload vs IP payload
    assert [p.ip_payload for p in rest] == [1480, 4008 - 2960]


def test_handshake_window_is_scaled_like_the_ladder(pkts):
    hs = an.handshake(pkts, (S, PORT))
    assert [hs.window(p) for p in (hs.syn, hs.synack, hs.ack)] == [64240, 65160, 502 * 128]


def test_fragmentation_needed_carries_the_next_hops_mtu(tmp_path):
    """RFC 1191: the router names the MTU of the link the packet could not cross."""
    big = IP(src="192.168.33.6", dst="192.168.35.5", flags="DF", id=7) / UDP(sport=4000, dport=6666) \
        / (b"x" * 1400)
    needed = IP(src="192.168.33.2", dst="192.168.33.6") / ICMP(type=3, code=4, nexthopmtu=1000) \
        / bytes(big)[:28]
    other = IP(src="192.168.35.5", dst="192.168.33.6") / ICMP(type=3, code=3) / bytes(big)[:28]
    path = tmp_path / "pmtu.pcap"
    wrpcap(str(path), [Ether() / needed, Ether() / other])
    first, second = an.read_pcap(path)
    assert (first.icmp_type, first.icmp_code, first.icmp_mtu) == (3, 4, 1000)
    assert first.quote.dst == "192.168.35.5"
    assert second.icmp_mtu is None
