"""Between teacher and student: the hand-out (a zip per student with exactly what they need)
and the format check a student runs on their answers before handing them in.

    handout(load("exercises", "handshake", "s001", seed=...), Path("handouts"))
    # handouts/handshake-s001.zip: worksheet.html, worksheet.md (worksheet.pdf), client.pcap,
    # server.pcap, answers.toml; nothing else (not worksheet.json: the teacher's sealed record)
    problems = validate(read_answers("answers.toml"))   # no course seed, no capture needed
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socketlab.exercises.catalogue import get
from socketlab.exercises.marking import Answers, parse, show
from socketlab.exercises.model import ExerciseError
from socketlab.exercises.sheet import Worksheet


def zip_name(ws: Worksheet) -> str:
    """A name every LMS upload takes: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{ws.exercise.name}-{ws.student}") + ".zip"


def handout(ws: Worksheet, out_dir: Path) -> Path | None:
    """Write out_dir/<exercise>-<student>.zip (None: it is there already, left as it is);
    whole or not at all (written beside it, then renamed)."""
    target = out_dir / zip_name(ws)
    if target.exists():
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    from socketlab.exercises.marking import answers_text
    from socketlab.exercises.render import ANSWERS, to_html, to_markdown

    # the pages drawn again from the sealed record: what is held back now is held back here
    pages = {"worksheet.html": to_html(ws), "worksheet.md": to_markdown(ws),
             ANSWERS: answers_text(ws, None)}
    files = [f"{h}.pcap" for h in ws.pcaps] + ["worksheet.pdf"] * (ws.folder / "worksheet.pdf"
                                                                   ).is_file()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as z:
            for name, text in pages.items():
                z.writestr(name, text)
            for name in files:
                z.write(ws.folder / name, name)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


@dataclass(frozen=True)
class Check:
    question: str
    problem: str  # "" when the answer reads as the question's kind
    reads_as: str = ""


def validate(answers: Answers) -> list[Check]:
    """Each question of the answers' exercise: answered, and in a form it can be marked in.
    Needs no course seed and no capture: it says nothing of right or wrong."""
    try:
        exercise = get(answers.exercise)
    except ExerciseError as e:
        raise ExerciseError(f"{answers.path}: {e}", hint=e.hint) from None
    known = {q.id for q in exercise.questions}
    checks = [Check(k, f"{k} is not a question of {exercise.name}") for k in answers.values
              if k not in known]
    for q in exercise.questions:
        given: Any = answers.values.get(q.id)
        if given is None:
            why = ("your answer is inside a comment: remove the # before it"
                   if q.id in answers.commented else "no answer")
            checks.append(Check(q.id, why))
            continue
        value, problem = parse(q, given)
        checks.append(Check(q.id, problem, "" if problem else show(value)))
    return checks
