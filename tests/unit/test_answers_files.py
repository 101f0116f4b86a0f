"""Answers files that are not what they claim (issue 16): a FIFO, /dev/zero, a folder, a file
too big. `exercise check` and `exercise summary` read only regular files of bounded size:
anything else is refused (check) or skipped (summary) in one line, at once, never read.

The CLI runs as a subprocess with a time limit and a memory limit, so that on code that reads
such a file a test fails (a hang, a MemoryError) instead of hanging or eating the machine."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from socketlab.exercises import answers_text, load
from tests.unit.test_exercises import DATA, SEED

LIMIT_S = 20  # the refusals take well under a second; this only bounds a test of broken code


def socketlab(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    def bounded() -> None:  # in the child: at most 1 GiB of memory
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([sys.executable, "-m", "socketlab", *argv], cwd=cwd, text=True,
                          capture_output=True, timeout=LIMIT_S, preexec_fn=bounded,
                          env={**os.environ, "COLUMNS": "200"})


def odd_files(folder: Path) -> dict[str, Path]:
    """A FIFO (with no writer), /dev/zero (a symlink to it), a folder and a file too big,
    each named as an answers file."""
    os.mkfifo(folder / "fifo.toml")
    (folder / "zero.toml").symlink_to("/dev/zero")
    (folder / "folder.toml").mkdir()
    (folder / "big.toml").write_bytes(b"# " + b"x" * (300 * 1024) + b"\n")
    return {"fifo": folder / "fifo.toml", "zero": folder / "zero.toml",
            "folder": folder / "folder.toml", "big": folder / "big.toml"}


@pytest.mark.parametrize(("kind", "why"), [
    ("fifo", "is not a regular file (a FIFO)"), ("zero", "is not a regular file (a device)"),
    ("folder", "is not a regular file (a folder)"), ("big", "is 307,203 bytes: an answers file is"),
])
def test_check_refuses_an_answers_file_that_is_not_one_at_once(tmp_path, kind, why):
    path = odd_files(tmp_path)[kind]

    done = socketlab("exercise", "check", "handshake", str(path), "--student", "alice",
                     "--dir", str(DATA), "--seed", SEED, cwd=tmp_path)

    assert (done.returncode, done.stdout) == (64, "")
    error, hint = done.stderr.strip().splitlines()
    assert error.startswith(f"error: {path} {why}")
    assert hint == "hint: name the answers file itself"


def test_summary_skips_what_is_not_an_answers_file_and_marks_the_rest(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    odd = odd_files(subs)
    del odd["folder"]  # a folder under the summary's is a submitter's: looked into (empty here)
    alice = load(DATA, "handshake", "alice", seed=SEED)
    (subs / "alice.toml").write_text(answers_text(alice, {q: a.value for q, a in alice.key().items()}))

    done = socketlab("exercise", "summary", str(subs), "--dir", str(DATA), "--seed", SEED,
                     cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "alice" in done.stdout
    skipped = done.stderr.strip().splitlines()
    assert len(skipped) == len(odd)  # one line each
    for path in odd.values():
        assert sum(line.startswith(f"not marked: {path}: {path} ") for line in skipped) == 1
