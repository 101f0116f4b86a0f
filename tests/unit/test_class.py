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


def test_half_made_folders_of_a_killed_run_are_removed_before_a_lab_starts(course, capsys):
    (course / ".handshake-carol-x1y2").mkdir()
    (course / ".handshake-carol-x1y2" / "client.pcap").write_bytes(b"half")
    (course / ".handshake-alice-zz").mkdir()  # alice is done: hers is not touched
    code = main(["exercise", "start", "handshake", "--student", "carol", "--student", "x y",
                 "--dir", str(course), "--seed", SEED])
    assert code == 64  # refused (a bad id) before anything is removed
    assert (course / ".handshake-carol-x1y2").exists()
    code = main(["exercise", "start", "handshake", "--student", "alice", "--dir", str(course),
                 "--seed", SEED, "--roster", str(course / "nosuch.csv")])
    assert code == 64
    from socketlab.exercises.classroom import stale

    assert stale(course, "handshake", ["carol"]) == [course / ".handshake-carol-x1y2"]
    assert stale(course, "handshake", ["dan"]) == []


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
    assert main([*base, "--student", "carol", "--jobs", "2", "--subnet", "192.168.140.0/24",
                 "--seed", SEED]) == 64
    assert "--subnet with --jobs 2: each lab takes a free subnet" in capsys.readouterr().err
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


# ---------------------------------------------------------------- hand-outs and the format check
def test_a_hand_out_zip_per_student_holds_exactly_what_they_need(course, tmp_path, capsys):
    import zipfile

    out = tmp_path / "handouts"
    argv = ["exercise", "handout", "handshake", "--dir", str(course), "--seed", SEED,
            "--out", str(out)]
    assert main(argv) == 0
    assert "2 hand-outs written" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["handshake-alice.zip", "handshake-bob.zip"]
    with zipfile.ZipFile(out / "handshake-alice.zip") as z:
        assert sorted(z.namelist()) == ["answers.toml", "client.pcap", "server.pcap",
                                        "worksheet.html", "worksheet.md"]
        assert 'q1 = ""' in z.read("answers.toml").decode()  # drawn again: today's template
        assert z.read("client.pcap") == (course / "handshake-alice" / "client.pcap").read_bytes()
    assert main(argv) == 0  # there already: left as it is
    assert "0 hand-outs written to" in capsys.readouterr().out
    assert main([*argv[:-4], "--seed", "another", "--out", str(tmp_path / "o2")]) == 64
    assert not (tmp_path / "o2").exists()  # refused before anything is written


