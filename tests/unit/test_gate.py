"""The gated start: how a command is launched in a host (pure), and lab-gate on this machine's
loopback: a program loaded first, run on "go" exactly as `python3 PROGRAM` runs it."""

from __future__ import annotations

import subprocess
import sys

from socketlab.lab.process import GATE, PID_PREFIX, launch_argv
from tests.unit import loopback

LAB_GATE = loopback.PROGRAMS.parent / "bin" / "lab-gate"


def test_a_command_prints_its_pid_and_is_bounded_in_time():
    argv = launch_argv(["ss", "-tan"], 5)
    assert argv[:2] == ["sh", "-c"]
    assert argv[2] == f'echo "{PID_PREFIX}$$"; exec "$@"'
    assert argv[3:] == ["sh", "timeout", "-k", "1", "5", "ss", "-tan"]


def test_a_gated_command_waits_for_go_in_the_shell():
    argv = launch_argv(["nc", "-l", "7"], 5, gated=True)
    assert 'read go; [ "$go" = go ] || exit 125; ' in argv[2]


def test_a_gated_lab_program_waits_warm_in_lab_gate():
    argv = launch_argv(["python3", "/lab/programs/tcp_client.py", "--count", "2"], 20, gated=True)
    assert "read go" not in argv[2]  # lab-gate does the waiting, its interpreter started
    assert argv[3:] == ["sh", "timeout", "-k", "1", "20", "python3", GATE, "/lab/programs/tcp_client.py",
                        "--count", "2"]


def test_lab_gate_runs_the_program_on_go_as_python_would():
    port = loopback.free_port()
    gate = subprocess.Popen([sys.executable, str(LAB_GATE), str(loopback.PROGRAMS / "udp_client.py"),
                             "--host", loopback.LOOPBACK, "--port", str(port), "--message", "hi"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=loopback.env())
    out, err = gate.communicate("go\n", timeout=loopback.WAIT)
    assert gate.returncode == 0, err
    assert out.splitlines()[0].startswith("sent ")  # its own events, its lablog found beside it


def test_lab_gate_without_go_never_runs_the_program():
    gate = subprocess.run([sys.executable, str(LAB_GATE), str(loopback.PROGRAMS / "udp_client.py")],
                          input="stop\n", capture_output=True, text=True, timeout=loopback.WAIT)
    assert (gate.returncode, gate.stdout) == (125, "")


def test_a_gated_lab_program_run_as_the_program_user_waits_in_lab_gate_as_that_user():
    argv = launch_argv(["lab-program", "python3", "/lab/programs/tcp_client.py"], 20, gated=True)
    assert "read go" not in argv[2]
    assert argv[3:] == ["sh", "timeout", "-k", "1", "20", "lab-program", "python3", GATE,
                        "/lab/programs/tcp_client.py"]


def test_lab_gate_imports_the_programs_lablog_before_go(tmp_path):
    """The program's own folder is searched first, and its lablog is loaded while it waits."""
    (tmp_path / "lablog.py").write_text("print('lablog loaded', flush=True)\n")
    (tmp_path / "prog.py").write_text("print('the program ran')\n")
    gate = subprocess.run([sys.executable, str(LAB_GATE), str(tmp_path / "prog.py")],
                          input="stop\n", capture_output=True, text=True, timeout=loopback.WAIT)
    assert (gate.returncode, gate.stdout) == (125, "lablog loaded\n")
