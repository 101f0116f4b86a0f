"""A class roster as an LMS exports it: a CSV file with a student id and a name per row.

    roster = read_roster("participants.csv")
    roster.ids             # ("s001", "s002", ...), in the file's order
    roster.described()     # 'ids from column "ID number", names from "First name" + "Surname"'

Moodle, Canvas and spreadsheets write these files differently: a byte-order mark before the
first header, `;` instead of `,` (a spreadsheet in a locale whose decimal mark is a comma),
headers such as "ID number", "Username", "SIS Login ID" or "Email address". The id column is
the first of ID_COLUMNS (in that order) whose every row holds an id that can name a worksheet
folder; rows with no id at all (Canvas's "Points Possible" line) are left out.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from socketlab.exercises.model import STUDENT_ID, ExerciseError

# header names (lower case, spaces and _ folded) in the order an id column is chosen
ID_COLUMNS = ("id", "student id", "id number", "idnumber", "student number", "matriculation number",
              "sis user id", "sis login id", "username", "user name", "login", "login id",
              "email", "email address", "e-mail", "e-mail address")
NAME_COLUMNS = ("name", "full name", "student", "student name", "display name")
FIRST_LAST = (("first name", "firstname", "given name"),
              ("surname", "last name", "lastname", "family name"))
MAX_BYTES = 4 << 20  # a roster of thousands is a few hundred KB


@dataclass(frozen=True)
class Student:
    id: str
    name: str


@dataclass(frozen=True)
class Roster:
    path: Path
    students: tuple[Student, ...]
    id_column: str
    name_columns: tuple[str, ...]  # () when the file has no name column

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.students)

    def described(self) -> str:
        names = " + ".join(f'"{c}"' for c in self.name_columns) or "none (no name column)"
        return f'ids from column "{self.id_column}", names from {names}'


def _fold(header: str) -> str:
    return re.sub(r"[\s_]+", " ", header.strip().lower())


def read_roster(path: str | Path) -> Roster:
    """The roster in a CSV file, checked whole: ExerciseError (one line) if it cannot be used."""
    path = Path(path)
    rows = _rows(path)
    header, body = rows[0], [r for r in rows[1:] if any(c.strip() for c in r)]
    if not body:
        raise ExerciseError(f"{path}: no student rows under the header",
                            hint="export the roster with one row per student")
    folded = [_fold(h) for h in header]
    id_index = _id_column(path, header, folded, body)
    names = _name_columns(folded)
    students = []
    for row in body:
        cell = row[id_index].strip() if id_index < len(row) else ""
        if not cell:
            continue  # a row with no id: Canvas's "Points Possible", a blank in a spreadsheet
        name = " ".join(row[i].strip() for i in names if i < len(row) and row[i].strip())
        students.append(Student(cell, name))
    if not students:
        raise ExerciseError(f"{path}: no student rows under the header",
                            hint="export the roster with one row per student")
    twice = sorted(i for i, n in Counter(s.id for s in students).items() if n > 1)
    if twice:
        raise ExerciseError(f"{path}: student id {', '.join(twice[:5])} is on more than one row",
                            hint="each student once: remove the repeated rows")
    return Roster(path, tuple(students), header[id_index].strip(),
                  tuple(header[i].strip() for i in names))


def _rows(path: Path) -> list[list[str]]:
    try:
        if path.stat().st_size > MAX_BYTES or not path.is_file():
            raise ExerciseError(f"{path} is not a roster file (a regular file under "
                                f"{MAX_BYTES >> 20} MB)", hint="give the CSV the LMS exported")
        text = path.read_bytes().decode("utf-8-sig")  # utf-8-sig drops a byte-order mark
    except FileNotFoundError:
        raise ExerciseError(f"no roster file {path}", hint="give the CSV the LMS exported") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ExerciseError(f"{path} cannot be read as UTF-8 text: {e}",
                            hint="export the roster as CSV (UTF-8)") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ExerciseError(f"{path} is empty or has no header line",
                            hint="the first line names the columns, e.g. id,name")
    head = lines[0]
    delimiter = max((";", ",", "\t"), key=head.count)
    return list(csv.reader(lines, delimiter=delimiter))


def _id_column(path: Path, header: list[str], folded: list[str], body: list[list[str]]) -> int:
    tried = []
    for wanted in ID_COLUMNS:
        for i, name in enumerate(folded):
            if name != wanted:
                continue
            cells = [r[i].strip() for r in body if i < len(r) and r[i].strip()]
            if cells and all(STUDENT_ID.fullmatch(c) for c in cells):
                return i
            tried.append(header[i].strip())
    if len(header) == 1 and body:  # a plain list of ids, one per line, under any header
        return 0
    said = (f" ({', '.join(repr(t) for t in tried)} hold values that cannot name a worksheet "
            "folder, or none)") if tried else ""
    raise ExerciseError(f"{path}: no column of student ids{said}; columns: "
                        f"{', '.join(repr(h.strip()) for h in header)}",
                        hint='name the id column "id" (or "ID number", "Username", "Email '
                             'address"); ids are letters, digits, ".", "_", "@" or "-"')


def _name_columns(folded: list[str]) -> list[int]:
    for wanted in NAME_COLUMNS:
        if wanted in folded:
            return [folded.index(wanted)]
    parts = [next((folded.index(n) for n in names if n in folded), None) for names in FIRST_LAST]
    return [i for i in parts if i is not None]
