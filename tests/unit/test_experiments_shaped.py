"""S1-S3's judges on hand-made evidence (the verdict follows the facts), and the pure pieces:
the Mathis model, the Wilson interval, resends counted without the originals, lab-nfq's log."""

from __future__ import annotations

import copy
import json
import math

import pytest

from socketlab.act import shaping
from socketlab.experiments import congestion, shaped, stats
from socketlab.experiments.base import Evidence
from socketlab.observe.wire import fault_packet


# ---------------------------------------------------------------- pure pieces
def test_mathis_model_is_mss_over_rtt_times_c_over_root_p():
    assert pytest.approx(1.2247, abs=1e-4) == stats.MATHIS_C
    rate = stats.mathis_bps(1460, 0.02, 0.01)
    assert rate == pytest.approx(8 * 1460 / 0.02 * math.sqrt(1.5) / 0.1)
    assert stats.mathis_bps(1460, 0.02, 0.04) == pytest.approx(rate / 2)  # 4x the loss: half
    assert stats.mathis_bps(1460, 0.04, 0.01) == pytest.approx(rate / 2)  # 2x the RTT: half
    with pytest.raises(ValueError, match="greater than 0"):
        stats.mathis_bps(1460, 0.02, 0)


def test_loglog_slope_of_the_model_is_minus_a_half():
    losses = [0.5, 1, 2, 5]
    rates = [stats.mathis_bps(1460, 0.02, p / 100) for p in losses]
    fit = stats.loglog_fit(losses, rates)
    assert fit is not None
    assert (fit.slope, fit.low, fit.high) == (-0.5, -0.5, -0.5)
    assert stats.loglog_fit(losses, [3e6] * 4) == stats.Fit(0, 0, 0, 4)
    assert stats.loglog_fit([1], [1]) is None


def test_wilson_interval_brackets_the_proportion():
    low, high = stats.wilson(200, 2000)
    assert low < 0.1 < high
    assert (round(low, 4), round(high, 4)) == (0.0876, 0.1139)
    assert stats.wilson(0, 0) == (0.0, 1.0)


def test_resends_are_seen_without_their_originals():
    # 0-1000 sent, 1000-2000 dropped before the tap (never captured), 2000-3000, then 1000 again
    assert shaped.resent([(0, 1000), (2000, 1000), (1000, 1000), (3000, 1000)]) == 1
    assert shaped.resent([(0, 1000), (1000, 1000)]) == 0
    assert shaped.resent([(0, 1000), (0, 0)]) == 0  # a bare ACK is no resend


def test_nfq_records_keep_only_the_last_start():
    lines = [{"event": "start"}, {"event": "fault", "seq": 1}, {"event": "summary", "loss": 9},
             {"event": "start"}, {"event": "fault", "seq": 2}, {"event": "loss", "seq": 7},
             {"event": "summary", "loss": 3}]
    log = "\n".join(json.dumps(x) for x in lines) + "\nnot json\n"
    got = shaping.nfq_records(log)
    assert got["nfq_faults"] == [{"event": "fault", "seq": 2}]
    assert got["nfq_losses"] == [{"event": "loss", "seq": 7}]
    assert got["nfq_summary"]["loss"] == 3
    assert shaping.nfq_records("") == {"nfq_faults": [], "nfq_losses": [], "nfq_summary": None}


def test_shaping_left_reads_lab_shape_show():
    clean = "egress: not shaped\ningress: not shaped\n$ tc -s qdisc show dev eth0\nqdisc noqueue 0: root"
    assert shaping.shaping_left(clean) == []
    dirty = ("egress: loss 10% seed 7 (backend engine)\ningress: not shaped\n"
             "Chain SOCKETLAB-EGRESS (1 references)\nlab-nfq queue 0: running (pid 7)")
    assert len(shaping.shaping_left(dirty)) == 3


