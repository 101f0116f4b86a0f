"""Packet-capture exercises: `exercise list | start | check | key | summary`.

    socketlab exercise start handshake --student alice --student bob   # a fresh lab, 2 worksheets
    socketlab exercise check handshake alice.toml --student alice       # exit 0 only: full marks
    socketlab exercise key handshake --student alice > key.toml          # the format check reads
    socketlab exercise summary submissions/                              # per question, per class

The course seed (--seed, or SOCKETLAB_COURSE_SEED) makes each student's run their own and seals
their worksheet: the teacher keeps it; check, key and summary need the same one.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from socketlab.cli import common, exercise_start

if TYPE_CHECKING:
    from socketlab.exercises.summary import Summary


def register(command) -> None:
    group = command("exercise", "packet-capture exercises: a worksheet per student from their "
                                "own capture, answers checked from it", _help)
    sub = group.add_subparsers(dest="action", metavar="ACTION")
    shared = [command.shared] if hasattr(command, "shared") else []  # -p, --debug after ACTION

    def action(name: str, help_: str, handler) -> argparse.ArgumentParser:
        # check, key and summary read folders and files, never a lab: no -p, --engine, --place
        parents = shared if name in ("list", "start") else [debug_only()]
        cmd = sub.add_parser(name, help=help_, description=help_, parents=parents)
        cmd.set_defaults(handler=handler)
        if name not in ("list", "validate"):
            cmd.add_argument("--dir", default="exercises",
                             help="the course's worksheet folders (default ./exercises)")
            cmd.add_argument("--seed", help="the course seed (env SOCKETLAB_COURSE_SEED)")
        return cmd

    action("list", "the exercises, their questions and what differs per student", list_)
    exercise_start.options(action("start", "run an exercise in fresh labs: one worksheet "
                                           "folder per student (resumable)",
                                  exercise_start.start))
    check_ = action("check", "mark an answers file against the student's own capture "
                             "(exit 0 only with full marks)", check)
    check_.add_argument("name", metavar="NAME")
    check_.add_argument("answers", metavar="ANSWERS_FILE")
    check_.add_argument("--student", required=True, metavar="ID")
    check_.add_argument("--json", action="store_true", help="print the marking as JSON")
    check_.add_argument("--feedback", metavar="FILE",
                        help="also write the student's feedback (what was wrong, the frame)")
    key_ = action("key", "the answers of a student's capture, in the format check reads", key)
    key_.add_argument("name", metavar="NAME")
    key_.add_argument("--student", required=True, metavar="ID")
    key_.add_argument("--out", metavar="FILE", help="write it here (never over a file)")
    validate_ = action("validate", "check an answers file's format before handing it in (no "
                                   "course seed needed; says nothing of right or wrong)",
                       validate)
    validate_.add_argument("answers", metavar="ANSWERS_FILE")
    handout_ = action("handout", "a zip per student to hand out: worksheet (HTML, Markdown, "
                                 "PDF), pcaps, answers template, nothing else", handout)
    handout_.add_argument("name", metavar="NAME")
    handout_.add_argument("--out", default="handouts", metavar="FOLDER",
                          help="where the zips go (default ./handouts)")
    summary_ = action("summary", "mark a folder of answers files: per question, the class", summary)
    summary_.add_argument("folder", metavar="FOLDER")
    summary_.add_argument("--json", action="store_true", help="print the summary as JSON")
    summary_.add_argument("--grades", metavar="FILE",
                          help="write a grades CSV an LMS imports (student, score, per question)")
    summary_.add_argument("--feedback", metavar="FOLDER",
                          help="write a feedback file per student (what was wrong, the frame)")


def _help(args: argparse.Namespace, out: Console, err: Console) -> int:
    err.print("usage: socketlab exercise {list,start,check,key,summary} ...\n"
              "error: exercise needs an action: list, start, check, key or summary\n"
              "hint: `socketlab exercise --help` says what each does", markup=False, soft_wrap=True)
    return common.ExitCode.USAGE


def debug_only() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks")
    return parent


def no_lab(args: argparse.Namespace) -> None:
    """check, key and summary never reach a lab: -p, --engine or --place before the command
    would do nothing there, so they are refused rather than ignored."""
    from socketlab.exercises.model import ExerciseError

    given = [o for o, k in (("-p", "project"), ("--engine", "engine"), ("--place", "place"))
             if getattr(args, k, None)]
    if given:
        raise ExerciseError(f"exercise {args.action} reads worksheet folders, not a lab: "
                            f"{', '.join(given)} would do nothing there",
                            hint="leave out " + ", ".join(given) + "; --dir names the course's "
                                 "folder")


def seed_of(args: argparse.Namespace) -> str:
    from socketlab.exercises.sheet import DEFAULT_SEED

    return args.seed or os.environ.get("SOCKETLAB_COURSE_SEED") or DEFAULT_SEED


def list_(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.exercises.catalogue import EXERCISES

    table = Table("exercise", "what it is about", "questions", "differs per student")
    for e in EXERCISES:
        table.add_row(e.name, e.title, str(len(e.questions)), e.varies)
    out.print(table)
    return common.ExitCode.OK


def check(args: argparse.Namespace, out: Console, err: Console) -> int:
    no_lab(args)
    from socketlab.exercises.marking import mark, read_answers, show
    from socketlab.exercises.sheet import load

    answers = read_answers(args.answers)
    marking = mark(load(args.dir, args.name, args.student, seed=seed_of(args)), answers)
    if answers.commented:
        err.print(f"note: your answers to {', '.join(answers.commented)} are inside comments "
                  "(lines starting with #): remove the # to have them marked", markup=False,
                  soft_wrap=True)
    if args.feedback:
        from pathlib import Path

        from socketlab.exercises.summary import feedback_text

        Path(common.writable_file(args.feedback, "--feedback")).write_text(
            feedback_text(marking), encoding="utf-8")
    if args.json:
        common.dump_json(out, {"exercise": marking.exercise, "student": marking.student,
                               "score": marking.score, "questions": len(marking.marks),
                               "marks": [{"question": m.question.id, "given": m.given,
                                          "right": m.right, "note": m.note}
                                         for m in marking.marks]})
    else:
        table = Table("question", "answer", "mark", "why", title=f"{marking.exercise}: "
                      f"{marking.student}, {marking.score} of {len(marking.marks)} right")
        for m in marking.marks:
            table.add_row(m.question.id, "—" if m.given is None else show(m.given),
                          "right" if m.right else Text("wrong", "red"), m.note)
        out.print(table)
    return common.ExitCode.OK if marking.full else common.ExitCode.FAILED


def key(args: argparse.Namespace, out: Console, err: Console) -> int:
    no_lab(args)
    from pathlib import Path

    from socketlab.exercises.marking import answers_text
    from socketlab.exercises.model import ExerciseError
    from socketlab.exercises.sheet import load

    ws = load(args.dir, args.name, args.student, seed=seed_of(args))
    text = answers_text(ws, {qid: a.value for qid, a in ws.key().items()})
    if args.out:
        if Path(args.out).exists():
            raise ExerciseError(f"{args.out} exists: the key is never written over a file",
                                hint="name a new file, or leave out --out to print it")
        Path(args.out).write_text(text, encoding="utf-8")
        err.print(f"key written to {args.out}")
    else:
        out.file.write(text)
    return common.ExitCode.OK


def summary(args: argparse.Namespace, out: Console, err: Console) -> int:
    from pathlib import Path

    from socketlab.exercises.summary import feedback_text, grades_csv, summarise

    no_lab(args)
    targets = [common.writable_file(args.grades, "--grades")] if args.grades else []
    if args.feedback:
        common.writable_folder(args.feedback, "--feedback")
    s = summarise(args.folder, args.dir, seed_of(args))
    if args.grades:
        targets[0].write_text(grades_csv(s), encoding="utf-8")
        err.print(f"grades written to {args.grades}", markup=False, soft_wrap=True)
    if args.feedback:
        Path(args.feedback).mkdir(parents=True, exist_ok=True)
        count: dict[tuple[str, str], int] = {}
        for h in s.handed:
            m = h.marking
            n = count[(m.exercise, m.student)] = count.get((m.exercise, m.student), 0) + 1
            name = f"{m.exercise}-{m.student}" + (f"-{n}" if n > 1 else "")
            (Path(args.feedback) / f"{name}.txt").write_text(feedback_text(m) + f"(from {h.path})\n",
                                                             encoding="utf-8")
        err.print(f"{len(s.handed)} feedback files written to {args.feedback}", markup=False,
                  soft_wrap=True)
    if args.json:
        common.dump_json(out, _summary_json(s))
        return common.ExitCode.OK
    scores = Table("exercise", "student", "score", "whose capture", "file", "flags",
                   title="students")
    for h in s.handed:
        m = h.marking
        scores.add_row(m.exercise, m.student, f"{m.score} of {len(m.marks)}",
                       f"[red]{h.verdict}[/]" if h.copied_from else h.verdict, str(h.path),
                       "[red]" + "; ".join(h.flags) + "[/]" if h.flags else "")
    per_q = Table("exercise", "question", "right", "common wrong answers",
                  "right for another student's capture", title="questions")
    for q in s.questions:
        per_q.add_row(q.exercise, q.question + (" (same for all)" if q.class_wide else ""),
                      f"{q.right} of {q.answered}", ", ".join(f"{w} ({n}×)" for w, n in q.wrong),
                      ", ".join(f"{who} (fits {whose}'s)" for who, whose in q.borrowed))
    out.print(scores)
    out.print(per_q)
    for path, why in s.problems:
        err.print(f"not marked: {path}: {why}", markup=False, soft_wrap=True)
    return common.ExitCode.OK


def _summary_json(s: Summary) -> dict[str, Any]:
    return {
        "students": [{"exercise": h.marking.exercise, "student": h.marking.student,
                      "score": h.marking.score, "questions": len(h.marking.marks),
                      "file": str(h.path), "verdict": h.verdict, "copied_from": h.copied_from,
                      "flags": list(h.flags)} for h in s.handed],
        "questions": [{"exercise": q.exercise, "question": q.question, "right": q.right,
                       "marked": q.answered, "common_wrong": [list(w) for w in q.wrong],
                       "fits_another_capture": [list(b) for b in q.borrowed],
                       "class_wide": q.class_wide} for q in s.questions],
        "not_marked": [{"file": f, "why": why} for f, why in s.problems]}


def validate(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.exercises.handin import validate as check_format
    from socketlab.exercises.marking import read_answers

    no_lab(args)
    answers = read_answers(args.answers)
    checks = check_format(answers)
    table = Table("question", "reads as", "problem",
                  title=f"{args.answers}: {answers.exercise}, {answers.student}")
    for c in checks:
        table.add_row(c.question, c.reads_as, f"[red]{c.problem}[/]" if c.problem else "")
    out.print(table)
    bad = [c for c in checks if c.problem]
    out.print(f"{len(bad)} to mend before handing in" if bad else
              "every answer can be marked (right or wrong is for your teacher's check)",
              markup=False)
    return common.ExitCode.FAILED if bad else common.ExitCode.OK


def handout(args: argparse.Namespace, out: Console, err: Console) -> int:
    from pathlib import Path

    from socketlab.exercises.catalogue import get
    from socketlab.exercises.handin import handout as zip_up
    from socketlab.exercises.sheet import load, worksheets

    no_lab(args)
    get(args.name)
    students = worksheets(args.dir, args.name)
    if not students:
        from socketlab.exercises.model import ExerciseError

        raise ExerciseError(f"no worksheets of {args.name} in {args.dir}",
                            hint=f"make them with `socketlab exercise start {args.name} ...`")
    sheets = [load(args.dir, args.name, s, seed=seed_of(args)) for s in students]  # all, first
    made = [p for ws in sheets if (p := zip_up(ws, Path(args.out))) is not None]
    out.print(f"{len(made)} hand-outs written to {args.out}, {len(sheets) - len(made)} there "
              "already", markup=False, soft_wrap=True)
    return common.ExitCode.OK
