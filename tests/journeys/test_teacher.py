"""A teacher's class: three students' runs, their answers checked, the class summary."""

from __future__ import annotations

import re

import pytest

from tests.journeys.conftest import leftovers

pytestmark = pytest.mark.integration
STUDENTS = ("s001", "s002", "s003")


def test_teacher_three_students_check_and_summary(journey, docker_client):
    journey.env["SOCKETLAB_COURSE_SEED"] = f"journey-course-{journey.project}"
    argv = ["exercise", "start", "handshake"]
    for student in STUDENTS:
        argv += ["--student", student]
    started = journey.run(*argv)
    said = started.stdout + started.stderr  # progress on stderr, the outcome on stdout
    for student in STUDENTS:
        folder = journey.cwd / "exercises" / f"handshake-{student}"
        assert f"{student}: exercises/handshake-{student} (" in said
        for name in ("client.pcap", "server.pcap", "worksheet.html", "worksheet.md", "answers.toml"):
            assert (folder / name).is_file(), f"{folder / name} missing"
    assert "3 worksheets made" in started.stdout
    assert not leftovers(docker_client, journey.project)  # its lab removed at the end

    hand_in = journey.cwd / "submissions"
    hand_in.mkdir()
    for student in STUDENTS:  # each student hands in the key: full marks
        key = journey.run("exercise", "key", "handshake", "--student", student).stdout
        (hand_in / f"{student}.toml").write_text(key)
        checked = journey.run("exercise", "check", "handshake", str(hand_in / f"{student}.toml"),
                              "--student", student)
        assert f"{student}, 8 of 8 right" in checked.stdout

    # s003 answers q1 with s001's number: wrong for s003, and it fits another student's capture
    s001_q1 = re.search(r"^q1 = (\d+)$", (hand_in / "s001.toml").read_text(), re.M).group(1)
    s003 = hand_in / "s003.toml"
    s003.write_text(re.sub(r"^q1 = \d+$", f"q1 = {s001_q1}", s003.read_text(), flags=re.M))
    wrong = journey.run("exercise", "check", "handshake", str(s003), "--student", "s003", code=1)
    assert "s003, 7 of 8 right" in wrong.stdout
    said = " ".join(wrong.stdout.replace("│", " ").split())  # the table's wrapped cells, as text
    assert f"you answered {s001_q1}" in said
    assert "frame 1 of client.pcap" in said

    summary = journey.run("exercise", "summary", str(hand_in)).stdout
    for student, score in (("s001", "8 of 8"), ("s002", "8 of 8"), ("s003", "7 of 8")):
        assert re.search(rf"{student}\s*│\s*{score}", summary), summary
    assert re.search(r"q1\s*│\s*2 of 3", summary), summary
