"""labshape (images/lab/labshape, the in-image shaper): parsing, validation, and the exact argv
of every plan."""

from __future__ import annotations

import json

import pytest

from socketlab.act.shaping import labshape

ls = labshape()
netem_args = ls.backends.netem.netem_args
ALL = frozenset(ls.FEATURES)
NO_NETEM = ALL - {"netem", "netem-seed"}
ENGINE_IPT = ["iptables", "-t", "mangle"]


# -- parsing ----------------------------------------------------------------------------------
def test_parse_the_whole_grammar():
    imp = ls.parse("delay 100ms 10ms distribution normal loss 5% burst 3 duplicate 1% "
                   "reorder 25% gap 5 corrupt 0.1% rate 1mbit limit 100 seed 42")
    assert imp == ls.Impairment(delay_ms=100, jitter_ms=10, distribution="normal", loss_pct=5,
                                loss_burst=3, duplicate_pct=1, reorder_pct=25, reorder_gap=5,
                                corrupt_pct=0.1, rate_bit=1_000_000, limit=100, seed=42)


@pytest.mark.parametrize(("word", "ms"), [("100ms", 100), ("1s", 1000), ("500us", 0.5), ("1.5s", 1500)])
def test_time_units(word, ms):
    assert ls.parse(f"delay {word}").delay_ms == ms


@pytest.mark.parametrize(("word", "bits"), [("1mbit", 10**6), ("500kbit", 5 * 10**5), ("2gbit", 2 * 10**9),
                                            ("125kbps", 10**6), ("9600bit", 9600)])
def test_rate_units(word, bits):
    assert ls.parse(f"rate {word}").rate_bit == bits


def test_netem_spelling_of_random_loss_is_accepted():
    assert ls.parse("loss random 5%").loss_pct == 5


@pytest.mark.parametrize("spec", ["delay 100ms 10ms distribution pareto loss 5% burst 3 seed 7",
                                  "delay 50ms reorder 25% gap 5 rate 2mbit limit 10",
                                  "duplicate 1% corrupt 0.1%"])
def test_to_spec_round_trips(spec):
    imp = ls.parse(spec)
    assert ls.parse(imp.to_spec()) == imp


@pytest.mark.parametrize(("spec", "message"), [
    ("loss 150%", "loss 150% is out of range: use 0-100%"),
    ("loss 5", "loss 5 needs a percent sign (e.g. 5%)"),
    ("delay 100", "delay 100 needs a time unit: ms, s or us (e.g. 100ms)"),
    ("dealy 100ms", "unknown word 'dealy': expected one of delay, loss, duplicate, reorder, corrupt, "
                    "rate, seed"),
    ("delay 10ms 20ms", "jitter 20ms is larger than the delay 10ms: the delay would be cut at 0; "
                        "use a jitter up to the delay"),
    ("delay 10ms distribution normal", "a distribution needs a jitter "
                                       "(e.g. delay 100ms 10ms distribution normal)"),
    ("delay 10ms 1ms distribution gauss", "distribution 'gauss' is unknown: use one of normal, pareto, "
                                          "paretonormal, uniform"),
    ("reorder 25%", "reorder needs a delay: reordered packets are the ones sent without it "
                    "(e.g. delay 50ms reorder 25%)"),
    ("rate 1mbit limit 0", "limit 0 is out of range: use 1-100000 packets"),
    ("rate 2", "rate 2 needs a unit: bit, kbit, mbit, gbit (or bps, kbps, mbps, gbps for bytes per second)"),
    ("rate 100bit", "rate 100bit is out of range: use 8kbit-100gbit (no limit: leave rate out)"),
    ("rate 0mbit", "rate 0mbit is out of range: use 8kbit-100gbit (no limit: leave rate out)"),
    ("loss 0%", "`loss 0%` changes nothing: every value in it is zero; give at least one that is "
                "not (e.g. delay 100ms)"),
    ("loss 90% burst 2", "loss 90% burst 2 is impossible: with 90% lost, bursts average at least "
                         "9 packets"),
    ("loss 5% burst 0.5", "burst 0.5 is out of range: a loss burst is at least 1 packet long"),
    ("loss 100% burst 3", "loss burst needs a loss between 0% and 100%"),
    ("rate 1mbit seed 1", "seed needs something random to seed "
                          "(jitter, loss, duplicate, reorder or corrupt)"),
    ("loss 1% loss 2%", "loss is given twice"),
    ("delay", "the delay is missing at the end of the spec"),
    ("", "the spec is empty: give at least one of delay, loss, duplicate, reorder, corrupt, rate"),
])
def test_validation_errors_are_one_clear_line(spec, message):
    with pytest.raises(ls.ShapeError) as caught:
        ls.parse(spec)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_parse_env_reads_both_directions():
    both = ls.parse_env("egress: delay 100ms loss 5%; ingress: rate 1mbit ;")
    assert both == {"egress": ls.parse("delay 100ms loss 5%"), "ingress": ls.parse("rate 1mbit")}


