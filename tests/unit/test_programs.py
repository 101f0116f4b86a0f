"""Run the four teaching programs for real, on loopback only, and check what they print.

Every server gets ``--bind 127.0.0.1 --port 0`` (the OS picks a free port, the server
reports it in its ``listening`` line); every client gets ``--host 127.0.0.1``.  The
environment also sets ``SOCKETLAB_SERVER_IP=127.0.0.1`` so that a forgotten ``--host``
can never send to the post's 192.168.33.5.
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from socketlab.observe.events import Event, parse_line, parse_output, payload
from tests.unit.loopback import LOOPBACK, PROGRAMS, WAIT, argv, env, free_port, run


def port_of(event: Event, key: str = "addr") -> int:
    return int(str(event.fields[key]).rsplit(":", 1)[1])


class Server:
    """A program running in the background whose stdout lines are read by a thread."""

    def __init__(self, program: str, *args: str, **extra_env: str) -> None:
        self.proc = subprocess.Popen(
            argv(program, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(**extra_env),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, name: str) -> Event:
        """Read stdout until an event called ``name`` appears (bounded by WAIT)."""
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"{name!r} never printed; output: {self.seen}")
            self.seen.append(line)
            event = parse_line(line)
            if event is not None and event.name == name:
                return event
        pytest.fail(f"no {name!r} line within {WAIT}s; output so far: {self.seen}")

    def finish(self) -> tuple[int, list[str]]:
        """Wait for the program to exit; return its status and all its stdout lines."""
        status = self.proc.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        while not self.lines.empty():
            line = self.lines.get_nowait()
            if line is not None:
                self.seen.append(line)
        return status, self.seen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def start() -> Iterator:
    """Start a background program; every one still running is killed at teardown."""
    started: list[Server] = []

    def _start(program: str, *args: str, **extra_env: str) -> Server:
        server = Server(program, *args, **extra_env)
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port that was free a moment ago and on which nothing listens."""
    return free_port(socket.SOCK_STREAM)


def _server_args(*args: str) -> tuple[str, ...]:
    return ("--bind", LOOPBACK, "--port", "0", *args)


# --- TCP: byte stream (C4) ------------------------------------------------------------------


def test_tcp_server_reads_the_stream_three_bytes_at_a_time(start) -> None:
    server = start("tcp_server.py", *_server_args())
    listening = server.wait_for("listening")
    assert listening.fields == {"addr": f"{LOOPBACK}:{port_of(listening)}", "backlog": 5}

    client = run("tcp_client.py", "--host", LOOPBACK, "--port", str(port_of(listening)))
    status, lines = server.finish()

    assert (client.returncode, client.stderr) == (0, "")
    sent = parse_output(client.stdout)
    assert [e.name for e in sent] == ["connected", "sent", "closed"]
    assert sent[1].fields == {"n": 11, "data": "hello,world"}
    assert status == 0
    events = parse_output("".join(lines))
    assert [e.name for e in events] == ["listening", "accepted"] + ["recv"] * 5 + ["closed"]
    recvs = [e for e in events if e.name == "recv"]
    assert [e.fields["data"] for e in recvs] == ["hel", "lo,", "wor", "ld", ""]
    assert [e.fields["n"] for e in recvs] == [3, 3, 3, 2, 0]
    assert payload(events, "recv") == b"hello,world"
    # Both ends agree on who is who.
    assert events[1].fields["peer"] == sent[0].fields["local"]
    assert sent[0].fields["peer"] == listening.fields["addr"]


@pytest.mark.parametrize(("count", "bufsize"), [(3, 3), (1, 1), (2, 5), (3, 64), (5, 7)])
def test_tcp_stream_loses_nothing(start, count: int, bufsize: int) -> None:
    server = start("tcp_server.py", *_server_args("--bufsize", str(bufsize)))
    port = port_of(server.wait_for("listening"))
    client = run("tcp_client.py", "--host", LOOPBACK, "--port", str(port), "--count", str(count))
    status, lines = server.finish()

    assert client.returncode == 0
    assert payload(parse_output(client.stdout), "sent") == b"hello,world" * count
    assert status == 0
    recvs = [e for e in parse_output("".join(lines)) if e.name == "recv"]
    assert payload(recvs, "recv") == b"hello,world" * count
    assert all(0 < e.fields["n"] <= bufsize for e in recvs[:-1])
    assert all(e.fields["n"] == len(str(e.fields["data"])) for e in recvs)
    assert recvs[-1].fields == {"n": 0, "data": ""}


