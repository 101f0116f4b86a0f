"""A newcomer's first session: demo, doctor, up, run, a shell in a host, down."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.journeys.conftest import leftovers

pytestmark = pytest.mark.integration


def shell_session(journey, host: str, typed: list[str], timeout: float = 60) -> tuple[int, str]:
    """`socketlab shell HOST` under a pseudo-terminal: each line typed once the prompt is there;
    the exit code and everything the terminal showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {k: v for k, v in journey.env.items() if k not in ("COLUMNS", "NO_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "socketlab", "shell", host], cwd=journey.cwd,
                            env=env, stdin=slave, stdout=slave, stderr=slave)
    seen, deadline = b"", time.monotonic() + timeout
    try:
        pending = list(typed)
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.3)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
            if pending and seen.rstrip().endswith(b"#"):  # the host's prompt: type the next line
                os.write(master, pending.pop(0).encode() + b"\r")
                seen += b"\n"
        code = proc.wait(max(1.0, deadline - time.monotonic()))
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        return code, seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
        os.close(slave)


def test_newcomer_demo_doctor_up_run_shell_down(journey, docker_client):
    demo = journey.run("demo").stdout
    assert "TCP is a byte stream" in demo
    assert "nothing lost" in demo
    assert "UDP keeps datagrams" in demo
    assert not leftovers(docker_client, journey.project)  # demo leaves nothing

    doctor = journey.run("doctor")  # the first thing a newcomer runs when something is off
    assert "Traceback" not in doctor.stderr
    for row in ("docker engine", "compose", "lab image", "exec round trip", "kernel: tbf"):
        assert row in doctor.stdout, doctor.stdout
    assert "which backend serves which parameter" in doctor.stdout
    report = json.loads(journey.run("doctor", "--json").stdout)
    assert {"ok", "checks", "shaping"} <= set(report), sorted(report)

    up = journey.run("up")
    assert "running" in up.stdout
    assert "server" in up.stdout
    assert "client" in up.stdout
    run = journey.run("run", "tcp").stdout
    assert 'recv(3) -> "hel"' in run
    assert "the server read 11 in 4 recv(3) calls: nothing lost" in run

    code, screen = shell_session(journey, "client", ["echo answer-$((6*7))", "exit"])
    assert code == 0, screen
    assert "answer-42" in screen
    for trouble in ("Traceback", "Bad file descriptor"):
        assert trouble not in screen, screen

    down = journey.run("down")
    assert f"lab '{journey.project}' removed" in down.stdout
    assert not leftovers(docker_client, journey.project)
