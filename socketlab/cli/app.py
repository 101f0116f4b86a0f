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
from typing import NoReturn, TextIO

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
  socketlab experiments       check the post's claims in the lab (else a fresh one); a report
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

    parser = _Parser(prog="socketlab", description=HELP, epilog=EPILOG, formatter_class=_TopHelp)
    parser.add_argument("--version", action="version", version=f"socketlab {__version__}")
    _shared_options(parser, after_command=False)
    shared = _Parser(add_help=False)  # the same options after the command
    _shared_options(shared, after_command=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")

    def command(name: str, help_: str, handler: Callable) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_, description=help_, parents=[shared],
                             formatter_class=_Filled)
        cmd.set_defaults(handler=handler)
        return cmd

    # exercise's own subcommands take the shared options too; a function holds an attribute
    # at run time, which mypy cannot type on a def: the ignore is for that alone
    command.shared = shared  # type: ignore[attr-defined]
    word = command_named(argv) if argv is not None else None
    named = COMMANDS.get(word or "")
    parser.command = word if named else None  # "unrecognized arguments" is the top's refusal
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


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose refusals end as every other error does: `error:` and `hint:`.
    Its subcommands' parsers are of this class too (argparse makes them of the parent's)."""

    command: str | None = None  # the command the argv names, if it names one it knows

    def error(self, message: str) -> NoReturn:
        prog = f"{self.prog} {self.command}" if self.command else self.prog
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"error: {message}\nhint: `{prog} --help` shows what it takes\n")


class _Filled(argparse.HelpFormatter):
    """Help whose {claims} is filled in from the experiments' registry when it is shown, not
    when the parser is built: reading the registry imports every experiment (and, through
    them, http and email), which no command but `experiments` should pay for."""

    def _expand_help(self, action: argparse.Action) -> str:
        return _filled(super()._expand_help(action))

    def _format_text(self, text: str) -> str:
        return super()._format_text(_filled(text))


def _filled(text: str) -> str:
    if "{claims}" not in text:
        return text
    from socketlab.experiments.registry import described

    return text.replace("{claims}", described())


class _TopHelp(_Filled, argparse.RawDescriptionHelpFormatter):
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
    # Text is printed as text (markup=False): a message quoting compose, Docker or the user
    # keeps its square brackets; the few styled words ask for markup where they are printed.
    stdout = LaterConsole(file=out or sys.stdout, highlight=False, emoji=False, markup=False)
    stderr = LaterConsole(file=err or sys.stderr, highlight=False, emoji=False, markup=False,
                          stderr=err is None)
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
        from rich.markup import escape  # the message's own brackets are text

        stderr.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, soft_wrap=True)
        if e.hint:
            stderr.print(f"[dim]hint:[/] {escape(e.hint)}", markup=True, soft_wrap=True)
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
        from rich.markup import escape

        said = getattr(e, "explanation", None) or str(e)
        stderr.print(f"[bold red]error:[/] the Docker engine refused: {escape(said)}", markup=True,
                     soft_wrap=True)
        stderr.print("[dim]hint:[/] run again with --debug to see where", markup=True, soft_wrap=True)
        return ExitCode.LAB_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
