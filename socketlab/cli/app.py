"""socketlab's command line: parse, call one API function, render. The one error boundary.

Each group of commands lives in its own module (lab, run, experiments, shape, tools) and adds
its subcommands through `register`; this module only assembles them and runs one. The
top-level help (HELP below) is written for the people who type the commands.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from socketlab import __version__
from socketlab.cli.common import ExitCode, LaterConsole
from socketlab.errors import ConfigError, LabError, UnknownHost

HELP = """\
A network lab in containers: two hosts on their own private bridge, the post's TCP and UDP
socket programs run between them, real packets, and answers computed from what was observed.

start here:
  socketlab demo              the post's TCP and UDP exchanges, start to finish (builds, up, down)
  socketlab up                start the lab and leave it running; then, as often as you like:
  socketlab run tcp           the TCP server and client, side by side (run udp: the UDP pair)
  socketlab shell client      a terminal in a host: ping, nc, iperf3, tracepath, ss, tcpdump
  socketlab craft client tcp --flags S --answer 1
                              a lone SYN, made with scapy in the client: what answers?
  socketlab shape client --delay 100ms --loss 5%
                              impair the client's link (socketlab shape client --clear)
  socketlab experiments       check the post's claims C1-C10 in a fresh lab; writes a report
  socketlab down              remove the lab (socketlab ls: every lab on this engine)

across machines:
  socketlab sandbox up        a two-node Docker Swarm on this machine (root; sandbox down after)
  socketlab --engine swarm up the lab's hosts on swarm nodes, joined by an overlay (VXLAN)
"""

EPILOG = """\
-p NAME, --debug, --engine and --place work before or after the command.
`socketlab COMMAND --help` tells more.
exit codes: 0 done, 1 what ran failed (e.g. connect() refused; a claim that failed with
--fail-on), 2 socketlab could not do it (the message says why and what to do), 64 bad usage
(an unknown command or option, or a value that cannot work), 130 interrupted.
shell completion: eval "$(socketlab completion bash)" (or zsh): see `socketlab completion -h`.
"""


# Each command's group: the module under socketlab/cli that registers it. A command imports
# only its own group (`run tcp` never loads the experiments or the exercises); the help, a
# usage error and the shell completion get them all.
COMMANDS = {
    "build": "lab", "up": "lab", "down": "lab", "status": "lab", "cp": "lab", "exec": "lab",
    "shell": "shell", "ls": "ls", "reap": "ls", "run": "run", "demo": "run", "craft": "craft",
    "experiments": "experiments", "experiment": "experiments", "report": "experiments",
    "exercise": "exercise", "shape": "shape", "doctor": "tools", "bench": "tools",
    "completion": "tools", "sandbox": "sandbox", "watch": "watch",
}
GROUPS = tuple(dict.fromkeys(COMMANDS.values()))  # in the help's order
_VALUED = ("-p", "--project", "--engine", "--place")  # the options before a command that take a value


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the argv it will parse, only the group of the command it
    names (every group when it names none it knows: help, a typo)."""
    import importlib

    parser = argparse.ArgumentParser(prog="socketlab", description=HELP, epilog=EPILOG,
                                     formatter_class=_TopHelp)
    parser.add_argument("--version", action="version", version=f"socketlab {__version__}")
    _shared_options(parser, after_command=False)
    shared = argparse.ArgumentParser(add_help=False)  # the same options after the command
    _shared_options(shared, after_command=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")

    def command(name: str, help_: str, handler: Callable) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_, description=help_, parents=[shared])
        cmd.set_defaults(handler=handler)
        return cmd

    command.shared = shared  # type: ignore[attr-defined]  (for a group's own subcommands)
    named = COMMANDS.get(command_named(argv)) if argv is not None else None
    for group in (named,) if named else GROUPS:
        importlib.import_module(f"socketlab.cli.{group}").register(command)
    return parser


def command_named(argv: Sequence[str]) -> str | None:
    """The command an argv names: its first word that is neither an option nor an option's value."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


class _TopHelp(argparse.RawDescriptionHelpFormatter):
    """The help as written (HELP, EPILOG), and the commands listed without a COMMAND line."""

    def _format_action(self, action: argparse.Action) -> str:
        if isinstance(action, argparse._SubParsersAction):  # argparse has no public hook for it
            return "".join(self._format_action(a) for a in action._get_subactions())
        return super()._format_action(action)


def _shared_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """-p, --debug, --engine and --place. After the command they have no default (SUPPRESS), so that one given
    before the command stands unless it is given again after it."""
    unset = argparse.SUPPRESS
    parser.add_argument("--debug", action="store_true", default=unset if after_command else False,
                        help="show tracebacks and compose output")
    parser.add_argument("-p", "--project", metavar="NAME", default=unset if after_command else None,
                        help="the lab's name (a compose project; default socketlab; "
                             "env SOCKETLAB_PROJECT)")
    parser.add_argument("--engine", choices=["compose", "swarm"], default=unset if after_command else None,
                        help="where the lab runs: one Docker engine (compose, the default) or a "
                             "Docker Swarm (nodes from SOCKETLAB_SWARM_NODES, else the sandbox); "
                             "env SOCKETLAB_ENGINE")
    parser.add_argument("--place", metavar="HOST=NODE,...", default=unset if after_command else None,
                        help="swarm: which node runs which host (its socketlab.node label or "
                             "hostname; default round-robin); env SOCKETLAB_SWARM_PLACE")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run one socketlab command; return its exit code (callable in-process by tests)."""
    stdout = LaterConsole(file=out or sys.stdout, highlight=False, emoji=False)
    stderr = LaterConsole(file=err or sys.stderr, highlight=False, emoji=False, stderr=err is None)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:  # argparse writes help and usage errors itself: to our streams, not sys's
        with contextlib.redirect_stdout(out or sys.stdout), contextlib.redirect_stderr(err or sys.stderr):
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
        # a value or a name that cannot work is bad usage, as argparse's own refusals are
        return ExitCode.USAGE if isinstance(e, (ConfigError, UnknownHost)) else ExitCode.LAB_ERROR
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
