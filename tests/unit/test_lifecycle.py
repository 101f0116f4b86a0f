"""The lifecycle's pieces without Docker: signals held during a step, a lab of the same name
told apart from the one asked for, and a running lab used as it is (never removed)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from socketlab.errors import LabExists, LabNotRunning
from socketlab.lab import signals
from socketlab.lab.config import LabConfig
from socketlab.lab.existing import differences, exists_error, refuse_unusable, this_or_running


# -- signals --------------------------------------------------------------------------------
def a_step(steps: list[str], signum: int, error: Exception | None = None) -> None:
    """A step that is signalled half-way (the process alone, as `kill PID` does)."""
    with signals.deferred():
        os.kill(os.getpid(), signum)
        steps.append("after the signal")  # still runs: the step is not cut short
        if error is not None:
            raise error


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_deferred_step_waits_for_its_end(signum):
    steps: list[str] = []
    with pytest.raises(signals.Interrupted):
        a_step(steps, signum)
    assert steps == ["after the signal"]


def test_deferred_puts_the_handlers_back():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with signals.deferred():
        assert signal.getsignal(signal.SIGINT) is not before[0]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_deferred_without_raising_lets_the_caller_look():
    with signals.deferred(raise_after=False) as held:
        os.kill(os.getpid(), signal.SIGINT)
    assert held.signals == [signal.SIGINT]


def test_the_steps_own_error_goes_first():
    with pytest.raises(ValueError, match="compose failed"):
        a_step([], signal.SIGINT, ValueError("compose failed"))


def test_no_signal_no_interruption():
    with signals.deferred() as held:
        pass
    assert not held


def test_an_outcome_is_only_what_was_said():
    assert signals.outcome_of(KeyboardInterrupt()) == ""
    assert signals.outcome_of(signals.Interrupted("lab 'x' was removed")) == "lab 'x' was removed"


# -- a lab of the same name -------------------------------------------------------------------
RUNNING = LabConfig(project="x", subnet="192.168.131.0/24", image="socketlab/lab:t")


def test_the_same_settings_differ_in_nothing():
    asked = LabConfig(project="x", subnet="192.168.131.0/24", image="socketlab/lab:t")
    assert differences(asked, RUNNING) == {}


def test_another_subnet_is_a_difference_with_both_values():
    asked = LabConfig(project="x", subnet="192.168.40.0/24", image="socketlab/lab:t")
    assert differences(asked, RUNNING) == {
        "subnet": ("192.168.40.0/24", "192.168.131.0/24"),
        "server_ip": ("192.168.40.5", "192.168.131.5"),
        "client_ip": ("192.168.40.6", "192.168.131.6")}


def test_auto_matches_any_subnet_but_not_another_port():
    asked = LabConfig(project="x", subnet="auto", port=7000, image="socketlab/lab:t")
    assert differences(asked, RUNNING) == {"port": ("7000", "6666")}


def test_only_the_settings_asked_for_count():
    asked = LabConfig(project="x", subnet="192.168.33.0/24", offloads=True)
    assert set(differences(asked, RUNNING)) == {"subnet", "server_ip", "client_ip", "image",
                                                "offloads"}
    assert differences(asked, RUNNING, only={"port"}) == {}
    assert differences(asked, RUNNING, only={"offloads"}) == {"offloads": ("on", "off")}


def test_the_refusal_names_each_difference_and_leaves_the_lab_alone():
    error = exists_error("x", {"subnet": ("192.168.40.0/24", "192.168.131.0/24")})
    assert str(error) == ("lab 'x' is already running with other settings "
                          "(subnet 192.168.131.0/24, not 192.168.40.0/24)")
    assert error.hint.startswith("it was left as it is")
    assert error.running


def test_a_lab_there_but_not_running_is_named_with_what_is_there():
    error = exists_error("x", None, ["container x-server-1"])
    assert str(error) == "lab 'x' is already there but not running (container x-server-1)"
    assert not error.running


# -- this_or_running ----------------------------------------------------------------------------
class FakeLab:
    """Lab's lifecycle as this_or_running sees it."""

    def __init__(self, config: LabConfig, *, there: LabConfig | None = None, stopped: bool = False,
                 **_kw) -> None:
        self.config, self.there, self.engine, self.events = config, there, None, []
        self.stopped = stopped  # its containers are there, not running
        self.progress = self.events.append

    def running(self, project, *, engine=None, progress=None):
        if self.stopped:
            raise LabNotRunning(f"lab {project!r} is not running")
        return FakeLab(self.there)

    def leftovers(self):
        return ["container x-server-1"] if self.there is not None or self.stopped else []

    def up(self):
        if self.there is not None:
            raise exists_error(self.config.project, differences(self.config, self.there))
        self.events.append("up")
        return self

    def down(self):
        self.events.append("down")
        return ["container x-server-1"]

    def __exit__(self, _type, exc, _tb):
        self.down()
        if isinstance(exc, KeyboardInterrupt):
            raise signals.Interrupted("lab 'x' was removed; nothing of it is left") from exc


def test_a_fresh_lab_is_started_and_removed():
    lab = FakeLab(RUNNING)
    with this_or_running(lab) as used:
        assert used is lab
    assert lab.events == ["up", "down"]


