"""The TCP judges (C1, C3, C4) are pure: hand them evidence, change one fact, watch the verdict."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from socketlab.experiments.base import STATUSES, Evidence
from socketlab.experiments.registry import catalogue
from socketlab.experiments.tcp import (
    C1,
    C3,
    C4,
    EXPERIMENTS,
    judge_c1,
    judge_c3,
    judge_c4,
    parse_ss,
)

SERVER, CLIENT = "192.168.33.5", "192.168.33.6"


def pkt(src: str, dst: str, flags: str, rel: tuple[int, int], ts: float) -> dict[str, Any]:
    return {"src": src, "dst": dst, "flags": flags, "seq": 1000 + rel[0], "ack": rel[1],
            "rel_seq": rel[0], "rel_ack": rel[1], "window": 64240, "mss": 1460, "wscale": 7,
            "ts": ts}


def c1_facts() -> dict[str, Any]:
    """What a refused connect looks like on Linux: SYN answered by RST,ACK."""
    syn = pkt(f"{CLIENT}:40000", f"{SERVER}:6666", "S", (0, 0), 10.0)
    rst = pkt(f"{SERVER}:6666", f"{CLIENT}:40000", "RA", (0, 1), 10.00005)
    wire = {"syn": syn, "synack": None, "rst": rst, "syn_to_rst_us": 50}
    return {"server_ip": SERVER, "client_exit": 1, "connected": False,
            "error": {"op": "connect", "errno": "ECONNREFUSED", "msg": "Connection refused"},
            "client_output": ["error op=connect errno=ECONNREFUSED"],
            "wire": {"client": wire, "server": copy.deepcopy(wire)},
            "counters": {"client": {"Tcp.AttemptFails": 1}, "server": {"Tcp.OutRsts": 1}},
            "capture_dropped": 0}


def c3_facts() -> dict[str, Any]:
    """A handshake in order, the connection queued (seen by ss) 0.5 s before accept()."""
    hs = {"syn": pkt(f"{CLIENT}:40000", f"{SERVER}:6666", "S", (0, 0), 10.0),
          "synack": pkt(f"{SERVER}:6666", f"{CLIENT}:40000", "SA", (0, 1), 10.00004),
          "ack": pkt(f"{CLIENT}:40000", f"{SERVER}:6666", "A", (1, 1), 10.00009)}
    return {"accept_delay": 1.0, "handshake": hs, "syn_to_synack_us": 40,
            "synack_to_ack_us": 50, "connected_t": 10.0001, "accepted_t": 11.0, "ss_t": 10.5,
            "ss_lines": ["LISTEN 1 5 0.0.0.0:6666 0.0.0.0:*"], "listener_recv_q": 1,
            "conn_state": "CLOSE-WAIT", "conn_recv_q": 12, "capture_dropped": 0}


def c4_facts() -> dict[str, Any]:
    return {"sent": "hello,world", "received": "hello,world",
            "recv_pieces": ["hel", "lo,", "wor", "ld", ""], "bufsize": 3,
            "wire_segments": [11], "wire_bytes": "hello,world", "capture_dropped": 0}


def status(judge, claim: str, facts: dict[str, Any]) -> str:
    verdict = judge(Evidence(claim, facts))
    assert verdict.claim == claim
    assert verdict.status in STATUSES
    assert verdict.summary
    return verdict.status


# ---------------------------------------------------------------- C1
def test_c1_holds_when_refused_and_the_syn_is_answered_by_rst() -> None:
    verdict = judge_c1(Evidence("C1", c1_facts()))
    assert verdict.status == "holds"
    assert "ECONNREFUSED" in verdict.summary
    assert "50 µs" in verdict.summary
    assert "client and server captures" in verdict.summary


def test_c1_holds_with_the_rst_in_one_capture_only() -> None:
    f = c1_facts()
    f["wire"]["client"] = None
    verdict = judge_c1(Evidence("C1", f))
    assert verdict.status == "holds"
    assert "server capture)" in verdict.summary


@pytest.mark.parametrize(("change", "expected"), [
    (lambda f: f["error"].update(errno="ETIMEDOUT", msg="timed out"), "holds in part"),
    (lambda f: f["error"].update(errno="EHOSTUNREACH"), "holds in part"),
    (lambda f: [w.update(rst=None) for w in f["wire"].values()], "holds in part"),
    (lambda f: f["wire"].update(client=None, server=None), "holds in part"),
    (lambda f: [w["rst"].update(src="10.0.0.1:6666") for w in f["wire"].values()],
     "holds in part"),
    (lambda f: [w["rst"].update(flags="A") for w in f["wire"].values()], "holds in part"),
    (lambda f: f.update(connected=True, error=None, client_exit=0), "does not hold"),
    (lambda f: f.update(error=None), "inconclusive"),
])
def test_c1_verdict_follows_the_evidence(change, expected) -> None:
    f = c1_facts()
    change(f)
    assert status(judge_c1, "C1", f) == expected


def test_c1_names_the_errno_it_saw() -> None:
    f = c1_facts()
    f["error"]["errno"] = "ETIMEDOUT"
    assert "ETIMEDOUT" in judge_c1(Evidence("C1", f)).summary


def test_c1_says_when_the_capture_dropped() -> None:
    f = c1_facts()
    f["wire"] = {"client": None, "server": None}
    f["capture_dropped"] = 3
    assert "dropped" in judge_c1(Evidence("C1", f)).summary


# ---------------------------------------------------------------- C3
def test_c3_holds_with_handshake_in_order_and_connection_queued_before_accept() -> None:
    verdict = judge_c3(Evidence("C3", c3_facts()))
    assert verdict.status == "holds"
    for text in ("0/0, 0/1, 1/1", "40 µs", "50 µs", "CLOSE-WAIT", "Recv-Q 12",
                 "accept queue holding 1", "0.500 s before accept()"):
        assert text in verdict.summary


def test_c3_holds_with_the_connection_seen_established() -> None:
    f = c3_facts()
    f["conn_state"] = "ESTAB"
    verdict = judge_c3(Evidence("C3", f))
    assert verdict.status == "holds"
    assert "showed the connection ESTAB " in verdict.summary


def _set_hs(name: str, **fields: Any):
    return lambda f: f["handshake"][name].update(**fields)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda f: f.update(conn_state=None), "holds in part"),
    (lambda f: f.update(conn_state="SYN-RECV"), "holds in part"),
    (lambda f: f.update(listener_recv_q=0), "holds in part"),
    (lambda f: f.update(ss_t=11.5), "holds in part"),
    (lambda f: f.update(ss_t=None), "holds in part"),
    (lambda f: f["handshake"].update(ack=None), "does not hold"),
    (lambda f: f["handshake"].update(synack=None), "does not hold"),
    (_set_hs("ack", rel_seq=2), "does not hold"),
    (_set_hs("synack", rel_ack=0), "does not hold"),
    (_set_hs("synack", ts=9.0), "does not hold"),
    (lambda f: f.update(accepted_t=10.00005), "does not hold"),
    (lambda f: f.update(accepted_t=None), "inconclusive"),
    (lambda f: f.update(handshake=None), "inconclusive"),
    (lambda f: f.update(capture_dropped=2), "inconclusive"),
])
def test_c3_verdict_follows_the_evidence(change, expected) -> None:
    f = c3_facts()
    change(f)
    assert status(judge_c3, "C3", f) == expected


def test_c3_summary_is_built_from_the_values() -> None:
    f = c3_facts()
    f.update(synack_to_ack_us=77, listener_recv_q=2)
    summary = judge_c3(Evidence("C3", f)).summary
    assert "SYN_RECEIVED lasted 77 µs" in summary
    assert "holding 2" in summary


def test_parse_ss_reads_sockets_and_the_time_after() -> None:
    text = ("State      Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n"
            "LISTEN     1      5            0.0.0.0:6666       0.0.0.0:*\n"
            "CLOSE-WAIT 12     0       192.168.33.5:6666  192.168.33.6:40000\n"
            "1700000000.123456789\n")
    rows, when = parse_ss(text)
    assert when == pytest.approx(1700000000.123456789)
    assert [(r["state"], r["recv_q"], r["peer"]) for r in rows] == [
        ("LISTEN", 1, "0.0.0.0:*"), ("CLOSE-WAIT", 12, "192.168.33.6:40000")]
    assert parse_ss("") == ([], None)


# ---------------------------------------------------------------- C4
def test_c4_holds_when_every_byte_arrives_in_pieces() -> None:
    verdict = judge_c4(Evidence("C4", c4_facts()))
    assert verdict.status == "holds"
    assert "4 recv(3) calls" in verdict.summary


@pytest.mark.parametrize(("change", "expected"), [
    (lambda f: f.update(recv_pieces=["hello,world", ""]), "holds in part"),
    (lambda f: f.update(recv_pieces=["hello", ",world", ""]), "holds in part"),
    (lambda f: f.update(received="hello,wo", recv_pieces=["hel", "lo,", "wo"]),
     "does not hold"),
    (lambda f: f.update(sent=""), "inconclusive"),
    (lambda f: f.update(capture_dropped=1), "inconclusive"),
])
def test_c4_verdict_follows_the_evidence(change, expected) -> None:
    f = c4_facts()
    change(f)
    assert status(judge_c4, "C4", f) == expected


# ---------------------------------------------------------------- the catalogue
def test_the_tcp_experiments_are_c1_c3_c4_in_the_catalogue() -> None:
    assert [e.id for e in EXPERIMENTS] == ["C1", "C3", "C4"]
    assert EXPERIMENTS == (C1, C3, C4)
    assert all(catalogue()[e.id] is e for e in EXPERIMENTS)
