"""How the `socketlab` process ends: with the command's exit code and all of its output, once
every thread still working has ended and every other exit handler has run (Python's own
teardown of its modules is skipped)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _as_the_command(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_the_exit_code_and_the_output_are_the_commands():
    done = subprocess.run([sys.executable, "-m", "socketlab", "--version"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert (done.returncode, done.stdout.split()[0]) == (0, "socketlab")

    bad = subprocess.run([sys.executable, "-m", "socketlab", "no-such-command"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 64
    assert "invalid choice" in bad.stderr


def test_a_later_exit_handler_and_a_working_thread_still_finish(tmp_path):
    script = """
import atexit, sys, threading, time
from pathlib import Path
import socketlab.cli
out = Path(sys.argv[1])
sys.argv = ["socketlab", "--version"]
code = socketlab.cli.main()
def late():
    time.sleep(0.3)
    (out / "thread").write_text("done")
threading.Thread(target=late).start()            # not a daemon: Python waits for it
atexit.register(lambda: (out / "handler").write_text("ran"))
print("printed last", end="")                    # still buffered when the process ends
sys.exit(code)
"""
    done = _as_the_command(script, tmp_path)

    assert done.returncode == 0
    assert done.stdout.endswith("printed last")
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "handler").read_text() == "ran"


def test_the_command_run_in_process_leaves_its_caller_alone(tmp_path):
    script = """
import atexit, sys
from pathlib import Path
import socketlab.cli
out = Path(sys.argv[1])
code = socketlab.cli.main(["--version"])         # in-process: the caller's exit is its own
atexit.register(lambda: (out / "handler").write_text("ran"))
sys.exit(code + 3)
"""
    done = _as_the_command(script, tmp_path)

    assert done.returncode == 3
    assert (tmp_path / "handler").read_text() == "ran"


def test_pythons_teardown_of_the_modules_is_skipped(tmp_path):
    """What only the module teardown would do (an object's __del__ at exit) is not done: the
    process leaves once the handlers have run."""
    script = """
import sys
from pathlib import Path
import socketlab.cli
out = Path(sys.argv[1])
class Torn:
    def __del__(self):
        (out / "torn").write_text("down")
torn = Torn()
sys.argv = sys.argv[:1] + ["--version"]
sys.exit(socketlab.cli.main())
"""
    done = _as_the_command(script, tmp_path)

    assert done.returncode == 0
    assert not (tmp_path / "torn").exists()
