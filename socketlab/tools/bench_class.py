"""`socketlab bench class`: how many students' worksheets a minute `exercise start` makes, with
--jobs 1 and with more labs at once. Part of the benchmarks (socketlab.tools.bench): the same
Figure and table.

Each figure prepares the same count of students (exercise handshake, the shortest) into a
folder of its own that is removed after, each lab with its own project and a free subnet: the
time of `prepare` whole, its labs' starts and removals included (what a teacher waits for).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from socketlab.exercises.classroom import prepare
from socketlab.lab.config import LabConfig
from socketlab.lab.lab import Lab
from socketlab.tools.bench import Figure, bench_config

JOBS = (1, 2, 3)
STUDENTS = 10
CLASS = 120
EXERCISE = "handshake"


def class_figures(config: LabConfig, *, jobs: Sequence[int] = JOBS, students: int = STUDENTS,
                  progress: Callable[[str], None] = lambda _m: None) -> list[Figure]:
    rates: dict[int, float] = {}
    forecast: dict[int, float] = {}  # --jobs -> minutes for a class of CLASS
    figures = []
    for n in jobs:
        base = Path(tempfile.mkdtemp(prefix="socketlab-bench-class-"))
        cfg = bench_config(config, f"class-j{n}")
        try:
            progress(f"{students} students of {EXERCISE} with --jobs {n}")
            done = prepare(_labs(cfg), EXERCISE, [f"b{i:03}" for i in range(1, students + 1)],
                           seed="bench", base_dir=base, jobs=n)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        if done.failed or len(done.done) != students:
            why = "; ".join(d.error for d in done.failed)[:200]
            figures.append(Figure(f"--jobs {n}: students per minute", 0.0, "", note=f"failed: {why}"))
            continue
        steady = done.steady_per_minute(n)
        rates[n] = steady or done.per_minute
        figures.append(Figure(f"--jobs {n}: students per minute", done.per_minute, "/min",
                              note=f"one run: {students} students in {done.seconds:.1f} s, labs' "
                                   f"start and removal included; {os.cpu_count()} cores"))
        if steady:
            first = sorted(done.ends)[n - 1]
            forecast[n] = (first + (CLASS - n) * 60 / steady) / 60
            figures.append(Figure(f"--jobs {n}: once the labs are up", steady, "/min",
                                  note=f"from worksheet {n} (at {first:.1f} s) to the last"))
    if forecast:
        best = min(forecast, key=lambda k: forecast[k])
        figures.append(Figure(f"best: --jobs {best}, {CLASS} students in", forecast[best], "min",
                              note=f"the labs' start, then {rates[best]:.1f} students per "
                                   f"minute ({rates[best] / rates.get(1, rates[best]):.2f}x "
                                   "--jobs 1)"))
    return figures


def _labs(cfg: LabConfig) -> Callable[[int], Lab]:
    """Worker i's lab: the bench's project with -i, a free subnet of its own."""
    return lambda i: Lab(cfg.with_(project=f"{cfg.project}-{i}", subnet=cfg.subnet))