def test_env_vars_set_the_defaults(start) -> None:
    server = start("tcp_server.py", "--bind", LOOPBACK, SOCKETLAB_PORT="0", SOCKETLAB_BUFSIZE="4")
    port = port_of(server.wait_for("listening"))
    client = run("tcp_client.py", SOCKETLAB_PORT=str(port), SOCKETLAB_MESSAGE="abcdefgh!")
    status, lines = server.finish()

    assert client.returncode == 0
    assert parse_output(client.stdout)[0].fields["peer"] == f"{LOOPBACK}:{port}"
    recvs = [e for e in parse_output("".join(lines)) if e.name == "recv"]
    assert [e.fields["data"] for e in recvs] == ["abcd", "efgh", "!", ""]


# --- UDP: datagrams (C5) and how the server stops -------------------------------------------


def test_udp_recvfrom_truncates_and_the_rest_is_gone(start) -> None:
    server = start("udp_server.py", *_server_args("--count", "2"))
    port = port_of(server.wait_for("listening"))
    client = run("udp_client.py", "--host", LOOPBACK, "--port", str(port), "--count", "2")
    status, lines = server.finish()

    assert (client.returncode, client.stderr) == (0, "")
    sent = parse_output(client.stdout)
    assert [(e.name, e.fields.get("n")) for e in sent] == [
        ("sent", 11),
        ("sent", 11),
        ("closed", None),
    ]
    assert status == 0
    events = parse_output("".join(lines))
    assert [e.name for e in events] == ["listening", "recvfrom", "recvfrom", "stop", "closed"]
    # Each datagram gives "hel"; "lo,world" is not read by the next recvfrom: it is gone.
    assert payload(events, "recvfrom") == b"helhel"
    assert events[1].fields["peer"] == f"{LOOPBACK}:{port_of(sent[0], 'local')}"
    assert events[3].fields == {"reason": "count"}


def test_udp_server_stops_on_a_real_empty_datagram(start) -> None:
    server = start("udp_server.py", *_server_args())
    port = port_of(server.wait_for("listening"))
    client = run("udp_client.py", "--host", LOOPBACK, "--port", str(port), "--end-with-empty")
    status, lines = server.finish()

    assert client.returncode == 0
    assert [e.fields.get("n") for e in parse_output(client.stdout)] == [11, 0, None]
    assert status == 0
    events = parse_output("".join(lines))
    assert [(e.name, e.fields.get("data")) for e in events] == [
        ("listening", None),
        ("recvfrom", "hel"),
        ("recvfrom", ""),
        ("stop", None),
        ("closed", None),
    ]
    assert events[3].fields == {"reason": "empty"}


def test_udp_server_count_stops_after_n_datagrams(start) -> None:
    server = start("udp_server.py", *_server_args("--count", "3", "--bufsize", "64"))
    port = port_of(server.wait_for("listening"))
    client = run("udp_client.py", "--host", LOOPBACK, "--port", str(port), "--count", "5")
    status, lines = server.finish()

    assert client.returncode == 0
    events = parse_output("".join(lines))
    assert status == 0
    assert [e.fields["data"] for e in events if e.name == "recvfrom"] == ["hello,world"] * 3
    assert events[-2].fields == {"reason": "count"}


def test_udp_server_timeout_stops_after_silence(start) -> None:
    server = start("udp_server.py", *_server_args("--timeout", "0.3"))
    listening = server.wait_for("listening")
    status, lines = server.finish()

    events = parse_output("".join(lines))
    assert status == 0
    assert [e.name for e in events] == ["listening", "stop", "closed"]
    assert events[1].fields == {"reason": "timeout"}
    assert listening.t is not None
    assert events[1].t is not None
    assert 0.25 <= events[1].t - listening.t <= 3.0


