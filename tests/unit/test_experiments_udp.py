"""The judges of C2, C5, C8 are pure: hand-made evidence in, a verdict out, and the verdict
follows the evidence when it changes. The base facts are those of a real run on this kernel."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from socketlab.experiments.base import Evidence
from socketlab.experiments.udp import (
    EXPERIMENTS,
    big_message,
    brief,
    datagram_sizes,
    judge_c2,
    judge_c5,
    judge_c8,
    picked,
)
from socketlab.observe.analysis import Pkt

C2_FACTS: dict[str, Any] = {
    "server_started": False, "client_calls": ["sent", "sent", "closed"],
    "sendto_returns": [11, 0], "sent_sizes": [11, 0], "client_exit": 0, "client_error": None,
    "left_client": [11, 0], "arrived_server": [11, 0],
    "icmp_sent_by_server": ["port unreachable"] * 2,
    "icmp_received_by_client": ["port unreachable"] * 2,
    "icmp_quotes": ["udp 192.168.47.6:33183 -> 192.168.47.5:6666 id=50810",
                    "udp 192.168.47.6:33183 -> 192.168.47.5:6666 id=50811"],
    "icmp_quoting_sent_datagram": 2,
    "counters": {"client": {"Udp.OutDatagrams": 2, "Icmp.InDestUnreachs": 2, "Udp.InErrors": 0},
                 "server": {"Udp.InDatagrams": 0, "Udp.NoPorts": 2, "Icmp.OutDestUnreachs": 2}},
    "capture_dropped": 0,
}
C5_FACTS: dict[str, Any] = {
    "sent_datagrams": ["hello,world", "hello,world", ""], "recvfrom_returns": ["hel", "hel", ""],
    "bufsize": 3, "wire_client": [11, 11, 0], "wire_server": [11, 11, 0],
    "server_counters": {"Udp.InDatagrams": 3, "Udp.InErrors": 0, "Udp.RcvbufErrors": 0,
                        "Udp.NoPorts": 0},
    "server_exit": 0, "capture_dropped": 0,
}
C8_FACTS: dict[str, Any] = {
    "size": 8000, "mtu": {"client": 1500, "server": 1500}, "udp_datagrams": [8000],
    "udp_fragments": [[0, 1480, True, False], [1480, 1480, True, False],
                      [2960, 1480, True, False], [4440, 1480, True, False],
                      [5920, 1480, True, False], [7400, 608, False, False]],
    "udp_fragments_at_server": 6, "udp_reassembly_complete": True, "udp_received": [8000],
    "udp_counters": {"client": {"Ip.FragCreates": 6, "Ip.FragOKs": 1, "Ip.FragFails": 0},
                     "server": {"Ip.ReasmReqds": 6, "Ip.ReasmOKs": 1, "Ip.ReasmFails": 0}},
    "tcp_mss": [1460, 1460], "tcp_segments": [1448] * 5 + [760], "tcp_df": [True] * 6,
    "tcp_fragments": 0, "tcp_received": 8000, "tcp_frag_creates": 0, "capture_dropped": 0,
}


def evidence(claim: str, base: dict[str, Any], **changes: Any) -> Evidence:
    facts = copy.deepcopy(base)
    facts.update(changes)
    return Evidence(claim, facts)


def test_the_module_offers_c2_c5_c8() -> None:
    assert [e.id for e in EXPERIMENTS] == ["C2", "C5", "C8"]
    assert all(e.run and e.judge and e.claim for e in EXPERIMENTS)


# ---------------------------------------------------------------- C2
def test_c2_holds_and_says_what_came_back() -> None:
    v = judge_c2(evidence("C2", C2_FACTS))
    assert (v.claim, v.status) == ("C2", "holds")
    assert "returned [11, 0]" in v.summary
    assert "exited 0" in v.summary
    assert "2 ICMP port unreachable" in v.summary
    assert "Udp.NoPorts +2" in v.summary
    assert "never told" in v.summary


def test_c2_with_nothing_back_still_holds_and_says_so() -> None:
    v = judge_c2(evidence("C2", C2_FACTS, icmp_received_by_client=[], icmp_sent_by_server=[]))
    assert v.status == "holds"
    assert "nothing came back" in v.summary


@pytest.mark.parametrize(("changes", "status", "words"), [
    ({"client_exit": 1, "client_error": "error op=sendto errno=ECONNREFUSED"},
     "does not hold", "ECONNREFUSED"),
    ({"arrived_server": []}, "inconclusive", "capture"),
    ({"server_started": True}, "inconclusive", "no server was not shown"),
    ({"sendto_returns": []}, "inconclusive", "sent nothing"),
    ({"capture_dropped": 3}, "inconclusive", "dropped"),
    ({"sendto_returns": [5, 0]}, "holds in part", "returned [5, 0]"),
])
def test_c2_verdict_follows_the_evidence(changes: dict[str, Any], status: str,
                                         words: str) -> None:
    v = judge_c2(evidence("C2", C2_FACTS, **changes))
    assert v.status == status
    assert words in v.summary


# ---------------------------------------------------------------- C5
def test_c5_holds_with_the_cut_bytes_named() -> None:
    v = judge_c5(evidence("C5", C5_FACTS))
    assert (v.claim, v.status) == ("C5", "holds")
    assert "['hel', 'hel', '']" in v.summary
    assert "[11, 11, 0]" in v.summary
    assert "16 bytes" in v.summary
    assert "lo,world" in v.summary


@pytest.mark.parametrize(("changes", "status", "words"), [
    ({"recvfrom_returns": ["hel", "lo,", "wor", "ld"]}, "does not hold", "lo,"),
    ({"recvfrom_returns": ["hel", ""]}, "holds in part", "['hel', '']"),
    ({"wire_server": [3, 3, 0]}, "holds in part", "[3, 3, 0]"),
    ({"bufsize": 64, "recvfrom_returns": ["hello,world", "hello,world", ""]},
     "inconclusive", "longer than recvfrom(64)"),
    ({"wire_server": []}, "inconclusive", "no datagram"),
    ({"capture_dropped": 1}, "inconclusive", "dropped"),
])
def test_c5_verdict_follows_the_evidence(changes: dict[str, Any], status: str,
                                         words: str) -> None:
    v = judge_c5(evidence("C5", C5_FACTS, **changes))
    assert v.status == status
    assert words in v.summary


# ---------------------------------------------------------------- C8
def test_c8_holds_with_fragments_and_segments() -> None:
    v = judge_c8(evidence("C8", C8_FACTS))
    assert (v.claim, v.status) == ("C8", "holds")
    assert "1500-byte MTU" in v.summary
    assert "6 IP fragments" in v.summary
    assert "[0, 1480, 2960, 4440, 5920, 7400]" in v.summary
    assert "at most 1448 bytes (MSS 1460)" in v.summary
    assert "DF set on 6 of 6" in v.summary


@pytest.mark.parametrize(("changes", "status", "words"), [
    ({"udp_fragments": [], "mtu": {"client": 9000, "server": 9000}},
     "does not hold", "one piece over a 9000-byte MTU"),
    ({"tcp_fragments": 2}, "does not hold", "TCP data was IP-fragmented"),
    ({"tcp_segments": [4344, 3656]}, "holds in part", "not bounded by the MSS"),
    ({"tcp_mss": []}, "holds in part", "MSS None"),
    ({"tcp_segments": []}, "inconclusive", "captures missed"),
    ({"udp_fragments": [], "udp_datagrams": []}, "inconclusive", "captures missed"),
    ({"capture_dropped": 4}, "inconclusive", "dropped"),
])
def test_c8_verdict_follows_the_evidence(changes: dict[str, Any], status: str,
                                         words: str) -> None:
    v = judge_c8(evidence("C8", C8_FACTS, **changes))
    assert v.status == status
    assert words in v.summary


def test_judges_read_facts_only_and_do_not_change_them() -> None:
    ev = evidence("C8", C8_FACTS)
    before = copy.deepcopy(dict(ev.facts))
    assert judge_c8(ev) == judge_c8(ev)
    assert dict(ev.facts) == before


# ---------------------------------------------------------------- helpers
def test_big_message_is_the_readable_pattern() -> None:
    msg = big_message(8000)
    assert len(msg) == 8000
    assert msg.startswith("0123456789012")
    assert msg.endswith("789")
    assert len(big_message(15)) == 15


def test_picked_gives_zero_for_counters_that_did_not_move() -> None:
    assert picked({"Udp.NoPorts": 2}, ["Udp.NoPorts", "Udp.InErrors"]) == {
        "Udp.NoPorts": 2, "Udp.InErrors": 0}


def test_brief_cuts_long_data_but_keeps_counts() -> None:
    events = {"client": [{"event": "sent", "n": 8000, "data": "x" * 8000, "t": 1.0},
                         {"event": "closed", "t": 2.0}]}
    cut = brief(events, keep=5)
    assert cut["client"][0] == {"event": "sent", "n": 8000, "data": "xxxxx...", "t": 1.0}
    assert cut["client"][1] == events["client"][1]
    assert len(events["client"][0]["data"]) == 8000  # the original is left alone


def test_datagram_sizes_counts_one_direction_and_fragmented_datagrams_once() -> None:
    def udp(src: str, dst: str, sport: int, dport: int, n: int, **kw: Any) -> Pkt:
        return Pkt(index=0, ts=0.0, src=src, dst=dst, proto="udp", sport=sport, dport=dport,
                   udp_len=n, length=min(n, 1472), **kw)
    pkts = [udp("10.0.0.6", "10.0.0.5", 4000, 6666, 11),
            udp("10.0.0.6", "10.0.0.5", 4000, 6666, 8000, mf=True),
            Pkt(index=2, ts=0.0, src="10.0.0.6", dst="10.0.0.5", proto="udp",
                frag_offset=1480, length=1480, mf=True),
            udp("10.0.0.5", "10.0.0.6", 6666, 4000, 3),
            udp("10.0.0.6", "10.0.0.5", 4000, 7777, 9)]
    assert datagram_sizes(pkts, "10.0.0.6", 6666) == [11, 8000]
    assert datagram_sizes(pkts, "10.0.0.5", 6666) == []


def test_c8_says_when_the_servers_capture_holds_coalesced_segments() -> None:
    from socketlab.experiments.udp import coalesced_words

    assert coalesced_words({**C8_FACTS, "tcp_segments_at_server": C8_FACTS["tcp_segments"]}) == ()
    [line] = coalesced_words({**C8_FACTS, "tcp_segments": [1398] * 5 + [1010],
                              "tcp_segments_at_server": [6990, 1010]})
    assert line.startswith("TCP at the server: 1 segment(s) of [6990] bytes, bigger than any the "
                           "client sent (1398): coalesced on the way")
