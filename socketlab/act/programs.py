"""Programs in the lab: the post's four (one argv builder each, pure), your own commands, and
one server+client run.

    run = run_pair(lab, Options(proto="tcp"))
    run.server_events   # listening, accepted, recv "hel", "lo,", "wor", "ld", "", closed
    run.client_events   # connected, sent "hello,world", closed
    run = run_commands(lab, "tcp", "python3 /work/srv.py", "python3 /work/cli.py 192.168.33.5")

The server starts first, in the host whose role is server (socketlab.lab.topology); the client,
in the host whose role is client, starts only once the server is ready: the post's programs say
so themselves (`listening`), your own are ready when their port shows in the host's socket
table (lab-ready --wait: read from /proc/net, no packet sent). Never a sleep. Each program is
bounded in time inside its host, so nothing outlives a run, whatever happens on this side.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from socketlab.errors import ConfigError, LabTimeout, ProgramFailed
from socketlab.lab.config import PROTOCOLS
from socketlab.lab.lab import Lab
from socketlab.lab.process import PlacedHosts, Running, as_program
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


# ---------------------------------------------------------------- one argv builder per program
def _argv(program: str, options: Mapping[str, Any]) -> list[str]:
    """`python3 /lab/programs/PROGRAM.py --an-option VALUE ...` (pure): True is a bare flag,
    None and False are left out, a list repeats its option (`--size=N` each)."""
    argv = ["python3", f"{PROGRAMS_DIR}/{program}.py"]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [f"{flag}={v}" for v in value]
        else:
            argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return argv


def tcp_server_argv(*, port: int, bufsize: int = DEFAULT_BUFSIZE, backlog: int | None = None,
                    bind: str | None = None, accept_timeout: float | None = None,
                    accept_delay: float | None = None) -> list[str]:
    return _argv("tcp_server", dict(port=port, bufsize=bufsize, backlog=backlog, bind=bind,
                                    accept_timeout=accept_timeout, accept_delay=accept_delay))


def tcp_client_argv(*, host: str, port: int, message: str = DEFAULT_MESSAGE,
                    count: int = 1) -> list[str]:
    return _argv("tcp_client", dict(host=host, port=port, message=message, count=count))


def udp_server_argv(*, port: int, bufsize: int = DEFAULT_BUFSIZE, count: int | None = None,
                    timeout: float | None = None, first_timeout: float | None = None,
                    rcvbuf: int | None = None, delay: float | None = None, quiet: bool = False,
                    bind: str | None = None) -> list[str]:
    return _argv("udp_server", dict(port=port, bufsize=bufsize, count=count, timeout=timeout,
                                    first_timeout=first_timeout, rcvbuf=rcvbuf, delay=delay,
                                    quiet=quiet, bind=bind))


def udp_client_argv(*, host: str, port: int, message: str | None = None, count: int = 1,
                    size: Sequence[int] = (), sndbuf: int | None = None, recverr: bool = False,
                    quiet: bool = False, keep_going: bool = False, end_with_empty: bool = False,
                    pmtudisc: str | None = None, interval: float | None = None) -> list[str]:
    return _argv("udp_client", dict(host=host, port=port, message=message, count=count,
                                    size=list(size), sndbuf=sndbuf, recverr=recverr, quiet=quiet,
                                    keep_going=keep_going, end_with_empty=end_with_empty,
                                    pmtudisc=pmtudisc, interval=interval))


def server_argv(opts: Options, port: int) -> list[str]:
    """The post's server as `opts` says."""
    if opts.proto == "tcp":
        return tcp_server_argv(port=port, bufsize=opts.bufsize)
    # The post's UDP server stops only on an empty datagram: the client sends one last.
    # The timeout is the safety net if that datagram is lost (UDP gives no error).
    return udp_server_argv(port=port, bufsize=opts.bufsize, timeout=5.0)


def client_argv(opts: Options, server_ip: str, port: int) -> list[str]:
    """The post's client as `opts` says."""
    if opts.proto == "tcp":
        return tcp_client_argv(host=server_ip, port=port, message=opts.message, count=opts.count)
    return udp_client_argv(host=server_ip, port=port, message=opts.message, count=opts.count,
                           end_with_empty=True)


def command_argv(command: str | Sequence[str]) -> list[str]:
    """A command of your own, as a line (split as a shell would, nothing else) or an argv."""
    try:
        argv = shlex.split(command) if isinstance(command, str) else list(command)
    except ValueError as e:
        raise ConfigError(f"cannot read the command {command!r}: {e}",
                          hint="quote it as you would in a shell") from None
    if not argv:
        raise ConfigError("an empty command", hint="e.g. --server-cmd 'python3 /work/server.py'")
    return argv


def roles(lab: PlacedHosts) -> tuple[str, str]:
    """The lab's server and client hosts (by role, from its topology)."""
    found = []
    for role in ("server", "client"):
        host = lab.topology.role_host(role)
        if host is None:
            raise ConfigError(f"the lab has no {role} host",
                              hint=f"name a host {role}, or label it io.socketlab.role: {role}")
        found.append(host.name)
    return found[0], found[1]


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
    server_output: str = ""  # everything each program printed (events or not)
    client_output: str = ""

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
    server_ip = lab.topology.ip(roles(lab)[0])
    return run_programs(lab, opts, server, client_argv(opts, server_ip, port),
                        after_client=after_client, progress=progress)


