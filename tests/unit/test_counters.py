"""The kernel counters' parsers, on text as the kernel and iproute2 print it."""

from socketlab.observe.counters import (
    SNAPSHOT_SCRIPT,
    delta,
    parse_link,
    parse_proc_net,
    parse_qdisc,
    parse_snapshot,
)

SNMP = """Ip: Forwarding DefaultTTL InReceives FragCreates
Ip: 1 64 120 4
Udp: InDatagrams NoPorts InErrors RcvbufErrors SndbufErrors
Udp: 10 2 7 7 0
"""
NETSTAT = """TcpExt: SyncookiesSent TCPRcvQDrop
TcpExt: 0 3
"""
LINK = ('[{"ifname":"eth0","stats64":{"rx":{"bytes":100,"packets":2,"dropped":0},'
        '"tx":{"bytes":50,"packets":1,"dropped":4}}}]')
QDISC = ('[{"kind":"tbf","handle":"8001:","root":true,"packets":9,"drops":5,"overlimits":7,'
         '"requeues":0,"backlog":0,"qlen":0}]')


def test_proc_net_pairs_names_with_values():
    counters = parse_proc_net(SNMP + NETSTAT)
    assert counters["Udp.RcvbufErrors"] == 7
    assert counters["Ip.FragCreates"] == 4
    assert counters["TcpExt.TCPRcvQDrop"] == 3
    assert "Udp.Udp:" not in counters


def test_a_header_without_its_values_is_ignored():
    assert parse_proc_net("Udp: InDatagrams NoPorts\nIp: 1 2\n") == {}


def test_link_and_qdisc_counters():
    assert parse_link(LINK)["link.tx_dropped"] == 4
    assert parse_link(LINK)["link.rx_packets"] == 2
    assert parse_qdisc(QDISC) == {"qdisc.packets": 9, "qdisc.drops": 5, "qdisc.overlimits": 7,
                                  "qdisc.requeues": 0, "qdisc.backlog": 0, "qdisc.qlen": 0}
    assert parse_link("not json") == {}
    assert parse_qdisc("") == {}


def test_a_whole_snapshot_as_the_script_prints_it():
    sep = SNAPSHOT_SCRIPT.split("echo ")[1].split(";")[0]
    text = f"{SNMP}{NETSTAT}{sep}\n{LINK}\n{sep}\n{QDISC}\n"
    counters = parse_snapshot(text)
    assert counters["Udp.NoPorts"] == 2
    assert counters["link.tx_dropped"] == 4
    assert counters["qdisc.drops"] == 5


def test_delta_keeps_only_what_changed():
    before = {"Udp.RcvbufErrors": 7, "Udp.NoPorts": 2, "qdisc.backlog": 10}
    after = {"Udp.RcvbufErrors": 19, "Udp.NoPorts": 2, "qdisc.backlog": 0, "Ip.FragCreates": 6}
    assert delta(before, after) == {"Ip.FragCreates": 6, "Udp.RcvbufErrors": 12,
                                    "qdisc.backlog": -10}