@pytest.mark.parametrize(("text", "message"), [
    ("delay 100ms", "'delay 100ms' does not say its direction: write 'egress: SPEC' or 'ingress: SPEC', "
                    "separated by ';'"),
    ("ingress: loss 101%", "ingress: loss 101% is out of range: use 0-100%"),
])
def test_parse_env_errors(text, message):
    with pytest.raises(ls.ShapeError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        ls.parse_env(text)


# -- the netem plan --------------------------------------------------------------------------
def test_netem_egress_plan():
    imp = ls.parse("delay 100ms 10ms distribution normal loss 5% duplicate 1% reorder 25% gap 5 "
                   "corrupt 0.1% rate 2mbit limit 100")
    assert ls.build_plan(imp, "egress", "netem") == [
        ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"],
        ["tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "netem", "delay", "100ms", "10ms",
         "distribution", "normal", "loss", "5%", "duplicate", "1%", "reorder", "25%", "gap", "5",
         "corrupt", "0.1%"],
        ["tc", "qdisc", "add", "dev", "eth0", "parent", "1:1", "handle", "2:", "tbf", "rate", "2000000bit",
         "burst", "3028", "limit", "151400"],
        ["tc", "qdisc", "add", "dev", "eth0", "parent", "2:1", "handle", "3:", "pfifo", "limit", "100"],
    ]


def test_netem_ingress_plan_shapes_the_ifb_before_redirecting_to_it():
    assert ls.build_plan(ls.parse("delay 50ms rate 10mbit"), "ingress", "netem") == [
        ["ethtool", "-K", "eth0", "gro", "off"],
        ["ip", "link", "add", "slab-ifb0", "type", "ifb"],
        ["ip", "link", "set", "slab-ifb0", "up"],
        ["tc", "qdisc", "replace", "dev", "slab-ifb0", "root", "handle", "1:", "netem", "delay", "50ms"],
        ["tc", "qdisc", "add", "dev", "slab-ifb0", "parent", "1:1", "handle", "2:", "tbf", "rate",
         "10000000bit", "burst", "12500", "limit", "1514000"],
        ["tc", "qdisc", "add", "dev", "slab-ifb0", "parent", "2:1", "handle", "3:", "pfifo", "limit", "1000"],
        ["tc", "qdisc", "add", "dev", "eth0", "handle", "ffff:", "ingress"],
        ["tc", "filter", "add", "dev", "eth0", "parent", "ffff:", "protocol", "all", "u32", "match", "u32",
         "0", "0", "action", "mirred", "egress", "redirect", "dev", "slab-ifb0"],
    ]


def test_netem_rate_alone_is_a_root_tbf():
    plan = ls.build_plan(ls.parse("rate 1mbit"), "egress", "netem")
    assert plan[1][:9] == ["tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "2:", "tbf"]


def test_netem_bursty_loss_is_the_gilbert_model():
    # long-run loss 5%, bursts of 3: r = 1/3, p = 0.05 * r / 0.95
    assert netem_args(ls.parse("loss 5% burst 3")) == ["loss", "gemodel", "1.75439%", "33.3333%",
                                                           "100%", "0%"]


def test_uniform_is_netems_default_so_it_is_not_spelled():
    assert netem_args(ls.parse("delay 10ms 5ms distribution uniform")) == ["delay", "10ms", "5ms"]


def test_netem_seed_only_where_iproute2_has_it():
    imp = ls.parse("loss 1% seed 9")
    assert netem_args(imp) == ["loss", "1%", "seed", "9"]
    assert netem_args(imp, seed_ok=False) == ["loss", "1%"]


# -- the engine plan ---------------------------------------------------------------------------
DROP_FILTER = [
    ["tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1"],
    ["tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", "100gbit",
     "quantum", "200000"],
    ["tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "bpf", "bytecode",
     "4,32 0 0 4294963220,21 0 1 1452,6 0 0 2,6 0 0 4294967295", "da"],
]


def test_engine_egress_loss_and_rate():
    assert ls.build_plan(ls.parse("loss 20% rate 2mbit"), "egress", "engine") == [
        ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"],
        *DROP_FILTER,
        ["tc", "qdisc", "add", "dev", "eth0", "parent", "1:1", "handle", "2:", "tbf", "rate", "2000000bit",
         "burst", "3028", "limit", "1514000"],
        ["tc", "qdisc", "add", "dev", "eth0", "parent", "2:1", "handle", "3:", "pfifo", "limit", "1000"],
        [*ENGINE_IPT, "-N", "SOCKETLAB-EGRESS"],
        [*ENGINE_IPT, "-A", "SOCKETLAB-EGRESS", "-m", "statistic", "--mode", "random", "--probability", "0.2",
         "-j", "MARK", "--set-xmark", "0x5ac/0xffffffff"],
        [*ENGINE_IPT, "-A", "POSTROUTING", "-o", "eth0", "-j", "SOCKETLAB-EGRESS"],
    ]


def test_engine_ingress_loss_and_rate():
    assert ls.build_plan(ls.parse("loss 5% rate 1mbit limit 50"), "ingress", "engine") == [
        ["ethtool", "-K", "eth0", "gro", "off"],
        ["ip", "link", "add", "slab-ifb0", "type", "ifb"],
        ["ip", "link", "set", "slab-ifb0", "up"],
        ["tc", "qdisc", "replace", "dev", "slab-ifb0", "root", "handle", "2:", "tbf", "rate", "1000000bit",
         "burst", "3028", "limit", "75700"],
        ["tc", "qdisc", "add", "dev", "slab-ifb0", "parent", "2:1", "handle", "3:", "pfifo", "limit", "50"],
        ["tc", "qdisc", "add", "dev", "eth0", "handle", "ffff:", "ingress"],
        ["tc", "filter", "add", "dev", "eth0", "parent", "ffff:", "protocol", "all", "u32", "match", "u32",
         "0", "0", "action", "mirred", "egress", "redirect", "dev", "slab-ifb0"],
        [*ENGINE_IPT, "-N", "SOCKETLAB-INGRESS"],
        [*ENGINE_IPT, "-A", "SOCKETLAB-INGRESS", "-m", "statistic", "--mode", "random", "--probability",
         "0.05", "-j", "DROP"],
        [*ENGINE_IPT, "-A", "PREROUTING", "-i", "eth0", "-j", "SOCKETLAB-INGRESS"],
    ]


def nfq_start(queue: int, spec: str, faults: str = "[]") -> list[list[str]]:
    return [["mkdir", "-p", "/run/socketlab"],
            ["setsid", "-f", "lab-nfq", "--queue", str(queue), "--spec", spec, "--faults", faults, "--log",
             f"/run/socketlab/nfq-{queue}.log", "--pidfile", f"/run/socketlab/nfq-{queue}.pid",
             "--max-seconds", "86400", "--mark", "0x5ab"],
            ["lab-shape", "wait-pidfile", f"/run/socketlab/nfq-{queue}.pid"]]


def test_engine_egress_delay_goes_to_lab_nfq_and_random_loss_stays_in_iptables():
    plan = ls.build_plan(ls.parse("delay 100ms 10ms loss 5% duplicate 1%"), "egress", "engine")
    assert plan == [
        ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"],
        *DROP_FILTER,
        *nfq_start(0, "delay 100ms 10ms duplicate 1%"),  # the loss stays in iptables
        [*ENGINE_IPT, "-N", "SOCKETLAB-EGRESS"],
        [*ENGINE_IPT, "-A", "SOCKETLAB-EGRESS", "-m", "mark", "--mark", "0x5ab", "-j", "RETURN"],
        [*ENGINE_IPT, "-A", "SOCKETLAB-EGRESS", "-m", "statistic", "--mode", "random", "--probability",
         "0.05", "-j", "MARK", "--set-xmark", "0x5ac/0xffffffff"],
        [*ENGINE_IPT, "-A", "SOCKETLAB-EGRESS", "-m", "mark", "!", "--mark", "0x5ac", "-j", "NFQUEUE",
         "--queue-num", "0", "--queue-bypass"],
        [*ENGINE_IPT, "-A", "POSTROUTING", "-o", "eth0", "-j", "SOCKETLAB-EGRESS"],
    ]


def test_engine_ingress_seeded_bursty_loss_goes_to_lab_nfq():
    plan = ls.build_plan(ls.parse("loss 5% burst 3 corrupt 1% seed 42"), "ingress", "engine")
    assert plan == [
        ["ethtool", "-K", "eth0", "gro", "off"],
        *nfq_start(1, "loss 5% burst 3 corrupt 1% seed 42"),
        [*ENGINE_IPT, "-N", "SOCKETLAB-INGRESS"],
        [*ENGINE_IPT, "-A", "SOCKETLAB-INGRESS", "-m", "mark", "--mark", "0x5ab", "-j", "RETURN"],
        [*ENGINE_IPT, "-A", "SOCKETLAB-INGRESS", "-j", "NFQUEUE", "--queue-num", "1", "--queue-bypass"],
        [*ENGINE_IPT, "-A", "PREROUTING", "-i", "eth0", "-j", "SOCKETLAB-INGRESS"],
    ]


def test_faults_are_passed_to_lab_nfq_as_they_are():
    faults = [{"match": {"proto": "udp", "nth": 2}, "action": "drop"}]
    plan = ls.build_plan(ls.parse("delay 1ms", faults), "egress", "engine")
    start = next(step for step in plan if "lab-nfq" in step)
    assert json.loads(start[start.index("--faults") + 1]) == faults


# -- clear ---------------------------------------------------------------------------------------
def test_clear_plans():
    assert ls.clear_plan("egress") == [
        ["lab-shape", "stop-pidfile", "/run/socketlab/timer-egress.pid"],
        [*ENGINE_IPT, "-D", "POSTROUTING", "-o", "eth0", "-j", "SOCKETLAB-EGRESS"],
        [*ENGINE_IPT, "-F", "SOCKETLAB-EGRESS"], [*ENGINE_IPT, "-X", "SOCKETLAB-EGRESS"],
        ["lab-shape", "stop-pidfile", "/run/socketlab/nfq-0.pid"],
        ["tc", "qdisc", "del", "dev", "eth0", "root"]]
    assert ls.clear_plan("ingress") == [
        ["lab-shape", "stop-pidfile", "/run/socketlab/timer-ingress.pid"],
        [*ENGINE_IPT, "-D", "PREROUTING", "-i", "eth0", "-j", "SOCKETLAB-INGRESS"],
        [*ENGINE_IPT, "-F", "SOCKETLAB-INGRESS"], [*ENGINE_IPT, "-X", "SOCKETLAB-INGRESS"],
        ["lab-shape", "stop-pidfile", "/run/socketlab/nfq-1.pid"],
        ["tc", "qdisc", "del", "dev", "eth0", "ingress"], ["ip", "link", "del", "slab-ifb0"]]


# -- backends --------------------------------------------------------------------------------------
def test_auto_is_netem_where_the_kernel_has_it_else_the_engine():
    imp = ls.parse("delay 100ms loss 5%")
    assert ls.choose_backend(imp, "egress", "auto", ALL) == "netem"
    assert ls.choose_backend(imp, "egress", "auto", NO_NETEM) == "engine"


def test_auto_takes_the_engine_for_a_seed_this_netem_cannot_take():
    assert ls.choose_backend(ls.parse("loss 5% seed 1"), "egress", "auto", ALL - {"netem-seed"}) == "engine"


def test_a_parameter_no_backend_serves_is_refused_naming_why():
    with pytest.raises(ls.ShapeError) as caught:
        ls.choose_backend(ls.parse("delay 100ms rate 1mbit"), "egress", "auto", NO_NETEM - {"lab-nfq"})
    assert str(caught.value) == ("cannot shape egress with auto on this host (engine cannot: delay: lab-nfq "
                                 "(the NFQUEUE loop) is not installed in this host)")


def test_netem_asked_for_without_netem_is_refused():
    with pytest.raises(ls.ShapeError, match="netem cannot: loss: the kernel has no sch_netem"):
        ls.choose_backend(ls.parse("loss 5%"), "egress", "netem", NO_NETEM)


def test_ingress_rate_needs_the_ifb():
    with pytest.raises(ls.ShapeError, match="rate: the kernel has no ifb/ingress/mirred"):
        ls.choose_backend(ls.parse("rate 1mbit"), "ingress", "engine", NO_NETEM - {"ifb"})


def test_random_loss_alone_needs_no_lab_nfq():
    imp = ls.parse("loss 20%")
    assert ls.choose_backend(imp, "egress", "engine", NO_NETEM - {"lab-nfq", "nfqueue"}) == "engine"


def test_support_table_on_this_kind_of_kernel():
    table = dict(ls.support_table(NO_NETEM - {"lab-nfq"}))
    assert table["loss"] == {"egress:netem": "no: the kernel has no sch_netem", "egress:engine": "yes",
                             "ingress:netem": "no: the kernel has no sch_netem", "ingress:engine": "yes"}
    assert table["delay"]["egress:engine"] == "no: lab-nfq (the NFQUEUE loop) is not installed in this host"
    assert table["rate"]["ingress:engine"] == "yes"


def test_probe_tries_each_feature_and_undoes_it():
    calls = []

    def run(argv):
        calls.append(argv)
        failing = "netem" in argv or argv[:2] == ["ip", "link"] and "add" in argv
        return ls.StepResult(argv, 2 if failing else 0, "")

    have = ls.probe(run, which=lambda _name: None)
    assert have == frozenset({"tbf", "htb", "bpf", "statistic", "nfqueue"})
    assert ["iptables", "-t", "mangle", "-X", "SOCKETLAB-PROBE"] in calls


# -- apply: a failing step puts back what was there --------------------------------------------
class FakeSystem:
    """Records the steps; fails any step containing `fail_on`."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.steps: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, argv: list[str]):
        self.steps.append(argv)
        failed = self.fail_on is not None and self.fail_on in argv
        return ls.StepResult(argv, 2 if failed else 0,
                             "RTNETLINK answers: Invalid argument" if failed else "")


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(ls.paths, "RUN_DIR", str(tmp_path))
    return tmp_path


def test_apply_clears_then_runs_the_plan_and_remembers_it(run_dir):
    system = FakeSystem()
    imp = ls.parse("loss 10%")
    assert ls.apply(imp, "egress", "auto", NO_NETEM, run=system) == "engine"
    clear = ls.clear_plan("egress")
    assert system.steps == [*clear, *ls.build_plan(imp, "egress", "engine")]
    assert ls.read_state("egress") == {"spec": "loss 10%", "faults": [], "backend": "engine"}


def test_a_failing_apply_restores_the_previous_shaping(run_dir):
    ls.apply(ls.parse("loss 10%"), "egress", "auto", NO_NETEM, run=FakeSystem())
    system = FakeSystem(fail_on="tbf")
    with pytest.raises(ls.ApplyFailed) as caught:
        ls.apply(ls.parse("loss 20% rate 2mbit"), "egress", "auto", NO_NETEM, run=system)
    assert str(caught.value).startswith("step `tc qdisc add dev eth0 parent 1:1 handle 2: tbf "
                                        "rate 2000000bit burst 3028 limit 1514000`")
    assert str(caught.value).endswith("failed: RTNETLINK answers: Invalid argument; the previous egress "
                                      "shaping (loss 10%) is back")
    restore = [*ls.clear_plan("egress"), *ls.build_plan(ls.parse("loss 10%"), "egress", "engine")]
    assert system.steps[-len(restore):] == restore
    assert ls.read_state("egress")["spec"] == "loss 10%"


def test_a_failing_first_apply_leaves_the_direction_unshaped(run_dir):
    system = FakeSystem(fail_on="ifb")
    with pytest.raises(ls.ApplyFailed, match="ingress is left unshaped, as it was$"):
        ls.apply(ls.parse("rate 1mbit"), "ingress", "auto", NO_NETEM, run=system)
    assert system.steps[-len(ls.clear_plan("ingress")):] == ls.clear_plan("ingress")
    assert ls.read_state("ingress") is None


def test_a_refused_apply_runs_nothing(run_dir):
    system = FakeSystem()
    with pytest.raises(ls.ShapeError):
        ls.apply(ls.parse("delay 1ms"), "egress", "netem", NO_NETEM, run=system)
    assert system.steps == []


def test_probe_keeps_its_first_answer_in_the_cache_until_asked_afresh(tmp_path):
    calls = []

    def run(argv):
        calls.append(argv)
        return ls.StepResult(argv, 2 if "netem" in argv else 0, "")

    cache = str(tmp_path / "probe.json")
    first = ls.probe(run, which=lambda _name: None, cache=cache)
    steps = len(calls)
    assert ls.probe(run, which=lambda _name: None, cache=cache) == first
    assert len(calls) == steps  # read back: nothing run again
    ls.probe(run, which=lambda _name: "/lab/bin/lab-nfq", cache=cache, fresh=True)
    assert len(calls) == 2 * steps
    assert "lab-nfq" in ls.probe(run, which=lambda _name: None, cache=cache)


def test_drain_waits_as_long_as_the_shaping_may_hold_a_packet_then_clears(run_dir):
    ls.apply(ls.parse("delay 100ms 20ms"), "egress", "engine", NO_NETEM, run=FakeSystem())
    ls.apply(ls.parse("rate 1mbit limit 10", [{"match": {}, "action": "delay", "ms": 300}]), "ingress",
             "engine", NO_NETEM, run=FakeSystem())
    slept, system = [], FakeSystem()
    waited = ls.host.drain(run=system, sleep=slept.append)
    # ingress: a 300 ms fault delay, and 10 full frames queued at 1 mbit/s (121 ms): 0.42 s
    assert slept == [waited]
    assert waited == pytest.approx(0.3 + 10 * 1514 * 8 / 1e6 + 0.2)
    assert ls.read_state("egress") is None
    assert ls.read_state("ingress") is None
    assert system.steps == [*ls.clear_plan("egress"), *ls.clear_plan("ingress")]
