"""A class prepared from a roster with --jobs 2, its main process signalled (SIGINT or SIGTERM)
at a random moment, then the same command run again: every student prepared once, none
missing, no lab, container or half folder left behind, and the PDF holds every event."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from socketlab.exercises import load
from socketlab.lab.config import LabConfig
from socketlab.lab.lab import Lab
from tests.conftest import project_name

pytestmark = pytest.mark.integration
SEED = int(os.environ.get("SOCKETLAB_KILL_SEED", str(int(time.time()))))
COURSE = "class-course"
STUDENTS = [f"s{n:03}" for n in range(1, 5)]
WINDOW = (0.5, 16.0)  # from the command's imports to about its usual end (s)


def socketlab(argv: list[str], delay: float | None = None,
              signum: int = signal.SIGINT) -> tuple[int, str, str]:
    """Run socketlab (signalling its main process alone after `delay` s): code, out, err."""
    proc = subprocess.Popen([sys.executable, "-m", "socketlab", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=delay if delay is not None else 300)
    except subprocess.TimeoutExpired:
        if delay is None:
            proc.kill()
            raise
        os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def made(err: str) -> list[str]:
    """The students whose worksheet a run says it made ("s001: <dir>/handshake-s001 (2.9 s)")."""
    return re.findall(r"^(s\d{3}): \S*handshake-s\d{3} \(", err, flags=re.M)


def test_a_class_interrupted_at_a_random_moment_resumes_each_student_once(
        docker_client, lab_image, tmp_path: Path):
    rng = random.Random(SEED)
    delay, signum = rng.uniform(*WINDOW), rng.choice([signal.SIGINT, signal.SIGTERM])
    seen = f"seed {SEED}: {signal.Signals(signum).name} after {delay:.2f} s"
    roster = tmp_path / "participants.csv"
    roster.write_bytes("\ufeffFirst name;Surname;ID number\n".encode()
                       + "".join(f"N{s};S{s};{s}\n" for s in STUDENTS).encode())
    course, project = tmp_path / "course", project_name("-class")
    argv = ["-p", project, "exercise", "start", "handshake", "--roster", str(roster),
            "--jobs", "2", "--dir", str(course), "--seed", COURSE]
    labs = [Lab(LabConfig(project=f"{project}-{i}", subnet="auto"), client=docker_client)
            for i in (1, 2)]
    try:
        code, out, err = socketlab(argv, delay, signum)
        assert "Traceback" not in err, f"{seen}: {err}"
        assert code in (0, 130), f"{seen}: exit {code}: {err}"
        if code == 130:
            assert err.strip().splitlines()[-1].startswith("interrupted: "), f"{seen}: {err}"
        assert [lab.leftovers() for lab in labs] == [[], []], f"{seen}: {err}"
        first = made(err)
        there = sorted(p.name.removeprefix("handshake-") for p in course.glob("*")) \
            if course.exists() else []
        assert there == sorted(first), f"{seen}: folders {there}, said made {first}"
        code, out, err = socketlab(argv)
        assert code == 0, f"{seen}: second run: {err}"
        second = made(err)
        assert not set(first) & set(second), f"{seen}: prepared twice"
        assert sorted(first + second) == STUDENTS, seen
        if first:
            assert f"{len(first)} already prepared with this course seed, skipped" in err, seen
        for s in STUDENTS:
            assert load(course, "handshake", s, seed=COURSE).key()  # whole and sealed
        assert [lab.leftovers() for lab in labs] == [[], []], seen
    finally:
        for lab in labs:
            lab.down()
