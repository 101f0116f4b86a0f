"""Meanwhile: work beside the caller's, answered (or raised) in the caller's thread."""

import threading

import pytest

from socketlab.meanwhile import Meanwhile, load_meanwhile


def test_the_answer_is_the_work_done_in_another_thread():
    asked = Meanwhile(lambda: threading.current_thread() is not threading.main_thread())

    assert asked.answer() is True


def test_what_the_work_raised_is_raised_by_answer():
    def fails():
        raise ValueError("no such state file")

    asked = Meanwhile(fails)

    with pytest.raises(ValueError, match="no such state file"):
        asked.answer()


def test_the_work_runs_while_the_caller_waits():
    started, release = threading.Event(), threading.Event()

    def work():
        started.set()
        release.wait(5)
        return "done"

    asked = Meanwhile(work)
    assert started.wait(5)  # running before anyone asked for the answer
    release.set()
    assert asked.answer() == "done"


def test_load_meanwhile_imports_and_leaves_missing_modules_to_their_users(tmp_path, monkeypatch):
    import sys

    (tmp_path / "socketlab_loaded_meanwhile.py").write_text("")  # imported by nothing else
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "socketlab_loaded_meanwhile", raising=False)

    load_meanwhile("socketlab_loaded_meanwhile", "socketlab_no_such_module").answer()

    assert "socketlab_loaded_meanwhile" in sys.modules
