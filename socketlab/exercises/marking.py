"""Answers files: reading them, marking them against the key of the student's own capture,
writing the key in the same format, and a teacher's summary over a folder of them.

An answers file is TOML, the format `exercise key` writes:

    exercise = "handshake"
    student = "alice"
    [answers]
    q1 = 3565220328        # whole numbers; 0x3b53 also reads as a number
    q2 = 1                 # relative or raw, where Wireshark shows both
    q8 = 612.4             # milliseconds: right within the question's tolerance
    q3 = "hel"             # text in quotes; yes/no as true/false (or "yes"/"no")
"""

from __future__ import annotations

import math
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socketlab.exercises.model import KIND_WORDS, Answer, ExerciseError, Question
from socketlab.exercises.sheet import Worksheet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class Answers:
    path: Path
    exercise: str
    student: str
    values: dict[str, Any]  # question id -> what the student wrote ("" left out: no answer)
    commented: tuple[str, ...] = ()  # questions answered only inside a comment (`# q3 = 42`)


@dataclass(frozen=True)
class Mark:
    question: Question
    given: Any  # None: no answer
    right: bool
    answer: Answer
    note: str = ""  # why it is wrong, with the deciding packet


@dataclass(frozen=True)
class Marking:
    exercise: str
    student: str
    marks: tuple[Mark, ...]

    @property
    def score(self) -> int:
        return sum(m.right for m in self.marks)

    @property
    def full(self) -> bool:
        return self.score == len(self.marks)


# ---------------------------------------------------------------- reading
MAX_ANSWERS_BYTES = 256 * 1024  # a full answers file is under 1 KiB; a bigger one is not one


