"""One start at a time per lab name (startlock): a second start of the same name waits for
the first and says so; another name does not wait; nothing is left once the starts are
over. The holder is another process, as it is when two `socketlab up` run at once."""

from __future__ import annotations

import subprocess
import sys
import threading

from socketlab.lab.startlock import lock_path, starting

HOLDER = """
import sys
from pathlib import Path
from socketlab.lab.startlock import starting
with starting(sys.argv[1], lock_dir=Path(sys.argv[2])):
    print("held", flush=True)
    sys.stdin.readline()  # until the test lets go
"""


def holder(project: str, lock_dir) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, project, str(lock_dir)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_second_start_of_a_name_waits_for_the_first_says_so_and_leaves_nothing(tmp_path):
    said, entered, asked = [], threading.Event(), threading.Event()

    def second() -> None:
        with starting("lab-a", lambda m: (said.append(m), asked.set()), lock_dir=tmp_path):
            entered.set()

    first = holder("lab-a", tmp_path)
    try:
        waiter = threading.Thread(target=second, daemon=True)
        waiter.start()
        assert asked.wait(10)
        assert said == ["another start of lab 'lab-a' is under way: waiting for it to end"]
        assert not entered.is_set()  # the first still holds it
        first.stdin.write("\n")
        first.stdin.flush()
        assert entered.wait(10)  # the first removed its file: the second took a new one
        waiter.join(10)
    finally:
        first.kill()
        first.wait(10)
    assert not lock_path("lab-a", tmp_path).exists()
    assert list(tmp_path.iterdir()) == []


def test_another_name_does_not_wait(tmp_path):
    first = holder("lab-a", tmp_path)
    try:
        said = []
        with starting("lab-b", said.append, lock_dir=tmp_path):
            pass
        assert said == []
    finally:
        first.kill()
        first.wait(10)


def test_threads_of_one_process_wait_for_each_other(tmp_path):
    """flock is per open file: two labs of one name started by threads of one process (a
    class prepared with --jobs) exclude each other as two processes do."""
    first_in, let_go, second_waits, second_in = (threading.Event() for _ in range(4))

    def first() -> None:
        with starting("lab-a", lock_dir=tmp_path):
            first_in.set()
            let_go.wait(10)

    def second() -> None:
        with starting("lab-a", lambda _m: second_waits.set(), lock_dir=tmp_path):
            second_in.set()

    threads = [threading.Thread(target=first, daemon=True), threading.Thread(target=second, daemon=True)]
    threads[0].start()
    assert first_in.wait(10)
    threads[1].start()
    assert second_waits.wait(10)
    assert not second_in.is_set()
    let_go.set()
    assert second_in.wait(10)
    for t in threads:
        t.join(10)
