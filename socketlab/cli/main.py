"""socketlab's command line: parse, call one API function, render. The one error boundary.

    socketlab demo                 build if needed, up, the TCP then the UDP exchange, down
    socketlab up | status | down   a lab that stays up between commands
    socketlab run tcp|udp          the post's server and client, side by side
    socketlab exec HOST CMD...     any command in a lab host
    socketlab doctor               what this machine offers the lab
    socketlab bench lifecycle      measured build, start, run and stop times

Each group of commands lives in its own module (lab, run, experiments, shape, tools) and adds
its subcommands through `register`; this module only assembles them and runs one.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from rich.console import Console

from socketlab import __version__
from socketlab.cli.common import ExitCode
from socketlab.errors import LabError


def build_parser() -> argparse.ArgumentParser:
    from socketlab.cli import experiments, lab, run, shape, tools

    parser = argparse.ArgumentParser(prog="socketlab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"socketlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and compose output")
    parser.add_argument("-p", "--project", help="lab name (compose project; env SOCKETLAB_PROJECT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, handler: Callable) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_, description=help_)
        cmd.set_defaults(handler=handler)
        return cmd

    for group in (lab, run, experiments, shape, tools):
        group.register(command)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run one socketlab command; return its exit code (callable in-process by tests)."""
    stdout = Console(file=out or sys.stdout, highlight=False, emoji=False)
    stderr = Console(file=err or sys.stderr, highlight=False, emoji=False, stderr=err is None)
    parser = build_parser()
    try:  # argparse writes help and usage errors itself: to our streams, not sys's
        with contextlib.redirect_stdout(stdout.file), contextlib.redirect_stderr(stderr.file):
            args = parser.parse_args(argv)
    except SystemExit as e:
        return ExitCode.OK if e.code == 0 else ExitCode.USAGE
    previous = signal.signal(signal.SIGTERM, _terminate)  # `kill`: clean up as for Ctrl-C
    try:
        return int(args.handler(args, stdout, stderr))
    except LabError as e:
        if args.debug:
            raise
        stderr.print(f"[bold red]error:[/] {e}", markup=True, soft_wrap=True)
        if e.hint:
            stderr.print(f"[dim]hint:[/] {e.hint}", markup=True, soft_wrap=True)
        return ExitCode.LAB_ERROR
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM (below): the outcome only if checked
        outcome = getattr(e, "outcome", "")
        stderr.print(f"interrupted: {outcome}" if outcome else "interrupted", soft_wrap=True)
        return ExitCode.INTERRUPTED
    except Exception as e:
        if args.debug or not type(e).__module__.startswith("docker."):
            raise
        # The engine said no to something the lab's own checks did not foresee: one line.
        said = getattr(e, "explanation", None) or str(e)
        stderr.print(f"[bold red]error:[/] the Docker engine refused: {said}", markup=True,
                     soft_wrap=True)
        stderr.print("[dim]hint:[/] run again with --debug to see where", markup=True, soft_wrap=True)
        return ExitCode.LAB_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