# --- No server: C1 (TCP refused) and C2 (UDP does not notice) -------------------------------


def test_tcp_client_without_server_is_refused(closed_port: int) -> None:
    client = run("tcp_client.py", "--host", LOOPBACK, "--port", str(closed_port))

    assert client.returncode == 1
    assert client.stderr == ""  # no traceback
    events = parse_output(client.stdout)
    assert len(events) == len(client.stdout.splitlines()) == 1
    assert events[0].name == "error"
    assert events[0].fields == {
        "op": "connect",
        "errno": "ECONNREFUSED",
        "msg": "Connection refused",
    }


def test_udp_client_without_server_still_exits_0(closed_port: int) -> None:
    client = run("udp_client.py", "--host", LOOPBACK, "--port", str(closed_port), "--count", "2")

    assert (client.returncode, client.stderr) == (0, "")
    events = parse_output(client.stdout)
    assert [e.name for e in events] == ["sent", "sent", "closed"]
    assert {e.fields["peer"] for e in events[:2]} == {f"{LOOPBACK}:{closed_port}"}


@pytest.mark.parametrize(
    ("program", "kind"),
    [("tcp_server.py", socket.SOCK_STREAM), ("udp_server.py", socket.SOCK_DGRAM)],
)
def test_bind_on_a_taken_port_fails(program: str, kind: int) -> None:
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind((LOOPBACK, 0))
        if kind == socket.SOCK_STREAM:
            holder.listen(1)
        port = holder.getsockname()[1]
        server = run(program, "--bind", LOOPBACK, "--port", str(port))

    assert (server.returncode, server.stderr) == (1, "")
    events = parse_output(server.stdout)
    assert [(e.name, e.fields["op"], e.fields["errno"]) for e in events] == [
        ("error", "bind", "EADDRINUSE")
    ]
    assert events[0].fields["msg"] == "Address already in use"


def test_tcp_server_accept_timeout() -> None:
    result = run("tcp_server.py", *_server_args("--accept-timeout", "0.2"))

    assert (result.returncode, result.stderr) == (1, "")
    events = parse_output(result.stdout)
    assert [e.name for e in events] == ["listening", "error"]
    assert events[1].fields == {"op": "accept", "errno": "ETIMEDOUT", "msg": "timed out"}


@pytest.mark.parametrize("program", ["tcp_server.py", "udp_server.py"])
def test_servers_exit_on_sigterm(start, program: str) -> None:
    server = start(program, *_server_args())
    server.wait_for("listening")
    server.proc.send_signal(signal.SIGTERM)

    assert server.proc.wait(timeout=WAIT) == 128 + signal.SIGTERM


# --- The output format and the teaching-code rules -----------------------------------------


def test_every_line_is_an_event_with_a_recent_time(start) -> None:
    server = start("tcp_server.py", *_server_args())
    port = port_of(server.wait_for("listening"))
    before = time.time()
    client = run("tcp_client.py", "--host", LOOPBACK, "--port", str(port), "--count", "2")
    _, lines = server.finish()

    for output in (client.stdout, "".join(lines)):
        events = parse_output(output)
        assert len(events) == len(output.splitlines())
        times = [e.t for e in events]
        assert all(t is not None for t in times)
        assert times == sorted(times)
        assert before - 5 < times[0]
        assert times[-1] < time.time() + 1
    assert all(re.search(r" t=\d+\.\d{6}$", line.rstrip("\n")) for line in lines)


@pytest.mark.parametrize(
    "program", ["tcp_server.py", "tcp_client.py", "udp_server.py", "udp_client.py"]
)
def test_program_is_standalone_teaching_code(program: str) -> None:
    source = (PROGRAMS / program).read_text()

    assert source.startswith('"""')
    assert "Run:  python3 " + program in source
    assert "socketlab" not in source.replace("SOCKETLAB_", "")
    assert len(source.splitlines()) <= 90
    help_text = subprocess.run(
        argv(program, "--help"), capture_output=True, text=True, timeout=WAIT, env=env()
    )
    assert help_text.returncode == 0
    assert "--port" in help_text.stdout
