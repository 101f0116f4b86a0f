"""A pytest run that is cancelled, or was killed: what the plugin does about it.

- SIGTERM is handled as Ctrl-C (KeyboardInterrupt): tests end, their labs are removed.
- Under pytest-xdist, CI runners that cancel signal the main process alone: it passes SIGTERM on
  to its workers, and before it ends (and xdist stops the workers for good) it waits until none
  of the workers' labs is left (their owner labels say whose they are), for at most WAIT_S.
- A hard kill (SIGKILL, an OOM kill) cannot be handled: the next run starts by removing stale
  labs (socketlab.lab.reaper), naming each; `--socketlab-no-reap` turns that off.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

WAIT_S = 120.0  # the most the main process waits for its workers' labs to be removed
QUIET_S = 3.0  # and how long none of them must be seen (a worker may be just starting compose)
POLL_S = 0.5


class Cancel:
    """Registered by the plugin for the whole run (the main process and each worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.workers: list[int] = []  # the processes SIGTERM was passed on to
        self.controller = not hasattr(config, "workerinput") and \
            config.getoption("dist", "no") != "no"
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self.terminate)  # `kill`: tear down as for Ctrl-C

    def terminate(self, signum: int, _frame: object) -> None:
        if self.controller and not self.workers:
            from socketlab.lab.owner import children

            self.workers = children(os.getpid())
            for pid in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
        raise KeyboardInterrupt

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """The run starts by removing stale labs (a killed run's, or past their time to live;
        never a live owner's), once (not in the workers), naming each in the terminal."""
        if hasattr(self.config, "workerinput") or self.config.getoption("socketlab_no_reap"):
            return
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        for line in _reap():
            if terminal is not None:
                terminal.write_line(f"socketlab: {line}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Before xdist stops the workers: if they were signalled, wait for their labs to go."""
        if not self.workers:
            return
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one cancel is enough: let them finish
        left = wait_for_labs_gone(self.workers)
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(
                f"socketlab: SIGTERM passed on to {len(self.workers)} workers; "
                + (f"their labs still there after {WAIT_S:.0f} s: {', '.join(left)} "
                   "(`socketlab reap` removes them once the workers are gone)" if left
                   else "none of their labs is left"))


def wait_for_labs_gone(pids: list[int], *, clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Wait until none of these processes' labs has been seen for QUIET_S (at most WAIT_S);
    the labs still there at the end (empty: none)."""
    from socketlab.lab.docker_http import DockerHTTP
    from socketlab.lab.owner import Machine
    from socketlab.lab.reaper import labs_of

    engine, host = DockerHTTP.from_env(), Machine.here().host
    deadline = clock() + WAIT_S
    quiet_since = clock()
    while True:
        try:
            left = labs_of(engine, pids, host)
        except Exception:  # the engine went away: nothing more can be seen or done
            return []
        now = clock()
        if left:
            quiet_since = now
        elif now - quiet_since >= QUIET_S:
            return []
        if now >= deadline:
            return left
        sleep(POLL_S)


def _reap() -> list[str]:
    from socketlab.lab.docker_http import DockerHTTP
    from socketlab.lab.reaper import reap

    try:
        return [str(lab) for lab in reap(DockerHTTP.from_env())]
    except Exception:  # no engine here: there is nothing of ours on it to remove either
        return []
