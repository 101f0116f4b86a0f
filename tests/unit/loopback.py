"""Running the lab's programs on this machine's loopback, for the unit tests.

Every client gets --host 127.0.0.1 and every server --bind 127.0.0.1; the environment also
sets SOCKETLAB_SERVER_IP=127.0.0.1, so a forgotten --host can never send to the post's
192.168.33.5 (nothing on this host may send to a 192.168.x address).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

PROGRAMS = Path(__file__).resolve().parents[2] / "images" / "lab" / "programs"
LOOPBACK = "127.0.0.1"
WAIT = 10.0  # upper bound for any single wait, in seconds


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SOCKETLAB_")}
    return {**base, "SOCKETLAB_SERVER_IP": LOOPBACK, "PYTHONUNBUFFERED": "1", **extra}


def argv(program: str, *args: str) -> list[str]:
    return [sys.executable, str(PROGRAMS / program), *args]


def run(program: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run a program to completion (bounded by WAIT) and capture its output."""
    return subprocess.run(argv(program, *args), capture_output=True, text=True, timeout=WAIT,
                          env=env(**extra_env))


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A loopback port that was free a moment ago (nothing listens on it)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]
