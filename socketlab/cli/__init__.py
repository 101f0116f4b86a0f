"""The command line, `socketlab ...`: a thin layer over the API (see app.py)."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys

INTERRUPTED = 130
_ended: list[int] = []  # the command's exit code, once this process's command has ended


def main(argv=None, out=None, err=None) -> int:
    """The `socketlab` command (argv None: this process is the command), or one in-process."""
    if argv is None:
        atexit.register(_leave)  # the first exit handler: run after every other (see _leave)
    # SIGTERM (`kill PID`, `timeout`, CI runners) is handled as Ctrl-C from the first moment,
    # before the heavy imports: an early signal then ends with one true line, no traceback.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        from socketlab.cli.app import main as run

        code = run(argv, out, err)
    except KeyboardInterrupt:  # before app.py's own boundary was reached: nothing was done
        print("interrupted", file=err or sys.stderr)
        code = INTERRUPTED
    if argv is not None:
        signal.signal(signal.SIGTERM, previous)
        return code
    # This process is the command, and it is over: a signal now has nothing left to stop and
    # must not turn its exit into a kill.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    if code == INTERRUPTED:
        # CPython (3.11) marks a KeyboardInterrupt raised inside exec()'d code (a dataclass
        # being made during an import) as unhandled even once caught, and would then end
        # the process by SIGINT instead of with this exit code: leave with it directly.
        _flush()
        os._exit(code)
    _ended.append(code)
    return code


def _leave() -> None:
    """Once Python has waited for any thread still working and run every other exit handler
    (registered after this one, so run before it), leave with the command's exit code:
    tearing down each module and object one by one would take 0.02-0.04 s of every command
    for nothing, as every lab, file and folder was closed by its own `with` (Instagram skips
    it in its servers the same way). A command that never ended is left to Python."""
    if _ended:
        _flush()
        os._exit(_ended[-1])


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe, a closed stream
            stream.flush()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