def test_a_fresh_lab_interrupted_is_removed_and_says_so():
    lab = FakeLab(RUNNING)
    with pytest.raises(signals.Interrupted, match="was removed"), this_or_running(lab):
        raise KeyboardInterrupt
    assert lab.events == ["up", "down"]


def test_a_running_lab_is_used_and_never_removed():
    lab = FakeLab(LabConfig(project="x", subnet="auto"), there=RUNNING)
    with this_or_running(lab, asked=set()) as used:
        assert used.config == RUNNING
    assert "down" not in lab.events + used.events
    assert "already running on 192.168.131.0/24" in used.events[0]


def test_a_running_lab_interrupted_stays_running_and_says_so():
    lab = FakeLab(LabConfig(project="x", subnet="auto"), there=RUNNING)
    with pytest.raises(signals.Interrupted, match="'x' is still running, as before"), \
            this_or_running(lab, asked=set()):
        raise KeyboardInterrupt


def test_a_running_lab_with_other_settings_asked_for_is_refused():
    lab = FakeLab(LabConfig(project="x", subnet="192.168.40.0/24"), there=RUNNING)
    with pytest.raises(LabExists, match="other settings"), this_or_running(lab, {"subnet"}):
        pytest.fail("the block ran")


# -- benches side by side ---------------------------------------------------------------------------
def test_benches_started_together_get_their_own_lab_names_and_free_subnets():
    from socketlab.tools.bench import bench_config

    lifecycle, shaping = (bench_config(LabConfig(), kind) for kind in ("lifecycle", "shaping"))

    assert lifecycle.project != shaping.project
    assert str(os.getpid()) in lifecycle.project
    assert lifecycle.subnet == shaping.subnet == "auto"


# -- a long run says how far it got ---------------------------------------------------------------
class SlowClient:
    """A running client that ends after `rounds` waits of PROGRESS_EVERY_S, printing lines."""

    def __init__(self, rounds: int) -> None:
        self.rounds, self.stdout_lines = rounds, []

    def wait_for(self, _match, timeout):
        from socketlab.errors import LabTimeout

        if timeout < 1:  # a look without waiting
            raise LabTimeout("nothing new")
        if self.rounds == 0:
            return None
        self.rounds -= 1
        self.stdout_lines += ["sent n=11"] * 300
        raise LabTimeout("still running")


def test_a_long_run_reports_its_progress_until_the_client_ends():
    from socketlab.act.programs import _report_while_running

    said: list[str] = []
    _report_while_running(SlowClient(3), SlowClient(0), said.append, start=time.monotonic())

    assert [line.split(": ", 1)[1] for line in said] == [
        "client 300 events, server 0 events so far", "client 600 events, server 0 events so far",
        "client 900 events, server 0 events so far"]


def test_a_short_run_reports_nothing():
    from socketlab.act.programs import _report_while_running

    said: list[str] = []
    _report_while_running(SlowClient(0), None, said.append, start=time.monotonic())
    assert said == []


# -- shape: a change to a host is done whole, and said -----------------------------------------------
def test_shape_signalled_during_the_apply_finishes_it_and_says_so(lab):
    from tests.unit.conftest import cli

    real = lab.exec

    def exec_signalled(host, argv, *, timeout=None, instruments=False):
        os.kill(os.getpid(), signal.SIGTERM)  # the process alone, in the middle of the apply
        return real(host, argv, timeout=timeout)

    lab.exec = exec_signalled
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code, out, err = cli("shape", "client", "--delay", "100ms", "--loss", "5%")
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert code == 130
    assert [argv[:2] for _host, argv in lab.calls] == [["lab-shape", "apply"]]  # whole, once
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ")
    assert "client egress: delay 100ms loss 5% (backend engine)" in last
    assert "in place" in last or "done whole" in last


# -- refuse_unusable: what this_or_running would refuse, refused before anything is made ----------
ROUTER = RUNNING.with_(topology="/lab/topologies/router.yml")


def test_nothing_there_nothing_refused():
    refuse_unusable(FakeLab(ROUTER), {"topology"})


def test_a_running_lab_of_the_topology_asked_for_is_usable():
    refuse_unusable(FakeLab(ROUTER, there=ROUTER), {"topology"})
    with this_or_running(FakeLab(ROUTER, there=ROUTER), {"topology"}) as used:
        assert used.config == ROUTER  # and this_or_running does use it


def test_a_running_lab_of_another_topology_is_refused_naming_both():
    lab = FakeLab(ROUTER, there=RUNNING)
    with pytest.raises(LabExists, match=r"other settings \(topology docker-compose.yml, not "
                                        r"/lab/topologies/router.yml\)"):
        refuse_unusable(lab, {"topology"})
    assert lab.events == []  # nothing was started


def test_a_lab_that_is_there_but_not_running_is_refused():
    with pytest.raises(LabExists, match="already there but not running"):
        refuse_unusable(FakeLab(ROUTER, stopped=True), {"topology"})


# -- who runs as whom ---------------------------------------------------------------------------------
def test_programs_run_as_the_program_user_and_instruments_as_tools():
    from socketlab.act import instruments
    from socketlab.act.programs import Options, _as_run, client_argv

    program = client_argv(Options(), "192.168.33.5", 6666)
    tool = instruments.argv("udp_sink", 6666)
    user_own = ["python3", "-c", "print('hi')"]

    assert _as_run(program)[0] == "lab-program"
    assert _as_run(user_own)[0] == "lab-program"
    assert _as_run(tool) == tool
