"""The UDP programs' load variants (C6, C7, C9, C10), run for real on loopback only.

Every server binds 127.0.0.1 on a free port, every client sends to 127.0.0.1, and the
environment sets SOCKETLAB_SERVER_IP=127.0.0.1 so a forgotten --host stays on loopback.
Counts are small and every program is bounded by a timeout.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from socketlab.observe.events import Event, parse_output
from tests.unit.loopback import LOOPBACK, WAIT, argv, env, free_port


def client(port: int, *args: str) -> tuple[int, list[Event]]:
    done = subprocess.run(argv("udp_client.py", "--host", LOOPBACK, "--port", str(port), *args),
                          capture_output=True, text=True, timeout=WAIT, env=env())
    return done.returncode, parse_output(done.stdout)


class Server:
    """udp_server.py in the background, on loopback; its events once it has ended."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(argv("udp_server.py", "--bind", LOOPBACK, "--port",
                                          str(self.port), "--timeout", "0.5", *args),
                                     stdout=subprocess.PIPE, text=True, env=env())
        assert self.proc.stdout is not None
        self.listening = parse_output(self.proc.stdout.readline())[0]  # bound = ready

    def events(self) -> list[Event]:
        out, _ = self.proc.communicate(timeout=WAIT)
        return [self.listening, *parse_output(out)]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


def start(servers: list[Server], *args: str) -> Server:
    server = Server(*args)
    servers.append(server)
    return server


def names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


# ---------------------------------------------------------------- client
def test_quiet_client_prints_one_summary(servers: list[Server]) -> None:
    server = start(servers, "--quiet", "--bufsize", "2048")
    code, events = client(server.port, "--count", "50", "--size", "100", "--quiet",
                          "--keep-going")
    assert code == 0
    assert names(events) == ["summary", "closed"]
    assert events[0].fields == {"sent": 50, "errors": 0, "by_errno": "-"}
    summary = next(e for e in server.events() if e.name == "summary")
    assert summary.fields["bytes"] == 100 * summary.fields["received"]


def test_size_sends_datagrams_of_that_many_bytes_without_printing_them(servers) -> None:
    server = start(servers, "--bufsize", "65535", "--count", "2")
    code, events = client(server.port, "--size", "5000", "--size", "7")
    assert code == 0
    assert [e.fields["n"] for e in events if e.name == "sent"] == [5000, 7]
    assert all("data" not in e.fields for e in events)
    got = [e for e in server.events() if e.name == "recvfrom"]
    assert [e.fields["n"] for e in got] == [5000, 7]
    assert got[1].fields["data"] == "hello,w"  # the message, repeated then cut


def test_a_datagram_over_the_protocol_limit_is_emsgsize() -> None:
    code, events = client(free_port(), "--size", "65508")
    assert code == 1
    assert (events[0].name, events[0].fields["errno"]) == ("error", "EMSGSIZE")
    code, events = client(free_port(), "--size", "65508", "--size", "10", "--keep-going")
    assert code == 0
    assert [(e.name, e.fields.get("errno")) for e in events] == [
        ("error", "EMSGSIZE"), ("sent", None), ("closed", None)]


def test_keep_going_counts_errors_per_errno() -> None:
    code, events = client(free_port(), "--size", "65508", "--count", "3", "--keep-going",
                          "--quiet")
    assert code == 0
    assert events[0].fields == {"sent": 0, "errors": 3, "by_errno": "EMSGSIZE:3"}


def test_sndbuf_reports_what_the_kernel_granted() -> None:
    code, events = client(free_port(), "--sndbuf", "4096")
    assert code == 0
    sndbuf = events[0]
    assert sndbuf.name == "sndbuf"
    assert sndbuf.fields["set"] == 4096
    assert sndbuf.fields["got"] >= 4096  # Linux doubles it: 8192


def test_recverr_lets_errors_reach_an_unconnected_socket() -> None:
    port = free_port()  # nobody listens: loopback answers with ICMP port unreachable
    _, plain = client(port, "--count", "5", "--keep-going", "--quiet")
    _, told = client(port, "--count", "5", "--keep-going", "--quiet", "--recverr")
    assert plain[0].fields["errors"] == 0
    assert told[0].fields["errors"] >= 1
    assert "ECONNREFUSED" in told[0].fields["by_errno"]


# ---------------------------------------------------------------- server
def test_rcvbuf_is_set_before_bind_and_reported(servers) -> None:
    server = start(servers, "--rcvbuf", "4096")
    assert server.listening.fields["rcvbuf"] >= 4096


def test_delay_makes_a_slow_reader(servers) -> None:
    server = start(servers, "--delay", "0.2", "--count", "2")
    client(server.port, "--count", "2")
    got = [e for e in server.events() if e.name == "recvfrom"]
    assert len(got) == 2
    assert got[1].t - got[0].t >= 0.18


def test_a_slow_reader_with_a_small_buffer_drops_a_burst(servers) -> None:
    server = start(servers, "--rcvbuf", "4096", "--delay", "0.01", "--quiet")
    code, events = client(server.port, "--count", "500", "--size", "100", "--quiet")
    assert code == 0
    assert events[0].fields["sent"] == 500
    summary = next(e for e in server.events() if e.name == "summary")
    assert 0 < summary.fields["received"] < 500


# ---------------------------------------------------------------- server: the first datagram
def test_first_timeout_waits_longer_for_the_first_datagram_only(servers) -> None:
    """A slow-starting client still finds the server: --first-timeout (2 s) outlasts a 0.8 s
    late start that --timeout (0.5 s) alone would not; after it, 0.5 s of silence ends it."""
    server = start(servers, "--quiet", "--bufsize", "2048", "--first-timeout", "2")
    done = subprocess.run(["sleep", "0.8"], timeout=WAIT)
    assert done.returncode == 0
    code, _events = client(server.port, "--count", "3", "--size", "10", "--quiet")
    assert code == 0
    events = server.events()
    assert next(e for e in events if e.name == "summary").fields["received"] == 3
    assert next(e for e in events if e.name == "stop").fields["reason"] == "timeout"


def test_without_first_timeout_a_late_client_finds_the_server_gone(servers) -> None:
    server = start(servers, "--quiet")
    server.proc.wait(WAIT)  # 0.5 s of silence, nothing sent yet: it has stopped
    events = server.events()
    assert next(e for e in events if e.name == "summary").fields["received"] == 0
