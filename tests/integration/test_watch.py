"""`socketlab watch` in a terminal (a pty) against a real lab: the post's TCP exchange run
meanwhile is drawn as it happens (SYN, SYN-ACK, ACK, data, FIN), each packet once, and
Ctrl-C ends every tcpdump in the hosts before the command returns."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from socketlab.act.programs import Options, run_pair
from socketlab.lab.lab import Lab

pytestmark = pytest.mark.integration


def read_until(fd: int, pattern: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, text, re.S) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                text += os.read(fd, 65536).decode(errors="replace")
            except OSError:  # the pty's other side closed: the command ended
                break
    return text


def test_watch_draws_the_exchange_live_and_leaves_no_tcpdump(lab: Lab):
    main, side = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "socketlab", "-p", lab.config.project,
                             "watch", "--for", "120"], stdin=side, stdout=side, stderr=side,
                            close_fds=True)
    os.close(side)
    try:
        text = read_until(main, r"Ctrl-C stops", "", 60)
        assert "watching client, server" in text, text
        time.sleep(0.5)  # both tcpdumps print "listening" after the command says it watches
        run = run_pair(lab, Options("tcp", message="watch,me"))
        assert run.ok
        text = read_until(main, r"FIN-ACK.*FIN-ACK.*\n.*ACK", text, 15)
        rows = [line for line in text.splitlines() if " ms " in line]
        labels = [re.sub(r"[─▶◀|]", " ", r).split()[3] for r in rows]
        assert labels[:3] == ["SYN", "SYN-ACK", "ACK"], rows
        assert "PSH-ACK" in labels
        assert labels.count("SYN") == 1  # once, though both hosts captured it
        assert "─▶| server" in rows[0]
        assert "|◀─" in rows[1]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        text = read_until(main, r"interrupted: .*\n", text, 5)
        assert re.search(r"interrupted: \d+ packets drawn; every tcpdump has ended", text), text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    for host in ("client", "server"):
        left = lab.exec(host, ["pgrep", "-a", "tcpdump"], timeout=10, instruments=True)
        assert left.exit_code == 1, left.stdout