# ---------------------------------------------------------------- S1
def s1_evidence(**changes) -> Evidence:
    tcp = {"bytes_sent": 200000, "bytes_received": 200000, "sha256_sent": "a", "sha256_received": "a",
           "resent_segments": 21, "retrans_segs": 23, "shaper": {"loss": 23, "packets": 167},
           "capture_dropped": 0}
    udp = {"requested": 2000, "sent": 2000, "client_wire": 1788, "server_wire": 1788,
           "delivered": 1788, "capture_dropped": 0}
    udp |= shaped.udp_places(udp, 212)
    facts = {"spec": shaped.S1_SPEC, "loss_pct": 10.0, "tcp": tcp, "udp": udp}
    for path, value in changes.items():
        part, key = path.split("__")
        facts[part][key] = value
    return Evidence("S1", facts)


def test_s1_holds_when_tcp_is_whole_and_udp_loss_is_ten_percent_and_placed():
    v = shaped.judge_s1(s1_evidence())
    assert v.status == "holds"
    assert "200000 of 200000 bytes" in v.summary
    assert "212 lost (10.6%" in v.summary


def test_s1_udp_places_every_missing_datagram():
    places = s1_evidence().facts["udp"]
    assert places["dropped_by_shaper"] == places["shaper_counted"] == places["lost"] == 212
    assert places["unexplained"] == places["lost_between_hosts"] == places["dropped_at_socket"] == 0


@pytest.mark.parametrize(("changes", "status"), [
    ({"tcp__bytes_received": 199000}, "does not hold"),
    ({"tcp__sha256_received": "b"}, "does not hold"),
    ({"udp__lost": 0}, "does not hold"),
    ({"udp__unexplained": 5}, "holds in part"),
    ({"udp__interval_pct": [20.0, 24.0]}, "holds in part"),
    ({"udp__capture_dropped": 3}, "inconclusive"),
    ({"tcp__bytes_sent": 0}, "inconclusive"),
])
def test_s1_verdict_follows_the_evidence(changes, status):
    assert shaped.judge_s1(s1_evidence(**changes)).status == status


# ---------------------------------------------------------------- S2
S2_FACTS = {
    "fired": [{"time": 100.0012, "hook": "postrouting", "flags": "SA", "seq": 5, "ack": 9,
               "ordinal": 1}],
    "client_capture": {"syn": [100.0, 101.026], "synack": [101.0264, 101.0376]},
    "server_capture": {"syn": [100.0001, 101.0261], "synack": [101.0263, 101.0375]},
    "connected_t": 101.0268, "sent": "hello,world", "received": "hello,world",
    "capture_dropped": 0,
}


def s2_evidence(**changes) -> Evidence:
    facts = copy.deepcopy(S2_FACTS)
    facts.update(changes)
    return Evidence("S2", facts)


def test_s2_holds_when_connect_waits_for_the_resent_syn_and_second_synack():
    v = shaped.judge_s2(s2_evidence())
    assert v.status == "holds", v.summary
    assert "returned 1.027 s after the first SYN" in v.summary
    assert "resent its SYN at +1.026 s" in v.summary


def test_s2_times_are_relative_to_the_first_syn():
    t = shaped.s2_times(s2_evidence().facts)
    assert t["syns"] == [0.0, 1.026]
    assert t["dropped_at"] == [0.0012]
    assert t["connect_returned"] == 1.0268


@pytest.mark.parametrize(("changes", "status"), [
    ({"fired": []}, "inconclusive"),
    ({"connected_t": None}, "inconclusive"),
    ({"connected_t": 100.5}, "does not hold"),  # returned before any SYN-ACK came
    ({"client_capture": {"syn": [100.0], "synack": [101.001]}, "connected_t": 101.0012},
     "holds in part"),  # the server's own retransmission came first: no SYN was resent
    ({"received": "hello"}, "holds in part"),
])
def test_s2_verdict_follows_the_evidence(changes, status):
    assert shaped.judge_s2(s2_evidence(**changes)).status == status


