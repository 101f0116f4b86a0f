"""Run folders: a run is marked incomplete until all its files are written, `report` skips
one that is not finished, and paths that cannot be written are refused before anything runs."""

from __future__ import annotations

import os
import stat

import pytest

from socketlab.cli import common
from socketlab.errors import ConfigError
from socketlab.experiments.registry import select
from socketlab.observe.capture import INCOMPLETE, is_complete, mark_complete, new_run_dir
from socketlab.present import report
from tests.unit.conftest import cli
from tests.unit.test_report import META, synthetic_results


def test_a_new_run_folder_says_it_is_incomplete_until_marked(tmp_path):
    run = new_run_dir(tmp_path, "experiments")

    assert (run / INCOMPLETE).is_file()
    assert not is_complete(run)
    mark_complete(run)
    assert is_complete(run)
    assert list(run.iterdir()) == []


def finished_run(base, name: str, *, complete: bool):
    run = new_run_dir(base / "runs", name)
    report.write_report(synthetic_results(run), META, run)
    if complete:
        mark_complete(run)
    return run


def test_report_skips_a_run_that_did_not_finish(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = finished_run(tmp_path, "experiments", complete=True)
    finished_run(tmp_path, "experiments", complete=False)  # later, killed after its report

    code, out, err = cli("report")

    assert code in (0, 1), err
    assert str(done.relative_to(tmp_path)) in out


def test_report_of_a_named_unfinished_run_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    killed = finished_run(tmp_path, "experiments", complete=False)

    code, out, err = cli("report", str(killed))

    assert (code, out) == (64, "")
    assert err.splitlines()[0] == f"error: the run in {killed} did not finish: its files may be partial"


def test_report_with_only_unfinished_runs_says_there_is_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "20260101-000000-experiments").mkdir(parents=True)  # no verdicts

    code, _out, err = cli("report")

    assert code == 64
    assert "no finished run with a verdicts.json" in err


def test_an_empty_experiment_id_is_refused():
    with pytest.raises(ConfigError, match="an empty experiment id"):
        select([""])
    with pytest.raises(ConfigError, match="an empty experiment id"):
        select(["C1", " "])


def test_experiment_with_an_empty_id_runs_nothing_and_says_why():
    code, out, err = cli("experiment", "")

    assert (code, out) == (64, "")
    assert err.startswith("error: an empty experiment id")


# -- paths checked first -----------------------------------------------------------------------
@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield folder
    folder.chmod(stat.S_IRWXU)


def unwritable(read_only) -> str:
    """A folder this process cannot write in: read-only for a user; for root (who may write
    anywhere), a path through a file."""
    if os.geteuid() != 0:
        return str(read_only / "runs")
    blocker = read_only.parent / "a-file"
    blocker.write_text("")
    return str(blocker / "runs")


def test_a_writable_folder_is_checked_without_leaving_anything(tmp_path):
    target = tmp_path / "a" / "b"

    assert common.writable_folder(target, "--out") == target
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_refused(read_only):
    with pytest.raises(ConfigError, match="--out .*: cannot write there"):
        common.writable_folder(unwritable(read_only), "--out")


def test_a_junit_file_that_cannot_be_written_is_refused(tmp_path, read_only):
    with pytest.raises(ConfigError, match="is a folder"):
        common.writable_file(tmp_path, "--junit")
    with pytest.raises(ConfigError, match="--junit .*: cannot write"):
        common.writable_file(unwritable(read_only) + "/junit.xml", "--junit")
    common.writable_file(tmp_path / "junit.xml", "--junit")
    assert not (tmp_path / "junit.xml").exists()


@pytest.mark.parametrize("argv", [["experiment", "C1", "--out"], ["experiments", "--junit"],
                                  ["run", "tcp", "--capture"]],
                         ids=["out", "junit", "capture"])
def test_commands_refuse_an_unwritable_path_before_docker(argv, read_only, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    path = unwritable(read_only) + ("/junit.xml" if "--junit" in argv else "")

    code, out, err = cli(*argv, path)

    assert (code, out) == (64, "")  # a value that cannot work: bad usage
    assert "cannot write" in err.splitlines()[0]
    assert "Docker" not in err


def test_evidence_todays_judge_cannot_read_is_inconclusive_not_a_traceback(tmp_path):
    run = finished_run(tmp_path, "experiments", complete=True)  # C4 without C4's facts

    results, _meta = report.load_run(run)

    c4 = next(r for r in results if r.experiment.id == "C4")
    assert c4.verdict.status == "inconclusive"
    assert c4.verdict.summary.startswith("the stored evidence does not fit today's judge (KeyError")
