"""No message lies (issue 16): text is printed as text, what is said was observed.

In-process CLI runs with no reachable engine (as in test_cli.py), and the pure pieces that
word a message. Square brackets are the test's favourite input: rich reads `[x]` as markup
and would drop it from a message quoting a name, compose or the user.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from socketlab.cli import common
from socketlab.cli.app import main
from tests.unit.conftest import no_engine_here

BRACKETS = r"[a-zA-Z0-9\._\-]"  # compose's own words for a bad project name


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch):
    no_engine_here(monkeypatch)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", ["bad[x]", f"only{BRACKETS}"])
def test_an_error_quoting_brackets_keeps_them(name):
    code, out, err = cli("-p", name, "status")

    assert (code, out) == (64, "")
    assert err.splitlines()[0] == f"error: project name {name!r} is not valid"


def test_a_progress_line_keeps_its_brackets():
    from rich.console import Console

    err = io.StringIO()
    common.progress(Console(file=err, markup=False, width=200))(f"compose said: only {BRACKETS}")

    assert err.getvalue() == f"• compose said: only {BRACKETS}\n"


def test_exercise_check_names_the_answers_table_in_brackets(tmp_path):
    answers = tmp_path / "answers.toml"
    answers.write_text('exercise = "window"\nstudent = "alice"\nanswers = 1\n')

    code, out, err = cli("exercise", "check", "window", str(answers), "--student", "alice")

    assert (code, out) == (64, "")
    assert err.splitlines()[0] == (f"error: {answers}: `exercise` and `student` must be text "
                                   "and [answers] a table")


@pytest.mark.parametrize(("output", "exit_code", "blamed"), [
    ("python3: can't open file '/work/x.py': [Errno 2] No such file or directory", 2, "ended"),
    ('error op=bind errno=EADDRINUSE msg="Address already in use"', 1, "holds port"),
    ("OSError: [Errno 98] Address already in use", 1, "holds port"),
    ("error: port 7000/tcp not open after 10 s", 0, "must open port"),
])
def test_a_server_that_did_not_start_is_blamed_for_what_it_said(output, exit_code, blamed):
    from socketlab.act.programs import not_started_hint

    hint = not_started_hint("server", output, exit_code, 7000, "tcp")

    assert blamed in hint
    assert ("holds port" in hint) == (blamed == "holds port")


def test_the_experiments_help_names_every_experiment_and_the_slow_ones():
    from socketlab.experiments.registry import catalogue

    code, out, _err = cli("experiments", "--help")
    said = " ".join(out.split())

    assert code == 0
    assert f"claims C1-C10, P1 and S1-S3 ({len(catalogue())}; S3 takes minutes)" in said


def test_the_catalogue_in_words_groups_consecutive_ids():
    from dataclasses import replace

    from socketlab.experiments.registry import catalogue, described

    one = next(iter(catalogue().values()))
    made = {i: replace(one, id=i, slow=i in ("S3", "X1")) for i in ("C1", "C2", "C4", "S3", "X1")}

    assert described(made) == "C1-C2, C4, S3 and X1 (5; S3, X1 take minutes)"


ROOT = Path(__file__).resolve().parents[2]
# A python3 that, as CPython does when a Ctrl-C lands while it starts (in its site import),
# exits 1 on SIGINT; it says when it is running so the signal comes during the probe.
SLOW_PYTHON = f"""#!{sys.executable}
import pathlib, sys, time
if sys.argv[1:] == ["-V"]:
    sys.exit(print("Python 3.11.7"))
pathlib.Path(sys.argv[0] + ".started").touch()
try:
    time.sleep(30)
except KeyboardInterrupt:
    sys.exit(1)
"""


@pytest.mark.parametrize("script", ["lab", "test"])
def test_ctrl_c_during_the_scripts_python_probe_is_an_interruption(tmp_path, script):
    python = tmp_path / "python3"
    python.write_text(SLOW_PYTHON)
    python.chmod(0o755)
    proc = subprocess.Popen([str(ROOT / "scripts" / script), "status"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "PYTHON": str(python),
                                 "SOCKETLAB_VENV": str(tmp_path / "venv")})
    try:
        deadline = time.monotonic() + 20
        while not Path(f"{python}.started").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)  # as a Ctrl-C at the terminal: the whole group
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (proc.returncode, out, err) == (130, "", "interrupted\n")
    assert not (tmp_path / "venv").exists()
