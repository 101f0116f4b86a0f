"""The teacher's summary over a folder of answers files (an LMS download: the files at its top,
or one folder per submitter as Moodle and Canvas make them), and what goes back: grades for the
LMS and feedback per student.

    s = summarise("submissions/", "exercises", "spring-course")
    s.handed[0].verdict   # "own capture (5 of 5 where captures differ)" or "fits s001's ..."
    s.handed[0].flags     # ("one of 2 files from s003: ...", "the file's name says s002, ...")
    grades_csv(s)         # student,exercise,score,out_of,q1,...: one row per student

Copy detection looks only at questions whose answer differs between captures: a question whose
key is the same for the whole class (`class_wide`) says nothing about whose capture an answer
was read from, so it is left out of every verdict.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socketlab.exercises.marking import Marking, judge, mark, read_answers, show
from socketlab.exercises.model import Answer, ExerciseError, Question


@dataclass(frozen=True)
class QuestionSummary:
    exercise: str
    question: str
    right: int
    answered: int  # files marked
    wrong: tuple[tuple[str, int], ...]  # the commonest wrong answers, as shown, with counts
    borrowed: tuple[tuple[str, str], ...]  # (student, whose capture the answer fits)
    class_wide: bool = False  # every capture gives the same answer: no copy signal


@dataclass(frozen=True)
class Handed:
    """One answers file, marked, with whose capture it fits and what looks wrong about it."""

    path: Path
    marking: Marking
    verdict: str
    copied_from: str = ""  # the student whose capture the answers fit better than their own
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Summary:
    markings: tuple[Marking, ...]
    questions: tuple[QuestionSummary, ...]
    problems: tuple[tuple[str, str], ...]  # (file, why it was not marked)
    handed: tuple[Handed, ...] = ()


Keys = dict[str, dict[str, Answer]]  # student -> question id -> answer


def answers_files(folder: Path) -> list[Path]:
    """Every *.toml under `folder`, at any depth (a submitter's folder), hidden ones left out.
    Anything but a folder is one: a FIFO or a device named so is then refused by read_answers
    in one line of the summary's, not left out unsaid."""
    return sorted(p for p in folder.rglob("*.toml") if not p.is_dir()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def summarise(folder: str | Path, base_dir: str | Path, seed: str) -> Summary:
    """Mark every answers file under `folder`; per student a verdict on whose capture the
    answers fit; per question right counts, common wrong answers, and answers that are right
    for another student's capture (their key, not this one's)."""
    from socketlab.exercises.sheet import load, worksheets

    folder = Path(folder)
    if not folder.is_dir():
        raise ExerciseError(f"no folder {folder}", hint="name the folder of answer files")
    files = answers_files(folder)
    if not files:
        raise ExerciseError(f"no answers files (*.toml) in {folder} or its folders")
    marked: list[tuple[Path, Marking]] = []
    problems = []
    for path in files:
        try:
            answers = read_answers(path)
            ws = load(base_dir, answers.exercise, answers.student, seed=seed)
            marked.append((path, mark(ws, answers)))
        except ExerciseError as e:
            problems.append((str(path), str(e)))
    keys: dict[str, Keys] = {}
    for name in sorted({m.exercise for _, m in marked}):
        keys[name] = {}
        for student in worksheets(base_dir, name):
            try:
                keys[name][student] = load(base_dir, name, student, seed=seed).key()
            except ExerciseError as e:
                problems.append((f"worksheet {name}-{student}", str(e)))
    wide = {(name, q): _class_wide(m, q, per) for name, per in keys.items()
            for _, m in marked if m.exercise == name for q in _ids(m)}
    handed = [_handed(path, m, keys[m.exercise], wide, folder) for path, m in marked]
    handed = _flag_twice(handed)
    return Summary(tuple(m for _, m in marked), _per_question(marked, keys, wide),
                   tuple(problems), tuple(handed))


def _ids(m: Marking) -> list[str]:
    return [mk.question.id for mk in m.marks]


def _class_wide(m: Marking, qid: str, per_student: Keys) -> bool:
    q = next(mk.question for mk in m.marks if mk.question.id == qid)
    answers = [k[qid] for k in per_student.values() if qid in k]
    return len(answers) > 1 and all(judge(q, a.value, answers[0])[0] for a in answers)


def _handed(path: Path, m: Marking, keys: Keys, wide: dict[tuple[str, str], bool],
            folder: Path) -> Handed:
    """Count, over the questions where two captures differ, which one the answers fit."""
    best = ("", 0, 0)
    differing = [mk for mk in m.marks if not wide.get((m.exercise, mk.question.id))
                 and mk.given is not None]
    own = sum(mk.right for mk in differing)
    for other, key in keys.items():
        if other == m.student:
            continue
        apart = [mk for mk in differing if not judge(mk.question, key[mk.question.id].value,
                                                     mk.answer)[0]]
        fits = sum(judge(mk.question, mk.given, key[mk.question.id])[0] for mk in apart)
        if fits > best[1]:
            best = (other, fits, len(apart))
    flags = _name_flags(path, m, set(keys), folder)
    if best[1] >= 2 and best[1] > own:
        return Handed(path, m, f"fits {best[0]}'s capture: {best[1]} of {best[2]} answers "
                               f"where the two differ (own capture: {own})", best[0], flags)
    return Handed(path, m, f"own capture ({own} of {len(differing)} answers right where "
                           "captures differ)", "", flags)


def _name_flags(path: Path, m: Marking, known: set[str], folder: Path) -> tuple[str, ...]:
    """The file's name (or its submitter folder's) names another student than its content."""
    tokens = set(re.split(r"[^A-Za-z0-9.@-]+", str(path.relative_to(folder).with_suffix(""))))
    named = sorted((tokens & known) - {m.student})
    if named and m.student not in tokens:
        return (f"the file's name says {', '.join(named)}, its content {m.student}",)
    return ()


def _flag_twice(handed: list[Handed]) -> list[Handed]:
    by: dict[tuple[str, str], list[Handed]] = defaultdict(list)
    for h in handed:
        by[(h.marking.exercise, h.marking.student)].append(h)
    out = []
    for h in handed:
        same = by[(h.marking.exercise, h.marking.student)]
        extra = (f"one of {len(same)} files from {h.marking.student}: "
                 f"{', '.join(p.path.name for p in same)}",) if len(same) > 1 else ()
        out.append(Handed(h.path, h.marking, h.verdict, h.copied_from, h.flags + extra))
    return out


def _per_question(marked: list[tuple[Path, Marking]], keys: dict[str, Keys],
                  wide: dict[tuple[str, str], bool]) -> tuple[QuestionSummary, ...]:
    rows = []
    for name, per_student in keys.items():
        done = [m for _, m in marked if m.exercise == name]
        for index, first in enumerate(done[0].marks):
            q = first.question
            marks = [(m.student, m.marks[index]) for m in done]
            wrong = Counter("no answer" if mk.given is None else show(mk.given)
                            for _, mk in marks if not mk.right)
            borrowed = tuple((student, other) for student, mk in marks
                             if not mk.right and mk.given is not None
                             for other, key in per_student.items()
                             if other != student and _fits(mk.question, mk.given, key[q.id],
                                                           mk.answer))
            rows.append(QuestionSummary(name, q.id, sum(mk.right for _, mk in marks), len(marks),
                                        tuple(wrong.most_common(3)), borrowed,
                                        wide.get((name, q.id), False)))
    return tuple(rows)


def _fits(q: Question, given: Any, theirs: Answer, mine: Answer) -> bool:
    """The answer is right for another capture, and that capture's answer is not this one's."""
    return judge(q, given, theirs)[0] and not judge(q, theirs.value, mine)[0]


# ---------------------------------------------------------------- what goes back
def grades_csv(s: Summary) -> str:
    """One row per student and exercise, as an LMS imports grades: id, score, out of, a mark
    (1 or 0) per question, and flags. A student with more than one file gets no score: the
    teacher decides which counts."""
    qids = sorted({mk.question.id for m in s.markings for mk in m.marks},
                  key=lambda q: int(q[1:]))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["student", "exercise", "score", "out_of", *qids, "verdict", "flags"])
    seen: set[tuple[str, str]] = set()
    for h in s.handed:
        m = h.marking
        if (m.exercise, m.student) in seen:
            continue
        seen.add((m.exercise, m.student))
        twice = any(f.startswith("one of ") for f in h.flags)
        per_q = {mk.question.id: int(mk.right) for mk in m.marks}
        w.writerow([m.student, m.exercise, "" if twice else m.score, len(m.marks),
                    *("" if twice else per_q.get(q, "") for q in qids), h.verdict,
                    "; ".join(h.flags)])
    return out.getvalue()


def feedback_text(m: Marking) -> str:
    """What a student gets back: their score, and for each question not right, why, with the
    frame that decides."""
    lines = [f"{m.exercise}: {m.student}, {m.score} of {len(m.marks)} right", ""]
    for mk in m.marks:
        lines.append(f"{mk.question.id}: right" if mk.right else f"{mk.question.id}: {mk.note}")
    return "\n".join(lines) + "\n"