def run_commands(lab: Lab, proto: str, server: str | Sequence[str] | None,
                 client: str | Sequence[str], *, port: int | None = None) -> PairRun:
    """Your own server command (None: none), then your own client command once the server's
    port is open: a TCP port listening, a UDP port bound (the programs need print nothing)."""
    opts = Options(proto=proto, port=port, server=server is not None)
    return run_programs(lab, opts, command_argv(server) if server is not None else None,
                        command_argv(client), ready="port")


def run_programs(lab: PlacedHosts, opts: Options, server: Sequence[str] | None, client: Sequence[str],
                 *, after_client: Callable[[], Any] | None = None,
                 progress: Callable[[str], None] | None = None, ready: str = "event") -> PairRun:
    """Any server program, then any client program once the server is ready: it has printed
    `listening` (ready="event", the lab's programs), or its port is open (ready="port", any
    program). The one place that knows how a pair of lab programs is run (variants use it too).
    The server's exec is started first (it is what the run waits for), the client's set up
    while the server starts, and released once the server is ready.
    progress: told every PROGRESS_EVERY_S how far a run that is still going has got.
    Programs run as the program user (as_program); the lab's own instruments
    (images/lab/instruments) are tools and keep the host's capabilities, as tcpdump does
    (a sink forcing its receive buffer, a sender choosing any congestion control)."""
    start = time.monotonic()
    server_host, client_host = roles(lab)
    proc = None if server is None else lab.start(server_host, _as_run(server), timeout=RUN_TIMEOUT_S)
    try:
        client_proc = lab.start(client_host, _as_run(client), timeout=RUN_TIMEOUT_S, gated=True)
    except BaseException:
        _kill(proc)
        raise
    try:
        if proc is not None:
            _await_server(lab, server_host, opts, proc, ready)
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
                   client_stderr=client_proc.stderr, between=between,
                   server_output=proc.stdout if proc else "", client_output=client_proc.stdout)


def _report_while_running(client: Running, server: Running | None,
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


def _events_so_far(proc: Running) -> int:
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


def _server_end(proc: Running | None, proto: str, client_exit: int) -> int | None:
    if proc is None:
        return None
    if client_exit != 0:  # the server would wait for a client that never comes
        proc.signal("TERM")
    try:
        return proc.wait(timeout=RUN_TIMEOUT_S + 2)
    except LabTimeout as e:
        raise ProgramFailed(f"the {proto} server did not finish", hint=e.hint) from None


def _kill(*procs: Running | None) -> None:
    """End programs at once, whatever state they are in (a second signal waits for this)."""
    from socketlab.lab import signals

    with signals.deferred(raise_after=False):
        for proc in procs:
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.signal("TERM")  # `timeout` passes it on to the program's whole group


def _await_server(lab: PlacedHosts, host: str, opts: Options, proc: Running, ready: str) -> None:
    """Until the server started as `proc` is ready; ProgramFailed if it never is."""
    try:
        if ready == "port":
            said = _port_open(lab, host, proc, opts.port or lab.config.port, opts.proto)
        else:
            said = proc.wait_for(lambda ln: ln.startswith(("listening", "error")), READY_TIMEOUT_S)
    except KeyboardInterrupt:
        _kill(proc)
        raise
    if said is None or said.startswith("error"):
        code = proc.wait(5)
        words = said or proc.stderr.strip() or proc.stdout.strip() or "no output"
        raise ProgramFailed(f"the {opts.proto} server did not start: {words}",
                            hint=not_started_hint(host, f"{said}\n{proc.stderr}\n{proc.stdout}",
                                                  code, opts.port or lab.config.port, opts.proto))


def not_started_hint(host: str, output: str, exit_code: int | None, port: int, proto: str) -> str:
    """What to do about a server that never got ready, from what it said and how it ended:
    the port is blamed only when the server said the port was taken."""
    if "EADDRINUSE" in output or "ddress already in use" in output:
        return (f"another program in {host} holds port {port}/{proto} "
                f"(`socketlab exec {host} ss -tulpn` shows it): end it, or start the lab on "
                "another port (`socketlab up --port N`)")
    if exit_code is not None and exit_code >= 0 and "not open after" not in output:
        return (f"the server ended (exit code {exit_code}) before opening port {port}/{proto}: "
                f"its message above says why; try the command by hand with "
                f"`socketlab exec {host} CMD`")
    return (f"the server must open port {port}/{proto} (the lab's port, or --port N) within "
            f"{READY_TIMEOUT_S:g} s; try the command by hand with `socketlab exec {host} CMD`")


def _port_open(lab: PlacedHosts, host: str, proc: Running, port: int, proto: str) -> str | None:
    """Wait in the host until the server's port is open (lab-ready --wait reads /proc/net);
    "listening" when it is, None if the server ended first, an error line if it never opened."""
    pid = proc.wait_pid(READY_TIMEOUT_S)
    if pid is None:
        return None
    done = lab.exec(host, ["lab-ready", "--wait", f"{READY_TIMEOUT_S:g}", str(port), proto, pid],
                    timeout=READY_TIMEOUT_S + 5)
    if done.exit_code == 0:
        return "listening"
    if done.exit_code == 3:  # the server's process is gone
        return None
    return f"error: port {port}/{proto} not open after {READY_TIMEOUT_S:g} s"
