"""The post's programs, run in the lab: argv builders (pure) and one server+client run.

    run = run_pair(lab, Options(proto="tcp"))
    run.server_events   # listening, accepted, recv "hel", "lo,", "wor", "ld", "", closed
    run.client_events   # connected, sent "hello,world", closed

The server starts first; the client starts only once the server has printed `listening`
(readiness is the program's own word, never a sleep). Each program is bounded in time
inside its host, so nothing outlives a run, whatever happens on this side.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from socketlab.errors import ConfigError, LabTimeout, ProgramFailed
from socketlab.lab.config import PROTOCOLS
from socketlab.lab.lab import Lab
from socketlab.lab.process import RunningExec, as_program
from socketlab.observe.events import Event, parse_output

PROGRAMS_DIR = "/lab/programs"
DEFAULT_MESSAGE = "hello,world"
DEFAULT_BUFSIZE = 3
RUN_TIMEOUT_S = 20.0  # the most a program may live in its host
READY_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 2.0  # a run still going after this long says how far it got
# The largest receive size and count the post's programs are run with, and why.
MAX_BUFSIZE = 65536
MAX_BUFSIZE_WHY = ("no datagram carries more than 65,507 bytes, and a TCP recv() that large "
                   "already takes whatever the socket holds")
MAX_COUNT = 1000
MAX_COUNT_WHY = ("each send is a row of the run's table; for floods see `socketlab experiment "
                 "C6` and `socketlab bench capture`")


@dataclass(frozen=True)
class Options:
    """What the post's programs are told. The defaults are the post's."""

    proto: str = "tcp"
    message: str = DEFAULT_MESSAGE
    bufsize: int = DEFAULT_BUFSIZE
    count: int = 1
    port: int | None = None  # None: the lab's port
    server: bool = True      # False: run the client against a host with no server (C1, C2)

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.proto!r}", hint="use tcp or udp")
        if self.bufsize < 1:
            raise ConfigError(f"receive size {self.bufsize} is too small", hint="use 1 or more")
        if self.bufsize > MAX_BUFSIZE:
            raise ConfigError(f"receive size {self.bufsize} is too large",
                              hint=f"use at most {MAX_BUFSIZE}: {MAX_BUFSIZE_WHY}")
        if self.count < 1:
            raise ConfigError(f"count {self.count} is too small", hint="use 1 or more")
        if self.count > MAX_COUNT:
            raise ConfigError(f"count {self.count} is too large",
                              hint=f"use at most {MAX_COUNT}: {MAX_COUNT_WHY}")


def server_argv(opts: Options, port: int) -> list[str]:
    argv = ["python3", f"{PROGRAMS_DIR}/{opts.proto}_server.py", "--port", str(port),
            "--bufsize", str(opts.bufsize)]
    if opts.proto == "udp":
        # The post's UDP server stops only on an empty datagram: the client sends one last.
        # The timeout is the safety net if that datagram is lost (UDP gives no error).
        argv += ["--timeout", "5"]
    return argv


def client_argv(opts: Options, server_ip: str, port: int) -> list[str]:
    argv = ["python3", f"{PROGRAMS_DIR}/{opts.proto}_client.py", "--host", server_ip,
            "--port", str(port), "--message", opts.message, "--count", str(opts.count)]
    if opts.proto == "udp":
        argv.append("--end-with-empty")
    return argv


@dataclass(frozen=True)
class PairRun:
    """What one server+client run printed, and how each program ended."""

    options: Options
    server_events: list[Event] = field(default_factory=list)
    client_events: list[Event] = field(default_factory=list)
    server_exit: int | None = None  # None: no server was started
    client_exit: int = 0
    seconds: float = 0.0
    between: Any = None  # what `after_client` returned, if run_pair was given one
    server_stderr: str = ""  # what a program wrote on stderr (a crash's traceback, say)
    client_stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.client_exit == 0 and self.server_exit in (0, None)

    def error(self) -> Event | None:
        """The first `error` event of either program, if any."""
        return next((e for e in self.client_events + self.server_events if e.name == "error"), None)


def run_pair(lab: Lab, opts: Options, *, server_extra: Sequence[str] = (),
             after_client: Callable[[], Any] | None = None,
             progress: Callable[[str], None] | None = None) -> PairRun:
    """Run the post's server (unless opts.server is False), then its client once it is ready.

    server_extra: more options for the server (e.g. ["--accept-delay", "1"]);
    after_client: called once the client has ended, while the server may still run
    (e.g. to read `ss -tan` in the server); its result is PairRun.between;
    progress: how far a long run has got, every few seconds (see run_programs)."""
    port = opts.port or lab.config.port
    server = [*server_argv(opts, port), *server_extra] if opts.server else None
    return run_programs(lab, opts, server, client_argv(opts, lab.config.server_ip, port),
                        after_client=after_client, progress=progress)


def run_programs(lab: Lab, opts: Options, server: Sequence[str] | None, client: Sequence[str],
                 *, after_client: Callable[[], Any] | None = None,
                 progress: Callable[[str], None] | None = None) -> PairRun:
    """Any server program, then any client program once the server has printed `listening`;
    the one place that knows how a pair of lab programs is run (variants use it too).
    The client's exec is set up while the server starts, and released once it listens.
    progress: told every PROGRESS_EVERY_S how far a run that is still going has got.
    Programs run as the program user (as_program); the lab's own instruments
    (images/lab/instruments) are tools and keep the host's capabilities, as tcpdump does
    (a sink forcing its receive buffer, a sender choosing any congestion control)."""
    start = time.monotonic()
    client_proc = lab.start("client", _as_run(client), timeout=RUN_TIMEOUT_S, gated=True)
    try:
        proc = _start_server(lab, opts.proto, _as_run(server)) if server is not None else None
    except BaseException:
        client_proc.release(go=False)
        client_proc.wait(5)
        raise
    try:
        client_proc.release()
        _report_while_running(client_proc, proc, progress, start)
        client_exit = client_proc.wait(RUN_TIMEOUT_S + 2)
        between = after_client() if after_client is not None else None
        server_exit = _server_end(proc, opts.proto, client_exit)
    except KeyboardInterrupt:  # the lab may stay up (a running lab was used): end them now
        _kill(client_proc, proc)
        raise
    return PairRun(opts, parse_output(proc.stdout) if proc else [],
                   parse_output(client_proc.stdout), server_exit, client_exit,
                   time.monotonic() - start, server_stderr=proc.stderr if proc else "",
                   client_stderr=client_proc.stderr, between=between)


def _report_while_running(client: RunningExec, server: RunningExec | None,
                          progress: Callable[[str], None] | None, start: float) -> None:
    """Until the client ends (within its budget), say every PROGRESS_EVERY_S how many lines
    each program has printed so far (its events: sent, recv, ...)."""
    if progress is None:
        return
    deadline = start + RUN_TIMEOUT_S + 2
    while time.monotonic() < deadline:
        try:
            if client.wait_for(lambda _line: False, PROGRESS_EVERY_S) is None:
                return  # the client has ended
        except LabTimeout:
            pass
        counts = [f"client {_events_so_far(client)} events"]
        if server is not None:
            counts.append(f"server {_events_so_far(server)} events")
        progress(f"{time.monotonic() - start:.0f} s: {', '.join(counts)} so far")


def _events_so_far(proc: RunningExec) -> int:
    """The lines a running program has printed up to now (read without waiting)."""
    with contextlib.suppress(LabTimeout):
        proc.wait_for(lambda _line: False, 0.001)
    return len(proc.stdout_lines)


def _as_run(argv: Sequence[str]) -> list[str]:
    """A lab instrument as it is (a tool, like tcpdump); anything else as the program user."""
    from socketlab.act.instruments import IN_HOST

    if any(str(word).startswith(f"{IN_HOST}/instruments/") for word in argv[:2]):
        return list(argv)
    return as_program(argv)


def _server_end(proc: RunningExec | None, proto: str, client_exit: int) -> int | None:
    if proc is None:
        return None
    if client_exit != 0:  # the server would wait for a client that never comes
        proc.signal("TERM")
    try:
        return proc.wait(timeout=RUN_TIMEOUT_S + 2)
    except LabTimeout as e:
        raise ProgramFailed(f"the {proto} server did not finish", hint=e.hint) from None


def _kill(*procs: RunningExec | None) -> None:
    """End programs at once, whatever state they are in (a second signal waits for this)."""
    from socketlab.lab import signals

    with signals.deferred(raise_after=False):
        for proc in procs:
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.signal("TERM")  # `timeout` passes it on to the program's whole group


def _start_server(lab: Lab, proto: str, argv: Sequence[str]) -> RunningExec:
    proc = lab.start("server", argv, timeout=RUN_TIMEOUT_S)
    try:
        ready = proc.wait_for(lambda ln: ln.startswith(("listening", "error")), READY_TIMEOUT_S)
    except KeyboardInterrupt:
        _kill(proc)
        raise
    if ready is None or ready.startswith("error"):
        proc.wait(5)
        raise ProgramFailed(f"the {proto} server did not start: "
                            f"{ready or proc.stderr.strip() or 'no output'}",
                            hint="if another program in the server holds the port "
                                 "(`socketlab exec server ss -tulpn` shows it), end it, or start "
                                 "the lab on another port (`socketlab up --port N`)")
    return proc
