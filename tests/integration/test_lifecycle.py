"""The lifecycle for real: a lab of the same name is never touched by a command that cannot
start one, and SIGINT/SIGTERM sent to the main process alone, at a random moment of `up`,
`demo` or `down`, leaves nothing behind and a last line that is true."""

from __future__ import annotations

import io
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from socketlab.cli.app import main
from socketlab.lab.lab import Lab
from tests.conftest import lab_config, project_name

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_settings_from_the_shell(monkeypatch):
    """The commands here ask only what each test gives them: a SOCKETLAB_SUBNET exported in
    the caller's shell would otherwise be asked of the test's lab, and refused."""
    for name in ("SOCKETLAB_SUBNET", "SOCKETLAB_SERVER_IP", "SOCKETLAB_CLIENT_IP", "SOCKETLAB_PORT"):
        monkeypatch.delenv(name, raising=False)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def hosts_of(lab: Lab) -> dict[str, tuple[str, str]]:
    """Each host's container id and state, as the engine has them now."""
    return {h: (c.id, c.state) for h, c in lab.engine.containers().items()}


# -- never destroy ------------------------------------------------------------------------------
def test_up_on_a_running_lab_with_another_subnet_refuses_and_leaves_it(lab):
    before = hosts_of(lab)

    code, out, err = cli("-p", lab.config.project, "up", "--subnet", "192.168.39.0/24")

    assert (code, out) == (2, "")
    assert err.startswith(f"error: lab {lab.config.project!r} is already running with other "
                          f"settings (subnet {lab.config.subnet}, not 192.168.39.0/24")
    assert "Traceback" not in err
    assert hosts_of(lab) == before
    assert all(state == "running" for _id, state in before.values())


