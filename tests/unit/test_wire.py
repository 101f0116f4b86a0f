"""The dissected exchange the pytest plugin hands a test (socketlab.observe.wire), on the
synthetic conversation of test_analysis plus a second connection that was retried."""

from __future__ import annotations

import pytest
from scapy.all import wrpcap

from socketlab.observe import analysis as an
from socketlab.observe.wire import HostWire, Watch, Wire, ladder
from tests.unit.test_analysis import CPORT, PORT, C, S, _tcp, conversation


def second_connection() -> list:
    """A connection from another port whose SYN had to be sent twice, refused by RST."""
    syn = _tcp(3.0, "S", 7000, win=64240)
    syn.sport = CPORT + 1
    again = _tcp(4.0, "S", 7000, win=64240)
    again.sport = CPORT + 1
    rst = _tcp(4.0001, "RA", 0, 7001, 0, to_server=False)
    rst.dport = CPORT + 1
    return [syn, again, rst]


@pytest.fixture
def host(tmp_path) -> HostWire:
    path = str(tmp_path / "conv.pcap")
    wrpcap(path, conversation() + second_connection())
    return HostWire("server", S, tuple(an.read_pcap(path)), {"Udp.NoPorts": 1})


def test_each_connection_is_dissected_on_its_own(host):
    conns = host.connections
    assert [c.client for c in conns] == [(C, CPORT), (C, CPORT + 1)]
    assert all(c.server == (S, PORT) for c in conns)
    first, second = host.handshakes
    assert first.established
    assert not second.established
    assert second.reset is not None


def test_retransmissions_are_the_resent_data_and_syn(host):
    resent = host.retransmissions
    assert [(s.flags, s.length) for s in resent] == [("PA", 11), ("S", 0)]


def test_select_and_count_match_every_criterion(host):
    assert host.count("tcp", flags="S") == 3
    assert host.count("tcp", flags="S", sport=CPORT + 1) == 2
    assert host.count("udp", dport=PORT) == 2  # the datagram, the big one's first fragment
    assert host.count(src=S, proto="icmp") == 1
    assert host.count("tcp", flags="SA", src=C) == 0


def test_datagrams_icmp_fragments_and_payload(host):
    assert [d.length for d in host.datagrams] == [11, 4000]
    assert [e.description for e in host.icmp] == ["port unreachable"]
    assert [f.complete for f in host.fragments] == [True]
    assert host.payload(src=C) == b"hello,world"  # the resent copy is not counted twice
    assert host.payload(src=S) == b""


def test_the_wire_reads_its_view_and_every_host(host):
    client = HostWire("client", C, host.packets[:3], {})
    wire = Wire({"server": host, "client": client},
                ({"action": "drop", "flags": "SA"}, {"action": "delay"}), {}, "server")
    assert wire.handshakes == host.handshakes
    assert wire["client"].count("tcp") == 3
    assert wire.counters == {"server": {"Udp.NoPorts": 1}, "client": {}}
    assert [f["flags"] for f in wire.fired("drop")] == ["SA"]
    assert len(wire.fired()) == 2
    drawn = ladder(wire, "client", "server")
    assert (drawn.left.ip, drawn.right.ip) == (C, S)
    assert drawn.arrows


def test_a_watch_reads_as_its_wire_only_after_the_block(host):
    watch = Watch()
    with pytest.raises(RuntimeError, match="after the with block"):
        _ = watch.handshakes
    watch._wire = Wire({"server": host}, view="server")
    assert watch.handshakes == host.handshakes
    assert watch["server"] is host


def test_a_capture_settles_on_tcpdumps_singular_line_too():
    """tcpdump says "1 packet captured": a capture nested in another (the plugin's whole-test
    recording around a test's own capture) once waited 5 s for "packets" and failed."""
    from socketlab.observe.capture import _STATS_LINE, parse_stats

    line = "tcpdump: 1 packet captured, 11 packets received by filter, 0 packets dropped by kernel"
    assert _STATS_LINE.search(line)
    assert parse_stats(line).captured == 1
    assert not _STATS_LINE.search("tcpdump: listening on eth0")


def test_the_ladder_draws_a_dropped_packet_from_the_fault_log(host):
    """The SYN-ACK a fault dropped is in no capture: the ladder draws it from lab-nfq's log."""
    client = HostWire("client", C, host.packets[:1], {})  # the client saw its SYN only
    server = HostWire("server", S, host.packets[:1], {})
    synack = host.packets[1]
    line = {"action": "drop", "src": S, "dst": C, "sport": PORT, "dport": CPORT, "proto": "tcp",
            "flags": "SA", "seq": synack.seq, "ack": synack.ack, "time": synack.ts - 0.0001}
    drawn = ladder(Wire({"client": client, "server": server}, (line,), {}, "server"),
                   "client", "server")
    assert [(a.label.split()[0], a.dropped) for a in drawn.arrows] == [("SYN", False), ("SYN,ACK", True)]
    assert len(ladder(Wire({"client": client, "server": server}), "client", "server").arrows) == 1


def test_the_ladder_draws_a_dropped_udp_datagram_from_the_fault_log():
    """lab-nfq logs a UDP packet with flags, seq and ack null: the ladder once crashed on it
    (`int(None)`), failing the test that had asked for the drop."""
    line = {"time": 10.0, "event": "fault", "action": "drop", "proto": "udp", "src": C, "dst": S,
            "sport": 40001, "dport": 53, "flags": None, "seq": None, "ack": None, "len": 5,
            "ip_id": 7}
    empty_c, empty_s = HostWire("client", C, ()), HostWire("server", S, ())
    drawn = ladder(Wire({"client": empty_c, "server": empty_s}, (line,), {}, "server"),
                   "client", "server")
    assert [(a.label.split()[:2], a.dropped, a.rightward) for a in drawn.arrows] == [
        (["UDP", "len=5"], True, True)]


def test_a_dropped_datagram_is_not_mistaken_for_the_next_one_of_its_flow(tmp_path):
    """Two datagrams of one flow, the first dropped by a fault: the second (same ports, no seq)
    is in the capture a moment later and must not pass for the logged one."""
    from scapy.all import IP, UDP

    path = str(tmp_path / "c.pcap")
    second = IP(src=C, dst=S, id=8) / UDP(sport=40001, dport=53) / b"ping1"
    second.time = 10.001
    wrpcap(path, [second])
    client = HostWire("client", C, tuple(an.read_pcap(path)))
    line = {"time": 10.0, "action": "drop", "proto": "udp", "src": C, "dst": S, "sport": 40001,
            "dport": 53, "flags": None, "seq": None, "ack": None, "len": 5, "ip_id": 7}
    drawn = ladder(Wire({"client": client, "server": HostWire("server", S, ())}, (line,), {},
                        "server"), "client", "server")
    assert [a.dropped for a in drawn.arrows] == [True, True]  # the server saw neither
