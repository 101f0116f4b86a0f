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
    """Run one step; a background start (setsid -f) gets no pipes, so it is not waited for.
    `lab-shape wait-pidfile|stop-pidfile PATH` runs here, in this process (the same code the
    command runs: no second Python start-up, which costs a second on a slow host)."""
    if argv[:1] == ["lab-shape"] and len(argv) == 3 and argv[1] in ("wait-pidfile", "stop-pidfile"):
        return _pidfile_step(argv)
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


def _pidfile_step(argv: list[str]) -> StepResult:
    from .pidfiles import stop_pidfile, wait_pidfile

    if argv[1] == "stop-pidfile":
        stop_pidfile(argv[2])
        return StepResult(argv, 0, "")
    if wait_pidfile(argv[2]):
        return StepResult(argv, 0, "")
    return StepResult(argv, 1, f"lab-shape: no live process in {argv[2]} after 5 s (see its log)")
