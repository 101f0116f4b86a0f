"""The command line, `socketlab ...`: a thin layer over the API (see main.py)."""

from __future__ import annotations

import signal
import sys


def main(argv=None, out=None, err=None) -> int:
    """The `socketlab` command (argv None: this process is the command), or one in-process."""
    # SIGTERM (`kill PID`, `timeout`, CI runners) is handled as Ctrl-C from the first moment,
    # before the heavy imports: an early signal then ends with one true line, no traceback.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        from socketlab.cli.main import main as run

        return run(argv, out, err)
    except KeyboardInterrupt:  # before main.py's own boundary was reached: nothing was done
        print("interrupted", file=err or sys.stderr)
        return 130
    finally:
        if argv is None:  # the command is over: a signal now has nothing left to stop, and
            for signum in (signal.SIGINT, signal.SIGTERM):  # must not turn its exit into a kill
                signal.signal(signum, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
