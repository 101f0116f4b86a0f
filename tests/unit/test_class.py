"""A class: rosters as LMSs export them, resuming (who is done, a changed seed refused), and
the marking commands that never reach a lab. No Docker: nothing here starts a lab."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from socketlab.cli.app import main
from socketlab.exercises import ExerciseError
from socketlab.exercises.classroom import plan
from socketlab.exercises.roster import read_roster

DATA = Path(__file__).parent.parent / "data" / "exercises"
SEED = "test-course"


@pytest.fixture
def course(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA, tmp_path / "course"))


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "roster.csv"
    path.write_bytes(text.encode(encoding))
    return path


# ---------------------------------------------------------------- rosters
def test_a_moodle_export_with_a_bom_and_semicolons(tmp_path):
    path = write(tmp_path, "First name;Surname;ID number;Institution;Email address\r\n"
                           "Ada;Lovelace;s001;Uni;ada@example.org\r\n"
                           "Alan;Turing;s002;Uni;alan@example.org\r\n", "utf-8-sig")
    roster = read_roster(path)
    assert roster.ids == ("s001", "s002")
    assert roster.students[0].name == "Ada Lovelace"
    assert roster.described() == 'ids from column "ID number", names from "First name" + "Surname"'


def test_an_empty_id_number_column_falls_back_to_the_email(tmp_path):
    path = write(tmp_path, "First name,Surname,ID number,Email address\n"
                           "Ada,Lovelace,,ada@example.org\nAlan,Turing,,alan@example.org\n")
    roster = read_roster(path)
    assert roster.id_column == "Email address"
    assert roster.ids == ("ada@example.org", "alan@example.org")


def test_a_canvas_export_skips_its_points_possible_row(tmp_path):
    path = write(tmp_path, 'Student,ID,SIS User ID,SIS Login ID,Section\n'
                           '    Points Possible,,,,\n'
                           '"Lovelace, Ada",101,,ada,Net\n"Turing, Alan",102,,alan,Net\n')
    roster = read_roster(path)
    assert roster.ids == ("101", "102")
    assert roster.students[1].name == "Turing, Alan"


@pytest.mark.parametrize(("text", "said"), [
    ("", "empty or has no header"),
    ("name,city\nAda,London\n", "no column of student ids"),
    ("id,name\nx y,Ada\n", "'id' hold values that cannot name a worksheet folder"),
    ("id,name\ns1,Ada\ns1,Ada again\n", "s1 is on more than one row"),
    ("id,name\n", "no student rows"),
])
def test_rosters_that_cannot_be_used_are_refused_in_one_line(tmp_path, text, said):
    with pytest.raises(ExerciseError, match=said):
        read_roster(write(tmp_path, text))


def test_a_roster_that_is_not_a_regular_file_is_refused(tmp_path):
    with pytest.raises(ExerciseError, match="not a roster file"):
        read_roster(tmp_path)
    with pytest.raises(ExerciseError, match="no roster file"):
        read_roster(tmp_path / "nosuch.csv")


# ---------------------------------------------------------------- resuming
def test_plan_skips_whole_worksheets_of_this_seed(course):
    todo, done = plan(course, "handshake", ["alice", "carol", "bob"], seed=SEED)
    assert (todo, done) == (["carol"], ["alice", "bob"])


def test_plan_refuses_another_seed_and_a_folder_that_is_no_worksheet(course):
    with pytest.raises(ExerciseError, match="handshake-alice was made with another course seed"):
        plan(course, "handshake", ["carol", "alice"], seed="another-course")
    (course / "handshake-dan").mkdir()
    with pytest.raises(ExerciseError, match="handshake-dan is there but holds no worksheet"):
        plan(course, "handshake", ["dan"], seed=SEED)


def test_start_from_a_roster_all_done_starts_no_lab(course, tmp_path, capsys):
    roster = write(tmp_path, "\ufeffUsername;Full name\nalice;Alice A\nbob;Bob B\n")
    code = main(["exercise", "start", "handshake", "--roster", str(roster), "--dir",
                 str(course), "--seed", SEED, "--jobs", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert 'ids from column "Username", names from "Full name"' in err
    assert "2 already prepared with this course seed, skipped: alice, bob" in err
    assert "nothing to do" in out


def test_start_refuses_a_changed_seed_and_no_students(course, tmp_path, capsys):
    roster = write(tmp_path, "id\nalice\ncarol\n")
    base = ["exercise", "start", "handshake", "--dir", str(course)]
    assert main([*base, "--roster", str(roster), "--seed", "other"]) == 64
    err = capsys.readouterr().err
    assert "error: " in err
    assert "was made with another course seed" in err
    assert main(base) == 64
    assert "no students: give --roster FILE or --student ID" in capsys.readouterr().err
    assert main([*base, "--roster", str(roster), "--student", "carol", "--seed", SEED]) == 64
    assert "carol is given twice" in capsys.readouterr().err
    assert not (course / "handshake-carol").exists()


# ---------------------------------------------------------------- no lab options where no lab is
@pytest.mark.parametrize("action", [["check", "handshake", "a.toml", "--student", "alice"],
                                    ["key", "handshake", "--student", "alice"],
                                    ["summary", "subs"]])
@pytest.mark.parametrize("option", [["-p", "x"], ["--engine", "swarm"], ["--place", "a=b"]])
def test_check_key_and_summary_refuse_lab_options(action, option, capsys):
    assert main(["exercise", *action, *option]) == 64  # after the command: not an option
    assert "unrecognized arguments" in capsys.readouterr().err
    assert main([*option, "exercise", *action]) == 64  # before it: refused by name
    assert f"{option[0]} would do nothing there" in capsys.readouterr().err
