"""Running a plan's steps: the only part of labshape that changes the system."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StepResult:
    argv: list[str]
    code: int
    output: str


Runner = Callable[[list[str]], StepResult]


def run_step(argv: list[str]) -> StepResult:
    """Run one step; a background start (setsid -f) gets no pipes, so it is not waited for."""
    background = argv[:2] == ["setsid", "-f"]
    pipe = subprocess.DEVNULL if background else subprocess.PIPE
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe,
                              text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return StepResult(argv, 127, str(e))
    return StepResult(argv, done.returncode, ((done.stdout or "") + (done.stderr or "")).strip())


def run_plan(plan: list[list[str]], run: Runner = run_step) -> StepResult | None:
    """Run the steps in order; the first that fails (None if all succeed)."""
    for argv in plan:
        result = run(argv)
        if result.code != 0:
            return result
    return None
