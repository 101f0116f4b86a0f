"""bench shaping's pure parts: the Wilson interval, the figures built from made-up
measurements, and doctor's backends table read from a made-up `lab-shape backends`.
No Docker, no timing: the speed targets live only in the bench's printed table."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from socketlab.experiments.stats import p99, wilson
from socketlab.tools.bench import Figure, render
from socketlab.tools.bench_shaping import (
    burst_figures,
    delay_figures,
    engine_figures,
    goodput_figure,
    jitter_figure,
    proportion_figure,
    render_columns,
    reorder_figures,
    where_figure,
)
from socketlab.tools.doctor import BackendSupport, parse_backends, render_backends

BACKENDS_TEXT = (
    "kernel: netem=no netem-seed=no tbf=yes htb=yes bpf=yes ifb=yes statistic=yes nfqueue=yes "
    "lab-nfq=yes\n"
    "parameter\tegress:netem\tegress:engine\tingress:netem\tingress:engine\n"
    "delay\tno: the kernel has no sch_netem\tyes\tno: the kernel has no sch_netem\tyes\n"
    "rate\tyes\tyes\tyes\tyes\n"
    "seed\tno: this iproute2's netem has no seed\tyes\tno: this iproute2's netem has no seed\tyes\n"
)


def text_of(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


# -- the Wilson interval ------------------------------------------------------------------------
def test_wilson_matches_the_textbook_value():
    low, high = wilson(1000, 10_000)  # 10% of 10,000: 9.42% to 10.61% (z = 1.96)

    assert low == pytest.approx(0.09423, abs=1e-4)
    assert high == pytest.approx(0.10606, abs=1e-4)


@pytest.mark.parametrize(("k", "n"), [(0, 50), (50, 50), (3, 7), (500, 5000)])
def test_wilson_stays_within_0_and_1_and_holds_the_observed_rate(k, n):
    low, high = wilson(k, n)

    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_with_no_trials_knows_nothing():
    assert wilson(0, 0) == (0.0, 1.0)


def test_wilson_narrows_as_n_grows():
    small, large = wilson(10, 100), wilson(1000, 10_000)

    assert large[1] - large[0] < small[1] - small[0]


# -- figures from made-up measurements ----------------------------------------------------------
BASE = [0.2] * 99 + [0.3]


def test_delay_within_two_ms_of_100_is_met():
    added, p99_figure = delay_figures("engine", BASE, [101.5] * 100, 100.0)

    assert (added.value, added.unit, added.target, added.met) == (pytest.approx(101.3), "ms",
                                                                   "100 ± 2", True)
    assert p99_figure.met is None
    assert p99_figure.value == pytest.approx(101.3)


def test_delay_tolerance_is_1_ms_for_small_delays_and_2_percent_for_large():
    assert delay_figures("x", BASE, [11.5] * 10, 10.0)[0].met is False  # 1.3 ms off, 1 ms allowed
    assert delay_figures("x", BASE, [1001.7] * 10, 1000.0)[0].target == "1000 ± 20"


def test_delay_too_long_is_not_met():
    assert delay_figures("engine", BASE, [103.5] * 100, 100.0)[0].met is False


def test_jitter_figure_takes_the_baselines_variance_out():
    shaped = [90.0, 110.0] * 50  # sd about 10.05 ms
    figure = jitter_figure("sd", [0.0, 0.0, 0.0], shaped, 10.0, 1.349)

    assert figure.value == pytest.approx(10.05, abs=0.01)
    assert figure.met is True
    assert figure.target == "10.00 ± 1.00"
    assert "from the IQR" in figure.note


def test_jitter_far_from_the_expected_sd_is_not_met():
    figure = jitter_figure("sd", [0.0, 0.0], [80.0, 120.0] * 50, 10 / 3 ** 0.5, 3 ** 0.5)

    assert figure.met is False


def test_proportion_met_when_the_interval_holds_the_target():
    figure = proportion_figure("loss", 991, 10_000, 10.0)

    assert (figure.value, figure.unit, figure.met) == (pytest.approx(9.91), "%", True)
    assert figure.target == "95% interval holds 10"
    assert "991 of 10,000" in figure.note


def test_proportion_not_met_when_the_interval_misses_the_target():
    assert proportion_figure("loss", 800, 10_000, 10.0).met is False


def test_reorder_counts_the_early_ones_against_25_percent():
    sink = {"distinct": 6000, "overtook": 1494, "early": 1400, "ooo": 4505}

    early, out_of_order = reorder_figures("engine", {"sent": 6000, "seconds": 1.5}, sink)

    assert early.met is True
    assert early.value == pytest.approx(24.9)
    assert out_of_order.met is None
    assert out_of_order.value == pytest.approx(75.08, abs=0.01)
    assert "23.33 %" in out_of_order.note
    assert "4,000 datagrams/s sent" in out_of_order.note


def test_bursts_are_the_runs_of_missing_datagrams():
    """1,000 lost in 250 runs: a mean burst of 4, whose interval holds the configured 4."""
    burst, loss = burst_figures("netem", {"sent": 10_000}, {"missing": 1000, "lost_runs": 250}, 10.0, 4.0)

    assert (burst.value, burst.met) == (4.0, True)
    assert "95% interval 3.57-4.43" in burst.note
    assert (loss.value, loss.met) == (10.0, None)
    short, _ = burst_figures("netem", {"sent": 10_000}, {"missing": 1000, "lost_runs": 900}, 10.0, 4.0)
    assert short.met is False


def test_the_side_by_side_table_puts_each_backend_in_its_column():
    figures = [Figure("host load average (1 min), at the start", 1.5, "/ 2 CPUs"),
               where_figure("engine", "the lab's hosts"), where_figure("netem", "user-mode Linux 6.1"),
               Figure("engine: loss 10%: observed loss", 10.3, "%", "95% interval holds 10", True, "a"),
               Figure("netem: loss 10%: observed loss", 12.9, "%", "95% interval holds 10", False, "b")]

    text = text_of(render_columns(figures))

    row = next(line for line in text.splitlines() if "loss 10%: observed loss" in line)
    assert row.index("10.30 % met") < row.index("12.90 % not met")
    assert "engine: a; netem: b" in text
    assert "user-mode Linux 6.1" in text


def test_goodput_counts_the_steady_part_and_explains_the_headers():
    sink = {"steady_bytes": 3_585_000, "steady_s": 3.0}  # 9.56 Mbit/s of payload

    figure = goodput_figure("tcp", sink, 10_000_000, 1448)

    assert figure.value == pytest.approx(9.56)
    assert (figure.unit, figure.target, figure.met) == ("Mbit/s", "9.5-10.5", True)
    assert "1448 payload bytes per 1514-byte frame" in figure.note
    assert "10.00 Mbit/s of frames" in figure.note


def test_goodput_with_nothing_received_is_zero_and_not_met():
    figure = goodput_figure("udp", {"steady_bytes": 0, "steady_s": 0.0}, 10_000_000, 1472)

    assert (figure.value, figure.met) == (0.0, False)


def test_engine_figures_rate_through_the_queue_against_20000():
    sent = {"sent": 40_000, "errors": 0, "seconds": 1.0}
    sink = {"distinct": 40_000, "span_s": 1.6}  # 25,000 per second
    rate, through, added, tail = engine_figures(sent, sink, BASE, [0.5] * 100)

    assert rate.value == 40_000
    assert rate.met is None
    assert through.value == pytest.approx(25_000)
    assert through.met is True
    assert added.value == pytest.approx(300.0)
    assert added.unit == "µs"
    assert tail.value == 0.5


def test_engine_figures_slow_queue_is_not_met():
    sent = {"sent": 40_000, "errors": 0, "seconds": 3.0}
    through = engine_figures(sent, {"distinct": 30_000, "span_s": 3.0}, BASE, BASE)[1]

    assert through.met is False
    assert "30,000 of 40,000 arrived" in through.note


def test_p99_of_a_hundred_values_is_the_99th():
    assert p99([float(i) for i in range(1, 101)]) == 100.0
    assert p99([]) == 0.0


def test_render_shows_notes_and_a_dash_for_a_figure_without_a_value():
    figures = [Figure("netem: every figure", 0.0, "", note="not on this kernel: no figures"),
               proportion_figure("engine: loss 10%: observed loss", 991, 10_000, 10.0)]

    text = text_of(render(figures, "shaping"))

    assert "not on this kernel: no figures" in text
    assert "9.91 %" in text
    assert "met" in text
    assert "0 " not in text.split("netem: every figure")[1].split("not on")[0]


def test_render_without_notes_has_no_note_column():
    assert "note" not in text_of(render([Figure("x", 1.0, "s")], "lifecycle"))


# -- doctor: the backends table --------------------------------------------------------------
def test_parse_backends_reads_features_columns_and_cells():
    support = parse_backends(BACKENDS_TEXT)

    assert support.features["netem"] is False
    assert support.features["nfqueue"] is True
    assert support.columns == ["egress:netem", "egress:engine", "ingress:netem", "ingress:engine"]
    assert support.rows["rate"]["ingress:netem"] == "yes"
    assert support.why_not("netem", "delay") == "the kernel has no sch_netem"
    assert support.why_not("engine", "delay") == ""
    assert support.why_not("engine", "seed", "ingress") == ""


def test_why_not_for_an_unknown_parameter_says_so():
    assert "did not say" in parse_backends(BACKENDS_TEXT).why_not("engine", "teleport")


def test_parse_backends_of_nothing_is_an_error():
    support = parse_backends("")

    assert support.error
    assert support.rows == {}
    assert support.why_not("engine", "delay") == support.error


def test_render_backends_numbers_each_reason_once():
    text = text_of(render_backends(parse_backends(BACKENDS_TEXT)))

    assert "egress netem" in text
    assert "ingress engine" in text
    assert text.count("(1) the kernel has no sch_netem") == 1
    assert "(2) this iproute2's netem has no seed" in text
    delay_row = next(line for line in text.splitlines() if line.strip("│ ").startswith("delay"))
    assert delay_row.count("no (1)") == 2
    assert delay_row.count("served") == 2
    assert "kernel: netem=no" in text


def test_render_backends_shows_an_error():
    text = text_of(render_backends(BackendSupport(error="lab-shape: not found")))

    assert "lab-shape: not found" in " ".join(text.split())  # a narrow table folds its caption