def test_validate_checks_the_format_without_the_course_seed(tmp_path, capsys):
    path = tmp_path / "answers.toml"
    path.write_text('exercise = "loss"\nstudent = "s001"\n[answers]\nq1 = "12"\n# q2 = 11\n'
                    'q4 = "2, 7"\nq5 = "b)"\nq6 = "33.33%"\nq7 = "maybe"\nq9 = 1\n')
    assert main(["exercise", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "q9 is not a question of loss" in out
    assert "your answer is inside a comment" in out
    assert "expected yes or no" in out
    assert "33.33" in out
    assert "4 to mend before handing in" in out  # q2 (comment), q3 (none), q7, q9
    path.write_text('exercise = "loss"\nstudent = "s001"\n[answers]\n' + "".join(
        f'q{i} = "{v}"\n' for i, v in enumerate(["1", "2", "3", "[4]", "a", "5%", "yes"], 1)))
    assert main(["exercise", "validate", str(path)]) == 0


# ---------------------------------------------------------------- summary over an LMS download
def _download(course: Path, tmp_path: Path) -> Path:
    """A Moodle-style download: one folder per submitter. Bob handed in Alice's numbers under
    his own name (copied); Alice's own file also sits in a folder named for Bob (renamed), and
    Alice handed in twice (duplicated)."""
    from socketlab.exercises import answers_text, load

    alice, bob = (load(course, "handshake", s, seed=SEED) for s in ("alice", "bob"))
    key = {q: a.value for q, a in alice.key().items()}
    subs = tmp_path / "download"
    for folder, text in {"Alice A_101_assignsubmission_file_": answers_text(alice, key),
                         "Bob B_102_assignsubmission_file_": answers_text(bob, key),
                         "bob_late_assignsubmission_file_": answers_text(alice, key)}.items():
        (subs / folder).mkdir(parents=True)
        (subs / folder / "answers.toml").write_text(text)
    (subs / ".hidden").mkdir()
    (subs / ".hidden" / "x.toml").write_text("not read")
    return subs


def test_summary_walks_a_download_and_gives_per_student_verdicts(course, tmp_path):
    from socketlab.exercises.summary import summarise

    s = summarise(_download(course, tmp_path), course, SEED)
    assert s.problems == ()
    by_folder = {h.path.parent.name.split("_")[0]: h for h in s.handed}
    assert set(by_folder) == {"Alice A", "Bob B", "bob"}
    copied = by_folder["Bob B"]
    assert copied.copied_from == "alice"
    assert copied.verdict.startswith("fits alice's capture: 3 of 3 answers where the two differ")
    own = by_folder["Alice A"]
    assert (own.copied_from, own.verdict) == ("", "own capture (3 of 3 answers right where "
                                                  "captures differ)")
    assert "one of 2 files from alice" in "; ".join(own.flags)
    renamed = by_folder["bob"]
    assert "the file's name says bob, its content alice" in renamed.flags
    wide = {q.question for q in s.questions if q.class_wide}
    assert wide == {"q3", "q4", "q5", "q6", "q7"}  # the same for alice and bob: no signal


def test_grades_csv_and_feedback_files(course, tmp_path, capsys):
    import csv

    grades, feedback = tmp_path / "grades.csv", tmp_path / "feedback"
    assert main(["exercise", "summary", str(_download(course, tmp_path)), "--dir", str(course),
                 "--seed", SEED, "--grades", str(grades), "--feedback", str(feedback)]) == 0
    assert "grades written to" in capsys.readouterr().err
    rows = list(csv.DictReader(grades.open()))
    assert [r["student"] for r in rows] == ["alice", "bob"]
    alice, bob = rows
    assert (alice["score"], alice["q1"]) == ("", "")  # two files: the teacher decides
    assert "one of 2 files from alice" in alice["flags"]
    assert (bob["score"], bob["out_of"], bob["q1"], bob["q3"]) == ("5", "8", "0", "1")
    assert bob["verdict"].startswith("fits alice's capture")
    files = sorted(p.name for p in feedback.iterdir())
    assert len(files) == 3
    text = (feedback / "handshake-bob.txt").read_text()
    assert text.startswith("handshake: bob, 5 of 8 right")
    assert "q1: you answered" in text
    assert "frame 1 of client.pcap" in text
    import json

    assert main(["exercise", "summary", str(tmp_path / "download"), "--dir", str(course),
                 "--seed", SEED, "--json"]) == 0
    students = json.loads(capsys.readouterr().out)["students"]
    assert sorted(s["copied_from"] for s in students) == ["", "", "alice"]


def test_check_feedback_file(course, tmp_path, capsys):
    from socketlab.exercises import answers_text, load

    alice = load(course, "handshake", "alice", seed=SEED)
    path = tmp_path / "a.toml"
    path.write_text(answers_text(alice, {q: a.value for q, a in alice.key().items()})
                    .replace("\nq1 =", "\n# q1 ="))
    code = main(["exercise", "check", "handshake", str(path), "--student", "alice", "--dir",
                 str(course), "--seed", SEED, "--feedback", str(tmp_path / "fb.txt")])
    assert code == 1
    assert "your answers to q1 are inside comments" in capsys.readouterr().err
    assert "q1: your answer is inside a comment" in (tmp_path / "fb.txt").read_text()


def test_resuming_with_pdf_prints_the_pdfs_that_are_missing(course, capsys):
    from socketlab.exercises.render import find_browser

    if find_browser() is None:
        pytest.skip("no chromium on PATH")
    code = main(["exercise", "start", "handshake", "--student", "alice", "--dir", str(course),
                 "--seed", SEED, "--pdf"])
    assert code == 0
    assert "(printed now)" in capsys.readouterr().err
    assert (course / "handshake-alice" / "worksheet.pdf").read_bytes().startswith(b"%PDF")


def test_the_steady_rate_leaves_out_the_labs_start():
    from socketlab.exercises.classroom import Prepared

    p = Prepared(seconds=30.0, ends=[8.0, 9.0, 12.0, 14.0, 15.0, 18.0])  # labs up at about 7 s
    assert p.steady_per_minute(2) == pytest.approx(60 * 4 / (18.0 - 9.0))
    assert p.steady_per_minute(1) == pytest.approx(60 * 5 / 10.0)
    assert Prepared(ends=[5.0, 6.0]).steady_per_minute(2) is None  # one worksheet per lab
