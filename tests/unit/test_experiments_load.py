"""The load judges (C6, C7, C9, C10) are pure: hand-made evidence in, a verdict out, and the
verdict follows the evidence when it changes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from socketlab.experiments import load, sending
from socketlab.experiments.base import Evidence
from socketlab.observe.events import parse_output


def udp_facts(**changes: Any) -> dict[str, Any]:
    """A burst as measured here: 20,000 sent, all on the wire, 262 delivered."""
    f: dict[str, Any] = {
        "requested": 20000, "size": 100, "rcvbuf_set": 4096, "read_delay": 0.001,
        "rcvbuf": 8192, "sent": 20000, "by_errno": {}, "send_seconds": 0.3,
        "client_wire": 20000, "server_wire": 20000, "delivered": 262, "capture_dropped": 0,
        "client_counters": {"Udp.OutDatagrams": 20000, "Udp.SndbufErrors": 0, "qdisc.drops": 0,
                            "link.tx_dropped": 0},
        "server_counters": {"Udp.InDatagrams": 262, "Udp.RcvbufErrors": 19738,
                            "Udp.InErrors": 19738, "Udp.NoPorts": 0, "link.rx_dropped": 0},
    }
    for key, value in changes.items():
        if key in ("client_counters", "server_counters"):
            f[key] = {**f[key], **value}
        else:
            f[key] = value
    return {**f, **load.attribute(f)}


def tcp_facts(**changes: Any) -> dict[str, Any]:
    f = {"bytes_sent": 2_000_000, "bytes_received": 2_000_000, "rcvbuf": 8192,
         "wire_bytes": 2_000_000, "zero_windows": 1, "window_min": 0, "window_max": 2896,
         "window_series": [], "retransmissions": 0, "capture_dropped": 0,
         "server_counters": dict.fromkeys(load.TCP_SERVER_COUNTERS, 0)
         | {"TcpExt.TCPToZeroWindowAdv": 1},
         "client_counters": dict.fromkeys(load.TCP_CLIENT_COUNTERS, 0)}
    return {**f, **changes}


def c6(udp: dict | None = None, tcp: dict | None = None) -> Evidence:
    return Evidence("C6", {"udp": udp or udp_facts(), "sweep": [], "tcp": tcp or tcp_facts()})


# ---------------------------------------------------------------- attribution
def test_attribution_puts_every_missing_datagram_somewhere() -> None:
    f = udp_facts(sent=19990, by_errno={"ENOBUFS": 10}, client_wire=19980, server_wire=19975,
                  delivered=300, client_counters={"Udp.SndbufErrors": 20},
                  server_counters={"Udp.RcvbufErrors": 19670, "Udp.NoPorts": 5})
    assert (f["failed_calls"], f["dropped_in_sender"], f["lost_between_hosts"],
            f["dropped_at_socket"], f["no_listener"]) == (10, 10, 5, 19670, 5)
    assert f["sender_unexplained"] == 0
    assert f["receiver_unexplained"] == 0
    assert load.adds_up(f)


def test_attribution_reports_what_the_counters_miss() -> None:
    f = udp_facts(server_counters={"Udp.RcvbufErrors": 19000})
    assert f["receiver_unexplained"] == 738
    assert not load.adds_up(f)


# ---------------------------------------------------------------- C6
def test_c6_holds_when_udp_drops_at_the_socket_and_tcp_loses_nothing() -> None:
    v = load.judge_c6(c6())
    assert v.status == "holds"
    assert "19738 dropped at the socket" in v.summary
    assert "2000000 of 2000000" in v.summary


def test_c6_does_not_hold_when_tcp_loses_bytes() -> None:
    assert load.judge_c6(c6(tcp=tcp_facts(bytes_received=1_999_000))).status == "does not hold"


def test_c6_holds_in_part_when_the_window_never_closes() -> None:
    tcp = tcp_facts(zero_windows=0, window_min=2896,
                    server_counters=dict.fromkeys(load.TCP_SERVER_COUNTERS, 0))
    assert load.judge_c6(c6(tcp=tcp)).status == "holds in part"


def test_c6_holds_when_the_window_shrinks_to_one_segment() -> None:
    tcp = tcp_facts(zero_windows=0, window_min=1448,
                    server_counters=dict.fromkeys(load.TCP_SERVER_COUNTERS, 0))
    verdict = load.judge_c6(c6(tcp=tcp))
    assert verdict.status == "holds"
    assert "shrinking to 1448 bytes" in verdict.summary


def test_c6_holds_in_part_when_the_slow_reader_keeps_up() -> None:
    udp = udp_facts(delivered=20000, server_counters={"Udp.RcvbufErrors": 0, "Udp.InErrors": 0})
    assert load.judge_c6(c6(udp=udp)).status == "holds in part"


@pytest.mark.parametrize("udp", [
    udp_facts(capture_dropped=12),
    udp_facts(sent=0, client_wire=0, server_wire=0, delivered=0,
              server_counters={"Udp.RcvbufErrors": 0}),
    udp_facts(server_counters={"Udp.RcvbufErrors": 100}),  # numbers do not add up
])
def test_c6_is_inconclusive_on_bad_evidence(udp: dict) -> None:
    assert load.judge_c6(c6(udp=udp)).status == "inconclusive"


# ---------------------------------------------------------------- C7
def results(*pairs: tuple[int, Any]) -> list[dict[str, Any]]:
    return [{"size": s, "ok": isinstance(r, int), "result": r} for s, r in pairs]


def c7(small: list[dict], default: list[dict] | None = None) -> Evidence:
    default = default or results((2000, 2000), (65507, 65507), (65508, "EMSGSIZE"))
    return Evidence("C7", {"sndbuf_set": 4096, "sndbuf": 8192, "default_sndbuf": 212992,
                           "protocol_max": 65507, "small": small, "default": default,
                           "wire_datagrams": 3, "delivered": 3, "sndbuf_errors": 0,
                           "capture_dropped": 0})


def test_c7_does_not_hold_when_big_datagrams_pass_or_fail_otherwise() -> None:
    v = sending.judge_c7(c7(results((2000, 2000), (6000, 6000), (20000, "ENOBUFS"),
                                 (65508, "EMSGSIZE"))))
    assert v.status == "does not hold"
    assert "6000-byte" in v.summary
    assert "20000 (ENOBUFS)" in v.summary
    assert "65508 bytes" in v.summary
    assert "EMSGSIZE" in v.summary


def test_c7_holds_when_every_datagram_over_sndbuf_gets_emsgsize() -> None:
    v = sending.judge_c7(c7(results((2000, 2000), (6000, "EMSGSIZE"), (20000, "EMSGSIZE"))))
    assert v.status == "holds"


def test_c7_holds_in_part_when_only_some_get_emsgsize() -> None:
    v = sending.judge_c7(c7(results((6000, 6000), (20000, "EMSGSIZE"))))
    assert v.status == "holds in part"


def test_c7_is_inconclusive_without_calls() -> None:
    assert sending.judge_c7(c7([])).status == "inconclusive"


# ---------------------------------------------------------------- C9
def queue_run(recverr: bool, sent: int, enobufs: int, wire: int, drops: int) -> dict[str, Any]:
    return {"recverr": recverr, "requested": 2000, "size": 1000, "sent": sent,
            "failed": enobufs, "by_errno": {"ENOBUFS": enobufs} if enobufs else {},
            "client_wire": wire, "server_wire": wire, "delivered": wire,
            "succeeded_not_sent": sent - wire, "capture_dropped": 0,
            "client_counters": {"Udp.OutDatagrams": wire, "Udp.SndbufErrors": drops,
                                "qdisc.drops": drops, "link.tx_dropped": 0}}


def c9(*runs: dict, error: str | None = None) -> Evidence:
    return Evidence("C9", {"qdisc": sending.C9_QDISC, "qdisc_error": error, "runs": list(runs),
                           "qdisc_after": "qdisc noqueue 0: root", "qdisc_removed": True})


def test_c9_holds_in_part_when_linux_hides_enobufs_without_ip_recverr() -> None:
    v = sending.judge_c9(c9(queue_run(False, 2000, 0, 7, 1993), queue_run(True, 6, 1994, 6, 1994)))
    assert v.status == "holds in part"
    assert "2000 of 2000" in v.summary
    assert "1994 calls failed with ENOBUFS" in v.summary


def test_c9_holds_when_enobufs_comes_back_by_default() -> None:
    v = sending.judge_c9(c9(queue_run(False, 7, 1993, 7, 1993), queue_run(True, 6, 1994, 6, 1994)))
    assert v.status == "holds"


def test_c9_is_inconclusive_without_a_queue_or_without_drops() -> None:
    assert sending.judge_c9(c9(error="Error: unknown qdisc")).status == "inconclusive"
    quiet = c9(queue_run(False, 2000, 0, 2000, 0), queue_run(True, 2000, 0, 2000, 0))
    assert sending.judge_c9(quiet).status == "inconclusive"


# ---------------------------------------------------------------- C10
def big(delivered: int = 1, errors: int = 2) -> dict[str, Any]:
    return {"size": 20000, "rcvbuf": 8192, "sent": 3, "server_wire": 3, "delivered": delivered,
            "delivered_bytes": 20000 * delivered, "capture_dropped": 0,
            "server_counters": {"Udp.InDatagrams": delivered, "Udp.RcvbufErrors": errors,
                                "Udp.InErrors": errors, "Udp.NoPorts": 0, "link.rx_dropped": 0}}


def c10(burst: dict | None = None, over: dict | None = None) -> Evidence:
    return Evidence("C10", {"burst": burst or udp_facts(), "big": over or big()})


def test_c10_holds_in_part_when_a_datagram_bigger_than_the_buffer_gets_in() -> None:
    v = load.judge_c10(c10())
    assert v.status == "holds in part"
    assert "Udp.RcvbufErrors +19738" in v.summary
    assert "1 got in" in v.summary


def test_c10_holds_when_the_big_datagrams_are_discarded_too() -> None:
    assert load.judge_c10(c10(over=big(delivered=0, errors=3))).status == "holds"


def test_c10_does_not_hold_when_nothing_is_discarded() -> None:
    burst = udp_facts(delivered=20000, server_counters={"Udp.RcvbufErrors": 0})
    assert load.judge_c10(c10(burst=burst)).status == "does not hold"


def test_c10_is_inconclusive_when_the_counters_do_not_add_up() -> None:
    burst = udp_facts(server_counters={"Udp.RcvbufErrors": 5})
    assert load.judge_c10(c10(burst=burst)).status == "inconclusive"


# ---------------------------------------------------------------- helpers
def test_the_client_summary_and_per_call_results_are_read_back() -> None:
    events = parse_output(
        "sndbuf set=4096 got=8192 t=1.0\n"
        'sent n=2000 local=0.0.0.0:1 peer=10.0.0.5:6666 t=1.1\n'
        'error op=sendto errno=ENOBUFS size=20000 msg="No buffer space available" t=1.2\n'
        "summary sent=1 errors=3 by_errno=EMSGSIZE:1,ENOBUFS:2 t=1.3\n")
    assert load.by_errno(events) == {"EMSGSIZE": 1, "ENOBUFS": 2}
    assert load.field(events, "sndbuf", "got") == 8192
    assert sending.call_results(events) == [{"size": 2000, "ok": True, "result": 2000},
                                         {"size": 20000, "ok": False, "result": "ENOBUFS"}]


def test_argv_builders_ask_for_the_variants() -> None:
    client = load.burst_client_argv("10.0.0.5", 6666, [100, 200], count=3, sndbuf=4096,
                                    recverr=True)
    assert "--size=100" in client
    assert "--size=200" in client
    assert "--recverr" in client
    assert client[client.index("--sndbuf") + 1] == "4096"
    assert "--quiet" in client
    server = load.burst_server_argv(6666, rcvbuf=4096, delay=0.001)
    assert server[server.index("--rcvbuf") + 1] == "4096"
    assert "--delay" in server
    assert float(server[server.index("--first-timeout") + 1]) > float(server[server.index("--timeout") + 1])


def test_judges_do_not_mutate_the_evidence() -> None:
    ev = c6()
    before = copy.deepcopy(dict(ev.facts))
    load.judge_c6(ev)
    assert dict(ev.facts) == before


def test_the_module_lists_its_experiments() -> None:
    assert [e.id for e in load.EXPERIMENTS] == ["C6", "C10"]
    assert [e.id for e in sending.EXPERIMENTS] == ["C7", "C9"]
