"""One start at a time per lab name (startlock): a second start of the same name waits for
the first and says so; another name does not wait. The holder is another process, as it is
when two `socketlab up` run at once."""

from __future__ import annotations

import subprocess
import sys
import threading

from socketlab.lab.startlock import slot, starting

HOLDER = """
import sys
from pathlib import Path
from socketlab.lab.startlock import starting
with starting(sys.argv[1], lock_file=Path(sys.argv[2])):
    print("held", flush=True)
    sys.stdin.readline()  # until the test lets go
"""


def test_a_second_start_of_a_name_waits_for_the_first_and_says_so(tmp_path):
    lock = tmp_path / "starts.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "lab-a", str(lock)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    said, entered, asked = [], threading.Event(), threading.Event()

    def second() -> None:
        with starting("lab-a", lambda m: (said.append(m), asked.set()), lock_file=lock):
            entered.set()

    try:
        assert holder.stdout.readline() == "held\n"
        waiter = threading.Thread(target=second, daemon=True)
        waiter.start()
        assert asked.wait(10)
        assert said == ["another start of lab 'lab-a' is under way: waiting for it to end"]
        assert not entered.is_set()  # the first still holds it
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert entered.wait(10)
        waiter.join(10)
    finally:
        holder.kill()
        holder.wait(10)


def test_another_name_does_not_wait(tmp_path):
    lock = tmp_path / "starts.lock"
    assert slot("lab-a") != slot("lab-b")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "lab-a", str(lock)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == "held\n"
        said = []
        with starting("lab-b", said.append, lock_file=lock):
            pass
        assert said == []
    finally:
        holder.kill()
        holder.wait(10)