def read_answers(path: str | Path) -> Answers:
    path = Path(path)
    try:
        text = read_small_file(path, "answers file").decode("utf-8")  # read once, bounded
        doc = tomllib.loads(text)
    except FileNotFoundError:
        raise ExerciseError(f"no answers file {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ExerciseError(f"{path} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ExerciseError(f"{path} is not a valid answers file: {e}",
                            hint="write it as `socketlab exercise key` does: `q1 = 42`, text in "
                                 "quotes, one answer per line under [answers]") from None
    missing = [k for k in ("exercise", "student", "answers") if k not in doc]
    if missing:
        raise ExerciseError(f"{path} lacks {', '.join(missing)}",
                            hint="start from the answers.toml in the worksheet folder")
    values = doc["answers"]
    if not isinstance(values, dict) or not all(isinstance(doc[k], str)
                                               for k in ("exercise", "student")):
        raise ExerciseError(f"{path}: `exercise` and `student` must be text and [answers] a table",
                            hint="start from the answers.toml in the worksheet folder")
    given = {str(k).lower(): v for k, v in values.items() if v != ""}
    return Answers(path, doc["exercise"], doc["student"], given,
                   commented_answers(text, given))


COMMENTED = re.compile(r"^[ \t]*#+[ \t]*(q\d+)[ \t]*=[ \t]*(\S.*?)[ \t]*$", re.I | re.M)


def commented_answers(text: str, given: Mapping[str, Any]) -> tuple[str, ...]:
    """Questions with no answer whose line is there with something typed after `=`, but inside
    a comment (a student who typed after the `#` of an old template's `# q1 = `)."""
    found = []
    for qid, after in COMMENTED.findall(text):
        if qid.lower() not in given and after not in ('""', "''") and qid.lower() not in found:
            found.append(qid.lower())
    return tuple(found)


def read_small_file(path: Path, what: str, limit: int = MAX_ANSWERS_BYTES) -> bytes:
    """The bytes of `path` if it is a regular file of at most `limit` bytes; ExerciseError at
    once otherwise. Opened without blocking (a FIFO with no writer would wait for one) and
    checked on the open file, so a device (/dev/zero), a FIFO or a folder is never read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ExerciseError(f"{path} is not a regular file ({_kind(info.st_mode)}): an {what} "
                                "is a text file", hint=f"name the {what} itself")
        data = os.read(fd, limit + 1)  # a regular file never blocks; +1: one that grew
        if info.st_size > limit or len(data) > limit:
            size = f"{info.st_size:,} bytes" if info.st_size > limit else f"over {limit:,} bytes"
            raise ExerciseError(f"{path} is {size}: an {what} is at most {limit:,} bytes",
                                hint=f"name the {what} itself")
        return data
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def check_fits(ws: Worksheet, answers: Answers) -> None:
    """The file answers this worksheet: same exercise, same student, no unknown question."""
    name = ws.exercise.name
    if answers.exercise != name:
        raise ExerciseError(f"{answers.path} answers exercise {answers.exercise!r}, not {name!r}",
                            hint=f"check it with `socketlab exercise check {answers.exercise} "
                                 "...`, or hand in the answers to this exercise")
    if answers.student != ws.student:
        raise ExerciseError(f"{answers.path} is {answers.student!r}'s, not {ws.student!r}'s",
                            hint="each student answers about their own capture")
    known = [q.id for q in ws.exercise.questions]
    extra = [k for k in answers.values if k not in known]
    if extra:
        raise ExerciseError(f"{answers.path}: {', '.join(extra)} "
                            f"{'is not a question' if len(extra) == 1 else 'are not questions'}"
                            f" of {name} (it has {known[0]}-{known[-1]})",
                            hint="remove or rename those lines")


# ---------------------------------------------------------------- marking
def mark(ws: Worksheet, answers: Answers) -> Marking:
    check_fits(ws, answers)
    key = ws.key()
    marks = []
    for q in ws.exercise.questions:
        given = answers.values.get(q.id)
        right, note = judge(q, given, key[q.id])
        if given is None and q.id in answers.commented:
            note = (f"your answer is inside a comment: remove the # before {q.id}; "
                    f"{_because(key[q.id])}")
        marks.append(Mark(q, given, right, key[q.id], note))
    return Marking(ws.exercise.name, ws.student, tuple(marks))


def judge(q: Question, given: Any, answer: Answer) -> tuple[bool, str]:
    """Right or not, and why not: what was wrong with the answer, then the evidence."""
    if given is None:
        return False, f"no answer; {_because(answer)}"
    value, problem = parse(q, given)
    if problem:
        return False, f"{problem}; {_because(answer)}"
    if _equal(q, value, answer):
        return True, ""
    hint = next((f" (that is {what})" for near, what in answer.near if value == near), "")
    if q.kind == "num" and q.unit == "ms" and _equal(q, value * 1000, answer):
        hint = " (that is the answer in seconds; the question asks for milliseconds)"
    return False, f"you answered {show(given)}{hint}; {_because(answer)}"


def _because(answer: Answer) -> str:
    return f"the answer is {show(answer.value)}: {answer.evidence}"


def _equal(q: Question, value: Any, answer: Answer) -> bool:
    rights = (answer.value, *answer.accept)
    if q.kind == "num":
        return abs(value - answer.value) <= q.within(answer.value)
    if q.kind == "ints":
        return any(sorted(value) == sorted(r) for r in rights)
    return value in rights


def parse(q: Question, given: Any) -> tuple[Any, str]:
    """(value, "") or (None, what is wrong with it): a wrong type is a wrong answer, never a
    crash."""
    wrong = f"expected {KIND_WORDS[q.kind]}, got {show(given)}"
    if q.kind in ("int", "frame"):
        value = _int(given)
        return (value, "") if value is not None else (None, wrong)
    if q.kind == "num":
        if isinstance(given, bool):
            return None, wrong
        if isinstance(given, str) and q.unit == "%":
            given = given.strip().removesuffix("%")  # "33.33%" where a percentage is asked
        try:
            number = float(given)
        except (TypeError, ValueError):
            return None, wrong
        return (number, "") if math.isfinite(number) else (None, wrong)
    if q.kind == "yesno":
        words = {"yes": True, "y": True, "true": True, "no": False, "n": False, "false": False}
        if isinstance(given, bool):
            return given, ""
        value = words.get(str(given).strip().lower()) if isinstance(given, str) else None
        return (value, "") if value is not None else (None, wrong)
    if q.kind == "ints":
        items = (given.replace(",", " ").strip("[] ").split() if isinstance(given, str)
                 else given)  # "2, 7", "[2, 7]" (in quotes, as the template has it) or [2, 7]
        values = [_int(v) for v in items] if isinstance(items, list) else [None]
        return (values, "") if None not in values else (None, wrong)
    if q.kind == "choice":
        letter = given.strip().lower().rstrip(")") if isinstance(given, str) else None
        return (letter, "") if letter in q.choices else (None, wrong + f" (one of "
                                                         f"{', '.join(q.choices)})")
    if not isinstance(given, str):
        return None, wrong
    text = given.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text, ""


def _int(given: Any) -> int | None:
    if isinstance(given, bool):
        return None
    if isinstance(given, int):
        return given
    if isinstance(given, float) and given.is_integer():
        return int(given)
    if isinstance(given, str):
        text = given.strip().lower()
        try:
            return int(text, 16) if text.startswith("0x") else int(text)
        except ValueError:
            return None
    return None


def show(value: Any) -> str:
    if value is True or value is False:
        return "yes" if value else "no"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):  # 612.4, 3121280499 (never 3.12128e+09)
        return repr(value).removesuffix(".0")
    return str(value)


# ---------------------------------------------------------------- the key, as a file
ANSWERS_FILE = "answers.toml"

def toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # TOML basic strings escape as JSON does


def answers_text(ws: Worksheet, values: Mapping[str, Any] | None) -> str:
    """An answers file for this worksheet: the key's values, or (None) a form to fill in."""
    head = "key" if values is not None else "answers (fill in each line, then hand it in)"
    lines = [f"# socketlab exercise {ws.exercise.name}: {head} for {ws.student}",
             "# write each answer between the quotes of its line, e.g. q1 = \"42\"; lines "
             "starting with # are not read",
             f"# check the format before handing in: socketlab exercise validate {ANSWERS_FILE}",
             f'exercise = "{ws.exercise.name}"', f"student = {toml_value(ws.student)}", "",
             "[answers]"]
    for q in ws.exercise.questions:
        what = KIND_WORDS[q.kind] + (f", in {q.unit}" if q.unit else "")
        lines.append(f"# {q.id}: {q.ask(ws.params)} ({what})")
        if values is not None:
            lines.append(f"{q.id} = {toml_value(values[q.id])}")
        else:
            lines.append(f'{q.id} = ""')
    return "\n".join(lines) + "\n"
