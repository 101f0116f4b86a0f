"""A whole class prepared: which students still need a worksheet, and their runs, several labs
at once.

    todo, done = plan("exercises", "handshake", roster.ids, seed="spring-course")
    result = prepare(make_lab, "handshake", todo, seed=..., base_dir="exercises", jobs=2)

Resuming is planning again: a student whose folder is there, whole and sealed with this course
seed, is done (a worksheet is renamed into place only when whole, see sheet.start); a folder
sealed with another seed refuses the whole class before anything starts. `prepare` runs `jobs`
workers, each with a lab of its own (`make_lab(i)`: its own project and subnet), taking the
next student from one queue, so no student is prepared twice. `stop` (set on SIGINT or SIGTERM)
lets each worker finish the student it is on, then take down its lab: what is done is whole,
what is not is left for the next run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socketlab.errors import LabError
from socketlab.exercises.model import ExerciseError
from socketlab.exercises.sheet import MANIFEST, folder_for, load, start
from socketlab.lab import signals


@dataclass(frozen=True)
class Done:
    """One student's outcome: the worksheet folder, or why there is none."""

    student: str
    folder: Path | None
    seconds: float
    error: str = ""


@dataclass
class Prepared:
    done: list[Done] = field(default_factory=list)
    failed: list[Done] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    seconds: float = 0.0
    ends: list[float] = field(default_factory=list)  # when each worksheet was done (s from start)

    @property
    def per_minute(self) -> float:
        return 60 * len(self.done) / self.seconds if self.seconds > 0 else 0.0

    def steady_per_minute(self, jobs: int) -> float | None:
        """Students per minute once every lab is up: from the jobs-th worksheet done to the
        last (the labs' start and removal left out); None with too few to tell."""
        ends = sorted(self.ends)
        if len(ends) <= jobs or ends[-1] <= ends[jobs - 1]:
            return None
        return 60 * (len(ends) - jobs) / (ends[-1] - ends[jobs - 1])


def plan(base_dir: str | Path, name: str, students: Sequence[str], *, seed: str
         ) -> tuple[list[str], list[str]]:
    """(to prepare, already prepared): ExerciseError if a folder is there but is not this
    course's whole worksheet (another seed, edited, or not socketlab's)."""
    todo, done = [], []
    for student in students:
        folder = folder_for(base_dir, name, student)
        if not folder.exists():
            todo.append(student)
            continue
        if not (folder / MANIFEST).is_file():
            raise ExerciseError(f"{folder} is there but holds no worksheet",
                                hint="remove it (socketlab never makes a half folder), then "
                                     "run the same command again")
        try:
            load(base_dir, name, student, seed=seed)
        except ExerciseError as e:
            if "seal" in str(e):
                raise ExerciseError(f"{folder} was made with another course seed (or edited): "
                                    "this class cannot be resumed with this seed",
                                    hint="give the seed the class was started with, or another "
                                         "--dir") from None
            raise
        done.append(student)
    return todo, done


def stale(base_dir: str | Path, name: str, students: Sequence[str]) -> list[Path]:
    """Work folders (`.<name>-<student>-*`) a run killed outright (SIGKILL, a power cut) left
    beside the worksheets of students still to prepare: never a worksheet, never handed out."""
    base = Path(base_dir)
    return sorted(p for s in students for p in base.glob(f".{name}-{s}-*") if p.is_dir())


def prepare(make_lab: Callable[[int], Any], name: str, students: Sequence[str], *, seed: str,
            base_dir: str | Path, jobs: int = 1, pdf: bool = False, stop: threading.Event | None = None,
            on_done: Callable[[Done], None] = lambda _d: None) -> Prepared:
    """Prepare `students` with `jobs` labs at once; returns once every worker has taken its
    lab down. A lab that fails to start stops that worker (the others go on); a student whose
    run fails is reported in `failed` and the rest go on."""
    stop = stop or threading.Event()
    pending: queue.Queue[str] = queue.Queue()
    for s in students:
        pending.put(s)
    result, lock = Prepared(), threading.Lock()
    errors: list[Exception] = []
    began = time.monotonic()

    def worker(index: int, ended: threading.Event) -> None:
        try:
            with make_lab(index) as lab:
                while not stop.is_set():
                    try:
                        student = pending.get_nowait()
                    except queue.Empty:
                        return
                    outcome = _one(lab, name, student, seed, base_dir, pdf)
                    with lock:
                        (result.failed if outcome.error else result.done).append(outcome)
                        if not outcome.error:
                            result.ends.append(time.monotonic() - began)
                    on_done(outcome)
        except (LabError, OSError) as e:  # the lab itself: this worker stops
            errors.append(e)
        except KeyboardInterrupt:  # the lab's own teardown was interrupted: already said
            stop.set()
        except Exception as e:  # a fault of socketlab's own: every worker stops, it is raised
            stop.set()
            errors.append(e)
        finally:
            ended.set()

    ends: list[threading.Event] = []  # one per worker started
    try:
        for i in range(1, min(jobs, max(len(students), 1)) + 1):
            with signals.deferred():  # started and counted, or neither
                ends.append(threading.Event())
                threading.Thread(target=worker, args=(i, ends[-1]), name=f"class-{i}").start()
        # Event.wait, not Thread.join: a join interrupted by a signal marks a running thread
        # as ended in Python 3.11 (bpo-45274's fix), and a second join would not wait for it
        for ended in ends:
            ended.wait()
    except KeyboardInterrupt:  # SIGINT or SIGTERM (main thread): each worker ends its student
        stop.set()
        with signals.deferred(raise_after=False):  # a second signal waits for the same end
            for ended in ends:
                ended.wait()
        left = len(students) - len(result.done)
        raise signals.Interrupted(
            f"{len(result.done)} worksheets made and whole, {left} not: each lab was taken "
            "down; run the same command again to prepare the rest") from None
    result.seconds = time.monotonic() - began
    while not pending.empty():
        result.not_started.append(pending.get_nowait())
    unexpected = [e for e in errors if not isinstance(e, (LabError, OSError))]
    if unexpected or (errors and not result.done and not result.failed):
        raise (unexpected or errors)[0]
    result.failed += [Done("(lab)", None, 0.0, str(e)) for e in errors]
    return result


def _one(lab: Any, name: str, student: str, seed: str, base_dir: str | Path, pdf: bool
         ) -> Done:
    t0 = time.monotonic()
    try:
        ws = start(lab, name, student, seed=seed, base_dir=base_dir, pdf=pdf)
    except LabError as e:
        return Done(student, None, time.monotonic() - t0, str(e))
    return Done(student, ws.folder, time.monotonic() - t0)