def test_two_ups_of_one_name_at_once_one_wins_the_other_refuses_naming_the_difference(
        docker_client, lab_image):
    from socketlab.lab.subnets import claim_subnets

    config = lab_config("-twice")
    lab = Lab(config, client=docker_client)
    try:
        # Two free subnets, held while both start (a lab on subnet auto waits for them; these
        # two, on subnets given, take no claim of their own).
        with claim_subnets(lambda: lab.engine.subnets_in_use().values(), 2) as (first, second):
            ups = [subprocess.Popen([sys.executable, "-m", "socketlab", "-p", config.project,
                                     "up", "--subnet", subnet], text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for subnet in (first, second)]
            done = [(p.wait(120), *p.communicate()) for p in ups]
        codes = sorted(code for code, _out, _err in done)
        assert codes == [0, 2], done
        won = next(i for i, (code, _o, _e) in enumerate(done) if code == 0)
        ran, asked = (first, second) if won == 0 else (second, first)
        _code, _out, err = done[1 - won]
        assert f"error: lab {config.project!r} is already running with other settings " \
               f"(subnet {ran}, not {asked}" in err, done
        assert "Traceback" not in err
        assert len([x for x in lab.leftovers() if x.startswith("container")]) == 2  # untouched
        assert Lab.running(config.project, client=docker_client).config.subnet == ran
    finally:
        lab.down()


def test_up_on_a_running_lab_asking_nothing_else_changes_nothing(lab):
    before = hosts_of(lab)

    code, out, err = cli("-p", lab.config.project, "up")

    assert code == 0, err
    assert "was already running with these settings: nothing changed" in out
    assert hosts_of(lab) == before


def test_demo_on_a_running_lab_runs_in_it_and_leaves_it_running(lab):
    before = hosts_of(lab)

    code, out, err = cli("-p", lab.config.project, "demo")

    assert code == 0, err
    assert f"lab {lab.config.project!r} is already running on {lab.config.subnet}" in err
    assert 'recv(3) -> "hel"' in out
    assert "removing lab" not in err
    assert hosts_of(lab) == before


def test_experiments_run_in_a_running_lab_and_leave_it_running(lab, tmp_path):
    """(main's experiments take the running lab when it runs their topology: never removed)"""
    before = hosts_of(lab)

    code, out, err = cli("-p", lab.config.project, "experiment", "C1", "--out", str(tmp_path))

    assert code == 0, out + err
    assert "C1" in out
    assert hosts_of(lab) == before


def test_down_of_a_lab_that_never_existed_says_so(docker_client):
    code, out, err = cli("-p", project_name("-never"), "down")

    assert (code, err) == (0, "")
    assert out.strip() == f"there was no lab {project_name('-never')!r}: nothing to remove"


def test_status_of_an_absent_lab_names_no_subnet(docker_client):
    code, out, _err = cli("-p", project_name("-absent"), "status")

    assert code == 1
    assert out.strip() == f"lab {project_name('-absent')!r} is not running: it has no hosts and no network"


# -- never leave anything, never say so falsely --------------------------------------------------
KILLS = int(os.environ.get("SOCKETLAB_KILLS", "3"))  # per command; the full sweep sets more
SEED = int(os.environ.get("SOCKETLAB_KILL_SEED", str(int(time.time()))))
# When to signal: from before the command's imports are done to past its usual end (s).
WINDOWS = {"up": (0.2, 6.0), "demo": (0.2, 10.0), "down": (0.2, 2.5)}


def signalled(argv: list[str], delay: float, signum: int, *,
              group: bool = False) -> tuple[int, str, str]:
    """Run socketlab, signal its main process alone (as `kill PID` does) after `delay` s, or
    its whole process group (group: as a Ctrl-C at the terminal does); its code, out, err."""
    proc = subprocess.Popen([sys.executable, "-m", "socketlab", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=group)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signum)  # socketlab and every child it has in its group
        else:
            os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


# What an interrupted probe once said (issue 16): an interruption is never a missing tool.
MISSING_TOOL = re.compile(r"needs Python|no Docker Compose found|install (the|a newer)")


def last_line(code: int, out: str, err: str) -> str:
    lines = (err if code != 0 else out).strip().splitlines()
    return lines[-1] if lines else ""


@pytest.mark.parametrize("command", ["up", "demo", "down"])
def test_a_signal_at_a_random_moment_leaves_nothing_and_no_false_word(command, docker_client,
                                                                     lab_image):
    rng = random.Random(f"{SEED}-{command}")
    for n in range(KILLS):
        config = lab_config(f"-kill-{command}-{n}")
        lab = Lab(config, client=docker_client)
        delay, signum = rng.uniform(*WINDOWS[command]), rng.choice([signal.SIGINT, signal.SIGTERM])
        seen = f"seed {SEED}, {command} #{n}, {signal.Signals(signum).name} after {delay:.2f} s"
        try:
            if command == "down":
                lab.up()
            before = sorted(lab.leftovers())
            argv = ["-p", config.project, command] + (["--subnet", "auto"] * (command != "down"))
            code, out, err = signalled(argv, delay, signum)
            line = last_line(code, out, err)
            assert "Traceback" not in err, f"{seen}: {err}"
            assert not MISSING_TOOL.search(err), f"{seen}: {err}"
            assert_true_to_the_end(command, config.project, code, line,
                                   (before, sorted(lab.leftovers())), seen)
        finally:
            lab.down()


EARLY = (0.2, 0.5)  # s: while the command starts: its imports, the engine's and compose's probes


@pytest.mark.parametrize("command", ["up", "status"])
def test_ctrl_c_early_never_names_a_missing_tool(command, docker_client, lab_image):
    """SIGINT to the whole group, as a Ctrl-C at the terminal sends it, early in a command:
    compose's probe gets it too, and its end must be said as an interruption."""
    rng = random.Random(f"{SEED}-early-{command}")
    for n in range(KILLS):
        config = lab_config(f"-early-{command}-{n}")
        lab = Lab(config, client=docker_client)
        delay = rng.uniform(*EARLY)
        seen = f"seed {SEED}, {command} #{n}, SIGINT to the group after {delay:.2f} s"
        try:
            argv = ["-p", config.project, command] + ["--subnet", "auto"] * (command == "up")
            code, out, err = signalled(argv, delay, signal.SIGINT, group=True)
            line = last_line(code, out, err)
            assert not MISSING_TOOL.search(out + err), f"{seen}: exit {code}: {err}"
            if command == "up":
                assert_true_to_the_end("up", config.project, code, line,
                                       ([], sorted(lab.leftovers())), seen)
        finally:
            lab.down()


def assert_true_to_the_end(command: str, project: str, code: int, line: str,
                           states: tuple[list[str], list[str]], seen: str) -> None:
    """The command finished or rolled back, and its last line says which, truly.
    states: what of the lab was there before the command, and after it."""
    before, left = states
    if line == "interrupted":  # stopped before it changed anything, and says no more
        assert (code, left) == (130, before), f"{seen}: exit {code}, {left} left of {before}"
        return
    if code == 0 and command == "up":  # it finished: the lab runs, and says how to use it
        assert line.startswith("the lab stays up"), f"{seen}: {line!r}"
        assert len([x for x in left if x.startswith("container")]) == 2, f"{seen}: {left}"
        return
    assert left == [], f"{seen}: {left} left behind; the last line was {line!r}"
    if code == 0:  # demo ran to its end, or down removed the lab
        assert command in ("demo", "down"), f"{seen}: {line!r}"
        return
    assert code == 130, f"{seen}: exit {code}, {line!r}"
    assert line in (f"interrupted: lab {project!r} was not started; nothing of it is left",
                    f"interrupted: lab {project!r} was removed; nothing of it is left"), \
        f"{seen}: {line!r}"


SHAPE = ["shape", "client", "--delay", "50ms", "--loss", "1%"]
SHAPE_WINDOW = (0.2, 3.0)


def shaping_state(lab: Lab, host: str) -> str:
    """"none", "applied" (qdisc, rules and lab-nfq all there) or "partial: ..." (what is)."""
    qdisc = lab.exec(host, ["tc", "qdisc", "show", "dev", "eth0"]).stdout
    rules = lab.exec(host, ["iptables", "-t", "mangle", "-S"]).stdout
    nfq = lab.exec(host, ["pgrep", "-f", "lab-nfq"]).stdout.strip()
    there = {"qdisc": "noqueue" not in qdisc.split("\n", 1)[0], "rules": "SOCKETLAB" in rules,
             "lab-nfq": bool(nfq)}
    if not any(there.values()):
        return "none"
    return "applied" if all(there.values()) else f"partial: {there}"


def test_shape_signalled_at_a_random_moment_applies_whole_or_not_at_all(lab):
    rng = random.Random(f"{SEED}-shape")
    project = lab.config.project
    for n in range(KILLS):
        delay, signum = rng.uniform(*SHAPE_WINDOW), rng.choice([signal.SIGINT, signal.SIGTERM])
        seen = f"seed {SEED}, shape #{n}, {signal.Signals(signum).name} after {delay:.2f} s"
        try:
            code, out, err = signalled(["-p", project, *SHAPE], delay, signum)
            line, state = last_line(code, out, err), shaping_state(lab, "client")
            assert "Traceback" not in err, f"{seen}: {err}"
            assert not state.startswith("partial"), f"{seen}: {state}; last line {line!r}"
            if code == 0 or "in place" in line or "done whole" in line:  # finished, says so
                assert state == "applied", f"{seen}: {state}; last line {line!r}"
            else:  # it did not: nothing of it may be left, whatever the line says
                assert code == 130, f"{seen}: exit {code}, {line!r}"
                assert state == "none", f"{seen}: {state}; last line {line!r}"
        finally:
            lab.exec("client", ["lab-shape", "clear"], timeout=30)