def test_s2_fault_pkt_takes_window_and_options_from_the_resent_copy():
    from socketlab.observe.analysis import Pkt

    line = {"time": 1.5, "src": "10.0.0.5", "dst": "10.0.0.6", "proto": "tcp", "sport": 6666,
            "dport": 40000, "flags": "SA", "seq": 5, "ack": 9, "len": 0, "ip_id": 0}
    resent = Pkt(0, 2.5, "10.0.0.5", "10.0.0.6", "tcp", sport=6666, dport=40000, flags="SA",
                 seq=5, ack=9, window=65160, mss=1460, wscale=7)
    pkt = fault_packet(line, [resent])
    assert (pkt.ts, pkt.flags, pkt.window, pkt.mss, pkt.wscale) == (1.5, "SA", 65160, 1460, 7)
    assert fault_packet(line).window == 0


# ---------------------------------------------------------------- S3
def s3_evidence(goodputs: list[float], rtt_ms: float = 21.0) -> Evidence:
    raw = [{"loss_pct": p, "goodput_bps": g, "rtt_ms": rtt_ms, "handshake_mss": 1460,
            "capture_dropped": 0} for p, g in zip(congestion.S3_LOSSES, goodputs, strict=True)]
    points = congestion.model_points(raw)
    fit = congestion.fit_of(points)
    slope = fit.slope if fit else None
    for p in points:
        p["cc"] = "reno"
    bbr = [{**p, "cc": "bbr", "ratio": 4.0} for p in points]
    curves = {"reno": {"points": points, "slope": slope, "missing": ""},
              "cubic": {"points": [], "slope": None, "missing": "not in this kernel"},
              "bbr": {"points": bbr, "slope": -0.1, "missing": "",
                      "fit": {"slope": -0.1, "low": -0.3, "high": 0.1, "n": 4}}}
    return Evidence("S3", {"delay_ms": 20, "c": stats.MATHIS_C, "points": points, "slope": slope,
                           "model_cc": "reno", "curves": curves})


def model(p: float, scale: float = 1.0) -> float:
    return scale * stats.mathis_bps(1460, 0.021, p / 100)


def test_s3_holds_when_goodput_follows_the_model():
    v = congestion.judge_s3(s3_evidence([model(p) for p in congestion.S3_LOSSES]))
    assert v.status == "holds", v.summary
    assert "slope of -0.5 (95% interval -0.5 to -0.5, 4 points over 1 sweep(s))" in v.summary
    assert "1.00-1.00 times" in v.summary
    assert "the sender ran reno, the model is Reno's" in v.summary
    assert v.summary.endswith("beside it (the model does not describe them) cubic: not in this kernel; "
                              "bbr: slope -0.1 (-0.3 to 0.1), 4.00-4.00 times the rate")


def test_s3_model_points_carry_the_ratio():
    points = s3_evidence([model(p, 2) for p in congestion.S3_LOSSES]).facts["points"]
    assert [p["ratio"] for p in points] == [2.0] * 4


@pytest.mark.parametrize(("goodputs", "status"), [
    ([model(p, 5) for p in congestion.S3_LOSSES], "holds in part"),     # the shape, not the level
    ([model(p) * (p ** 0.3) for p in congestion.S3_LOSSES], "holds in part"),  # falls, too slowly
    ([2e6] * 4, "does not hold"),                                    # flat: another limit
    ([0, 0, 0, 0], "inconclusive"),
])
def test_s3_verdict_follows_the_evidence(goodputs, status):
    assert congestion.judge_s3(s3_evidence(goodputs)).status == status


def test_s3_plot_has_a_series_per_algorithm_and_reno_s_model():
    ev = s3_evidence([model(p) for p in congestion.S3_LOSSES])
    plot = congestion.s3_plot(ev.facts["curves"])
    assert plot["series"] == ["reno Mbit/s", "bbr Mbit/s", "model Mbit/s"]
    assert plot["points"][0]["reno Mbit/s"] == plot["points"][0]["model Mbit/s"]


