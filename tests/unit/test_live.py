"""The live ladder's pure parts: tcpdump's lines (as `tcpdump -l -n -tt` prints them in a lab
host, taken from a real run) read into packets, and the ladder's rows drawn from them."""

from __future__ import annotations

from socketlab.observe.live import header, parse_line, row

NAMES = {"192.168.129.6": "client", "192.168.129.5": "server"}
HOSTS = ["client", "server"]
LINES = [
    "1796708103.140386 IP 192.168.129.6.45436 > 192.168.129.5.26662: Flags [S], seq 726020461, "
    "win 64240, options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0",
    "1796708103.140451 IP 192.168.129.5.26662 > 192.168.129.6.45436: Flags [S.], seq 3532453691, "
    "ack 726020462, win 65160, options [mss 1400,sackOK,TS val 2 ecr 1,nop,wscale 7], length 0",
    "1796708103.140573 IP 192.168.129.6.45436 > 192.168.129.5.26662: Flags [P.], seq 1:12, "
    "ack 1, win 502, options [nop,nop,TS val 3 ecr 2], length 11",
    "1796708103.140600 IP 192.168.129.6.52003 > 192.168.129.5.29675: UDP, length 101",
    "1796708103.140700 IP 192.168.129.6 > 192.168.129.5: ICMP echo request, id 3, seq 1, length 64",
]


def test_tcpdump_lines_become_packets_with_their_labels():
    pkts = [parse_line(line) for line in LINES]
    assert [p.label for p in pkts if p] == [
        "SYN seq=726020461", "SYN-ACK seq=3532453691 ack=726020462",
        "PSH-ACK seq=1:12 ack=1 len=11", "UDP 101 bytes", "ICMP echo request"]
    assert (pkts[0].src, pkts[0].sport, pkts[0].dst, pkts[0].dport) == \
        ("192.168.129.6", 45436, "192.168.129.5", 26662)
    assert pkts[4].sport is None
    assert pkts[0].t == 1796708103.140386


def test_lines_that_are_no_ipv4_packet_are_left_out():
    assert parse_line("listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144") \
        is None
    assert parse_line("1796708103.1 ARP, Request who-has 192.168.129.5 tell 192.168.129.6") is None
    assert parse_line("") is None


def test_rows_point_from_the_sender_to_the_receiver():
    syn, synack = parse_line(LINES[0]), parse_line(LINES[1])
    assert syn
    assert synack
    first, second = row(syn, HOSTS, NAMES, syn.t), row(synack, HOSTS, NAMES, syn.t)
    assert first.startswith("    0.000 ms ")
    assert "SYN seq=726020461" in first
    assert first.rstrip().endswith("─▶| server")
    assert "|◀─" in second
    assert second.lstrip().startswith("0.065 ms")
    assert len(first) == len(second) == len(header(HOSTS))  # the lines stay straight


def test_three_hosts_are_listed_by_name():
    syn = parse_line(LINES[0])
    assert syn
    text = row(syn, ["client", "server", "r1"], NAMES, syn.t)
    assert text.endswith("client → server  SYN seq=726020461")
