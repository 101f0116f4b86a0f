"""Pidfiles of the processes a shaping leaves running (lab-nfq, the --for timer): alive or
not, wait for one, stop one."""

from __future__ import annotations

import contextlib
import os
import signal
import time


def live_pid(path: str) -> int | None:
    """The pid in a pidfile if that process is alive."""
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def wait_pidfile(path: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if live_pid(path):
            return True
        time.sleep(0.05)
    return False


def stop_pidfile(path: str, timeout: float = 3.0) -> None:
    """SIGTERM the process of a pidfile, SIGKILL it if it lingers; remove the pidfile."""
    pid = live_pid(path)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while live_pid(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        if live_pid(path):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