# A run of the kind: the shaper realized 1.1-1.3 % where 0.5 % and 1 % were configured,
# four points; judged at the nominal loss, the slope's interval would have said "holds".
REALIZED_RUN = [(0.5, 1.1, 7.48), (1.0, 1.2, 5.10), (2.0, 2.1, 4.90), (5.0, 5.2, 2.59)]


def realized_evidence(rows=REALIZED_RUN) -> Evidence:
    raw = [{"loss_pct": n, "realized_pct": r, "shaper_lost": round(r * 20), "shaper_packets": 2000,
            "goodput_bps": g * 1e6, "rtt_ms": 21.0, "handshake_mss": 1448, "capture_dropped": 0,
            "cc": "reno"} for n, r, g in rows]
    points = congestion.model_points(raw)
    curve = {"points": points, "missing": "", "rounds": 1}
    return Evidence("S3", {"delay_ms": 20, "c": stats.MATHIS_C, "points": points, "model_cc": "reno",
                           "rounds": 1, "curves": {"reno": curve},
                           "load": {"before": "2.10 1.90 1.50", "after": "2.30 2.00 1.60"}})


def test_s3_is_inconclusive_when_the_interval_spans_the_laws():
    v = congestion.judge_s3(realized_evidence())
    assert v.status == "inconclusive", v.summary
    assert "95% interval -1.208 to 0.05, 4 points over 1 sweep(s)" in v.summary
    assert "flat (0) and 1/√p (-0.5, the model) and 1/p (-1)" in v.summary
    assert "realized: 1.1-5.2% where 0.5-5% was configured" in v.summary
    assert "load 2.10 1.90 1.50 before, 2.30 2.00 1.60 after" in v.summary


def test_s3_the_same_goodputs_at_the_configured_loss_would_have_decided():
    """What the old judge did: the nominal loss narrows the interval onto the model."""
    nominal = [{**p, "realized_pct": None} for p in realized_evidence().facts["points"]]
    fit = congestion.fit_of(nominal)
    assert fit is not None
    assert congestion.models_inside(fit) == ["1/√p (-0.5, the model)"]


def test_s3_model_rate_is_taken_at_the_realized_loss():
    [p, *_] = realized_evidence().facts["points"]
    assert p["model_bps"] == round(stats.mathis_bps(1448, 0.021, 0.011))


def test_s3_more_sweeps_narrow_the_interval_until_it_decides():
    rows = REALIZED_RUN + [(0.5, 1.0, 8.9), (1.0, 1.25, 7.6), (2.0, 2.0, 5.6), (5.0, 5.1, 3.6),
                           (0.5, 1.2, 8.1), (1.0, 1.1, 8.0), (2.0, 2.2, 5.2), (5.0, 5.0, 3.5)]
    ev = realized_evidence(rows)
    fit = congestion.fit_of(ev.facts["points"])
    assert fit is not None
    assert congestion.decided(fit)
    assert congestion.judge_s3(ev).status in {"holds", "holds in part"}
    assert not congestion.decided(congestion.fit_of(realized_evidence().facts["points"]))


def test_s3_zero_realized_loss_is_not_replaced_by_the_configured_one():
    assert congestion.loss_of({"loss_pct": 0.5, "realized_pct": 0.0}) == 0.0
    assert congestion.loss_of({"loss_pct": 0.5, "realized_pct": None}) == 0.5


def test_loglog_fit_matches_a_textbook_regression():
    """y = 2,4,5,4,5 on x = 1..5: slope 0.6, standard error 0.283, t(3) 3.182."""
    fit = stats.loglog_fit([math.e ** x for x in range(1, 6)], [math.e ** y for y in (2, 4, 5, 4, 5)])
    assert fit == stats.Fit(0.6, -0.3, 1.5, 5)
    assert stats.loglog_fit([1, 2], [3, 4]) is None     # no interval from two points
    assert stats.t975(2) == 4.303
    assert abs(stats.t975(60) - 2.000) < 0.002
