"""`exercise start`: worksheets for students given by --student or a roster file, prepared
with --jobs labs at once, resumable (students already prepared with this seed are skipped)."""

from __future__ import annotations

import argparse
import shutil
import threading
from typing import Any

from rich.console import Console

from socketlab.cli import common


def options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("name", metavar="NAME")
    cmd.add_argument("--student", action="append", default=[], metavar="ID",
                     help="the student's id (repeat for several; each gets their own run)")
    cmd.add_argument("--roster", metavar="FILE",
                     help="a CSV of the class as an LMS exports it (an id column such as "
                          "\"ID number\", \"Username\" or \"Email address\", and names)")
    cmd.add_argument("--jobs", type=common.positive_int, default=1, metavar="N",
                     help="labs at once, each on its own project and free subnet (default 1)")
    cmd.add_argument("--pdf", action="store_true",
                     help="also print each worksheet to PDF (needs chromium)")
    common.topology_options(cmd)


def _students(args: argparse.Namespace, err: Console) -> list[str]:
    from socketlab.exercises.model import ExerciseError, check_student

    students: list[str] = []
    if args.roster:
        from socketlab.exercises.roster import read_roster

        roster = read_roster(args.roster)
        err.print(f"{args.roster}: {len(roster.students)} students; {roster.described()}",
                  markup=False, soft_wrap=True)
        students += roster.ids
    students += args.student
    if not students:
        raise ExerciseError("no students: give --roster FILE or --student ID",
                            hint="e.g. --roster participants.csv, or --student alice --student bob")
    students = [check_student(s) for s in students]
    twice = sorted({s for s in students if students.count(s) > 1})
    if twice:
        raise ExerciseError(f"student id {', '.join(twice[:5])} is given twice",
                            hint="give each --student once (and not again in the roster)")
    return students


def start(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.cli.exercise import seed_of
    from socketlab.cli.lab import ensure_image
    from socketlab.exercises import classroom, sheet
    from socketlab.exercises.catalogue import get
    from socketlab.exercises.model import ExerciseError
    from socketlab.exercises.render import find_browser

    get(args.name)  # everything refused before a lab starts
    students = _students(args, err)
    if args.pdf and find_browser() is None:
        raise ExerciseError("--pdf needs chromium (or google-chrome) on PATH",
                            hint="apt-get install chromium, or leave out --pdf")
    fixed = [o for o, k in (("--subnet", "subnet"), ("--server-ip", "server_ip"),
                            ("--client-ip", "client_ip")) if getattr(args, k, None)]
    if args.jobs > 1 and fixed:
        raise ExerciseError(f"{', '.join(fixed)} with --jobs {args.jobs}: each lab takes a free "
                            "subnet of its own", hint=f"leave out {', '.join(fixed)}, or use "
                                                      "--jobs 1")
    if args.jobs > 1 and common.engine_of(args) != "compose":
        raise ExerciseError("--jobs works with the compose engine only",
                            hint="leave out --jobs (or --engine swarm)")
    seed = seed_of(args)
    if seed == sheet.DEFAULT_SEED:
        err.print("[yellow]note:[/] no course seed (--seed or SOCKETLAB_COURSE_SEED): anyone "
                  "with socketlab can derive these runs and their key", markup=True)
    todo, done = classroom.plan(args.dir, args.name, students, seed=seed)
    if done:
        shown = ", ".join(done[:8]) + (", ..." if len(done) > 8 else "")
        err.print(f"{len(done)} already prepared with this course seed, skipped: {shown}",
                  markup=False, soft_wrap=True)
    left = classroom.stale(args.dir, args.name, todo)
    for folder in left:
        shutil.rmtree(folder)
    if left:
        err.print(f"removed {len(left)} half-made folder{'s' if len(left) > 1 else ''} a killed "
                  f"run left ({', '.join(p.name for p in left[:3])}{', ...' if len(left) > 3 else ''})",
                  markup=False, soft_wrap=True)
    if args.pdf:
        _pdfs_for(args, done, seed, err)
    if not todo:
        out.print(f"every student's worksheet is in {args.dir}: nothing to do", markup=False,
                  soft_wrap=True)  # a path is never broken across lines
        return common.ExitCode.OK
    first = common.lab_for(args, err)
    ensure_image(first, err)
    result = _run(args, first, todo, seed, err)
    return _report(args, result, len(done), out, err)


def _pdfs_for(args: argparse.Namespace, done: list[str], seed: str, err: Console) -> None:
    """Students prepared before without --pdf get their PDF now (nothing else is redone)."""
    from socketlab.exercises.render import write_pdf
    from socketlab.exercises.sheet import load

    for student in done:
        ws = load(args.dir, args.name, student, seed=seed)
        if not (ws.folder / "worksheet.pdf").is_file():
            err.print(f"{student}: {write_pdf(ws)} (printed now)", markup=False, soft_wrap=True)


def _lab_maker(args: argparse.Namespace, first: Any):
    from socketlab.lab.config import AUTO
    from socketlab.lab.lab import Lab

    def quiet(_message: str) -> None:
        pass

    def make(index: int) -> Any:
        if args.jobs == 1:
            return first
        cfg = first.config.with_(project=f"{first.config.project}-{index}", subnet=AUTO)
        return Lab(cfg, progress=quiet)

    if args.jobs == 1:
        first.progress = quiet  # the bar says how far it is
    return make


def _run(args: argparse.Namespace, first: Any, todo: list[str], seed: str, err: Console):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from socketlab.exercises import classroom

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("left about"), TimeRemainingColumn(),
                   console=err.resolved() if hasattr(err, "resolved") else err,
                   transient=False)
    task = bar.add_task(f"{args.name}, --jobs {args.jobs}", total=len(todo))

    def done(d: classroom.Done) -> None:
        bar.advance(task)
        line = (f"{d.student}: failed: {d.error}" if d.error
                else f"{d.student}: {d.folder} ({d.seconds:.1f} s)")
        bar.console.print(line, markup=False, soft_wrap=True)

    with bar:
        return classroom.prepare(_lab_maker(args, first), args.name, todo, seed=seed,
                                 base_dir=args.dir, jobs=args.jobs, pdf=args.pdf,
                                 stop=threading.Event(), on_done=done)


def _report(args: argparse.Namespace, result: Any, skipped: int, out: Console,
            err: Console) -> int:
    made = len(result.done)
    out.print(f"{made} worksheet{'s' if made != 1 else ''} made in {result.seconds:.0f} s "
              f"with --jobs {args.jobs} "
              f"({result.per_minute:.1f} students per minute), {skipped} already there, "
              f"in {args.dir}", markup=False, soft_wrap=True)
    for d in result.failed:
        err.print(f"not made: {d.student}: {d.error}", markup=False, soft_wrap=True)
    if result.failed or result.not_started:
        err.print("run the same command again: students already prepared are skipped",
                  markup=False)
        return common.ExitCode.FAILED
    return common.ExitCode.OK
