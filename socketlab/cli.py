"""socketlab's command line: parse, call one API function, render. The one error boundary.

    socketlab demo                 build if needed, up, the TCP then the UDP exchange, down
    socketlab up | status | down   a lab that stays up between commands
    socketlab run tcp|udp          the post's server and client, side by side
    socketlab exec HOST CMD...     any command in a lab host
    socketlab doctor               what this machine offers the lab
    socketlab bench lifecycle      measured build, start, run and stop times
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from rich.console import Console

from socketlab.config import HOSTS, PROTOCOLS, LabConfig
from socketlab.errors import LabError


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1         # the command ran, and what it ran failed (e.g. connect refused)
    LAB_ERROR = 2      # socketlab could not do what was asked (a LabError)
    USAGE = 64
    INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="socketlab", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks and compose output")
    parser.add_argument("-p", "--project", help="lab name (compose project; env SOCKETLAB_PROJECT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, handler: Callable) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_, description=help_)
        cmd.set_defaults(handler=handler)
        return cmd

    from socketlab import commands as c

    build = command("build", "build the lab image (and its base, if no registry has one)", c.build)
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build.add_argument("--no-cache", action="store_true", help="rebuild every step")
    build.add_argument("--base", help="base image (default debian:bookworm-slim; env SOCKETLAB_BASE)")
    for name, help_, handler in (("up", "start the lab's two hosts and leave them running", c.up),
                                 ("demo", "the post's TCP and UDP exchanges, start to finish",
                                  c.demo)):
        _topology_options(command(name, help_, handler))
    down = command("down", "remove the lab (hosts and bridge)", c.down)
    down.add_argument("--all", action="store_true", help="remove every socketlab lab on this engine")
    command("status", "show the lab's hosts", c.status)
    run = command("run", "run the post's server and client in the running lab", c.run)
    run.add_argument("proto", choices=PROTOCOLS)
    _program_options(run)
    run.add_argument("--capture", nargs="?", const="runs", metavar="DIR",
                     help="capture on both hosts; pcaps and a ladder diagram under DIR (default ./runs)")
    run.add_argument("--no-server", action="store_true",
                     help="run only the client, against a host with no server (the post's C1/C2)")
    run.add_argument("--json", action="store_true", help="print the run as JSON")
    exe = command("exec", "run a command in a lab host", c.exec_)
    exe.add_argument("host", metavar="HOST", help=f"one of: {', '.join(HOSTS)}")
    exe.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD")
    exps = command("experiments", "check the post's claims C1-C10 in a fresh lab; write a report",
                   c.experiments)
    exps.add_argument("ids", nargs="*", metavar="ID", help="claims to check (default: all), e.g. C4")
    exps.add_argument("--out", default="runs", help="folder for the run's files (default ./runs)")
    exps.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    exps.add_argument("--junit", metavar="FILE", help="also write JUnit XML here (for CI)")
    _topology_options(exps)
    one = command("experiment", "check one claim of the post, with its evidence", c.experiment)
    one.add_argument("ids", nargs=1, metavar="ID", help="e.g. C4")
    one.add_argument("--out", default="runs", help="folder for the run's files (default ./runs)")
    one.add_argument("--json", action="store_true", help="print the verdict as JSON")
    one.add_argument("--junit", metavar="FILE", help="also write JUnit XML here (for CI)")
    _topology_options(one)
    rep = command("report", "write the report of a run again, verdicts recomputed from its evidence",
                  c.report)
    rep.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                     help="a folder made by `socketlab experiments` (default: the latest in ./runs)")
    command("doctor", "report Docker, compose, the image and the kernel's features", c.doctor)
    _shape_options(command("shape", "impair a host's link: delay, loss, duplicate, reorder, "
                           "corrupt, rate (netem-like)", c.shape))
    bench = command("bench", "measure socketlab (prints a table)", c.bench)
    bench.add_argument("what", choices=["lifecycle", "analysis", "capture", "shaping"])
    bench.add_argument("--backend", choices=["netem", "engine"],
                       help="shaping: this backend only (default: every one this machine has)")
    bench.add_argument("--repeat", type=int, default=3, help="runs per figure (median is shown)")
    bench.add_argument("--cold", action="store_true",
                       help="also time a cold image build (no cache) and, with --cold-base, the base")
    bench.add_argument("--cold-base", action="store_true", help="also time making the Debian base")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def _topology_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--subnet", help="lab subnet (default 192.168.33.0/24; env SOCKETLAB_SUBNET)")
    cmd.add_argument("--server-ip", help="server address (default .5 of the subnet)")
    cmd.add_argument("--client-ip", help="client address (default .6 of the subnet)")
    cmd.add_argument("--port", type=int, help="server port (default 6666; env SOCKETLAB_PORT)")
    cmd.add_argument("--offloads", action="store_true", default=None,
                     help="keep the hosts' segmentation/checksum offloads on (default off, so "
                          "captures show MSS-sized segments; env SOCKETLAB_OFFLOADS=on)")


def _shape_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("host", metavar="HOST", help=f"one of: {', '.join(HOSTS)}")
    cmd.add_argument("--dir", choices=["egress", "ingress"],
                     help="egress: what leaves HOST (default); ingress: what arrives at it")
    cmd.add_argument("--backend", default="auto", choices=["auto", "netem", "engine"])
    cmd.add_argument("--spec", help="the whole spec in one, e.g. 'delay 100ms loss 5%%'")
    for flag, example in (("delay", "100ms"), ("jitter", "10ms"), ("distribution", "normal"),
                          ("loss", "5%%"), ("loss-burst", "3"), ("duplicate", "1%%"),
                          ("reorder", "25%%"), ("gap", "5"), ("corrupt", "0.1%%"),
                          ("rate", "1mbit"), ("limit", "100"), ("seed", "42")):
        cmd.add_argument(f"--{flag}", metavar=flag.upper().replace("-", "_"), help=f"e.g. {example}")
    cmd.add_argument("--fault", action="append", metavar="FAULT",
                     help="a packet-exact fault for lab-nfq (repeatable; needs the engine), e.g. "
                          "'drop tcp flags=SA nth=1', 'delay 300ms tcp min_len=1 nth=3', "
                          "'duplicate udp dport=6666 nth=2'")
    for flag, help_ in (("show", "show what is in place, with counters"),
                        ("clear", "remove the shaping (of --dir if given, else both)"),
                        ("backends", "which backend serves which parameter in HOST"),
                        ("plan", "print the commands an apply would run; change nothing")):
        cmd.add_argument(f"--{flag}", action="store_true", help=help_)


def _program_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--message", default="hello,world", help="what the client sends")
    cmd.add_argument("--bufsize", type=int, default=3, help="the server's receive size")
    cmd.add_argument("--count", type=int, default=1, help="how many times the client sends it")


def config_from(args: argparse.Namespace) -> LabConfig:
    """Settings from the environment, then the options. A --subnet given without addresses
    gets its own .5 and .6, whatever SOCKETLAB_SERVER_IP/CLIENT_IP say."""
    subnet = getattr(args, "subnet", None)
    derive = "" if subnet else None
    return LabConfig.from_env(project=args.project, subnet=subnet,
                              server_ip=getattr(args, "server_ip", None) or derive,
                              client_ip=getattr(args, "client_ip", None) or derive,
                              port=getattr(args, "port", None),
                              offloads=getattr(args, "offloads", None))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run one socketlab command; return its exit code (callable in-process by tests)."""
    stdout = Console(file=out or sys.stdout, highlight=False)
    stderr = Console(file=err or sys.stderr, highlight=False, stderr=err is None)
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
    except KeyboardInterrupt:
        stderr.print("interrupted: whatever had started was removed")
        return ExitCode.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def dump_json(console: Console, data: object) -> None:
    console.print_json(json.dumps(data, default=str))
