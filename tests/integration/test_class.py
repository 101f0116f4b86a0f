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
        planted = [s for s in STUDENTS if s not in first]  # as a SIGKILLed run leaves them
        for s in planted:
            (course / f".handshake-{s}-killed").mkdir(parents=True)
        code, out, err = socketlab(argv)
        assert code == 0, f"{seen}: second run: {err}"
        second = made(err)
        assert not set(first) & set(second), f"{seen}: prepared twice"
        assert sorted(first + second) == STUDENTS, seen
        if first:
            assert f"{len(first)} already prepared with this course seed, skipped" in err, seen
        if planted:
            assert f"removed {len(planted)} half-made folder" in err, seen
        assert not list(course.glob(".*")), seen
        for s in STUDENTS:
            assert load(course, "handshake", s, seed=COURSE).key()  # whole and sealed
        assert [lab.leftovers() for lab in labs] == [[], []], seen
    finally:
        for lab in labs:
            lab.down()


def test_the_pdf_holds_every_event_a_question_needs(tmp_path: Path):
    """The loss worksheet has more events than the HTML folds; its PDF (headless Chromium)
    still holds each of them, read back as text (pypdf), and none of the held-back sizes."""
    import shutil

    from pypdf import PdfReader

    from socketlab.exercises.render import find_browser, to_html, write_pdf

    if find_browser() is None and os.environ.get("CI") != "true":
        pytest.skip("no chromium on PATH")
    data = Path(__file__).parent.parent / "data" / "exercises"
    course = Path(shutil.copytree(data, tmp_path / "course"))
    ws = load(course, "loss", "alice", seed="test-course")
    (ws.folder / "worksheet.html").write_text(to_html(ws), encoding="utf-8")  # today's page
    text = "".join(page.extract_text() for page in PdfReader(write_pdf(ws)).pages)
    flat = re.sub(r"\s+", "", text)
    events = [(h, e) for h, evs in ws.events.items() for e in evs]
    assert len(events) > 30  # more than the HTML folds
    missing = [f"{h} {e['event']} {e['t']:.6f}" for h, e in events
               if f"{e['t']:.6f}" not in flat]
    assert not missing, f"{len(missing)} events not in the PDF: {missing[:5]}"
    assert len(re.findall(r"recvfrom", flat)) >= len(ws.material().all_events("server",
                                                                              "recvfrom"))
    assert not re.search(r"recvfromn=", flat)  # the sizes the server read are held back
