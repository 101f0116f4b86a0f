"""tcp_server.py --accept-delay: the kernel finishes the handshake and queues the connection
while the server sleeps; accept() later only takes it. --rcvbuf and --read-delay make it a slow
reader (the window exercise). Loopback only (127.0.0.1, a free port)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from socketlab.observe.events import Event, parse_line, parse_output, payload
from tests.unit.loopback import LOOPBACK, WAIT, argv, env


@pytest.fixture
def server() -> Iterator:
    """Start tcp_server.py on loopback (port 0: the OS picks a free one); killed at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def _start(*args: str) -> tuple[subprocess.Popen[str], Event]:
        proc = subprocess.Popen(argv("tcp_server.py", "--bind", LOOPBACK, "--port", "0", *args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env())
        procs.append(proc)
        line = proc.stdout.readline()  # the first line: `listening addr=127.0.0.1:PORT ...`
        event = parse_line(line)
        assert event is not None, f"not an event: {line!r} {proc.stderr.read() if not line else ''}"
        assert event.name == "listening"
        return proc, event

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=WAIT)
        proc.stdout.close()
        proc.stderr.close()


def _client(port: int) -> list[Event]:
    done = subprocess.run(argv("tcp_client.py", "--host", LOOPBACK, "--port", str(port)),
                          capture_output=True, text=True, timeout=WAIT, env=env())
    assert done.returncode == 0, done.stdout + done.stderr
    return parse_output(done.stdout)


def _finish(proc: subprocess.Popen[str]) -> list[Event]:
    out, _err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0
    return parse_output(out)


def _t(events: list[Event], name: str) -> float:
    found = next(e for e in events if e.name == name)
    assert found.t is not None
    return found.t


def test_the_client_is_done_before_a_delayed_accept_returns(server) -> None:
    proc, listening = server("--accept-delay", "1.0")
    port = int(str(listening.fields["addr"]).rsplit(":", 1)[1])
    client = _client(port)  # connect() returns with no accept(): the kernel queued it
    events = _finish(proc)
    assert [e.name for e in client] == ["connected", "sent", "closed"]
    assert _t(events, "accepted") - _t(client, "closed") > 0.5
    assert _t(events, "accepted") - listening.t >= 1.0
    assert payload(events, "recv") == b"hello,world"  # nothing lost while it waited
    assert [e.fields["data"] for e in events if e.name == "recv"] == ["hel", "lo,", "wor", "ld", ""]


def test_without_the_option_accept_is_not_delayed(server) -> None:
    proc, listening = server()
    port = int(str(listening.fields["addr"]).rsplit(":", 1)[1])
    client = _client(port)
    events = _finish(proc)
    assert _t(events, "accepted") - _t(client, "connected") < 0.5
    assert payload(events, "recv") == b"hello,world"


def test_help_explains_the_option() -> None:
    done = subprocess.run(argv("tcp_server.py", "--help"), capture_output=True, text=True,
                          timeout=WAIT, env=env())
    assert done.returncode == 0
    assert "--accept-delay" in done.stdout


def test_slow_reader_small_buffer_paced_reads_nothing_lost(server) -> None:
    proc, listening = server("--rcvbuf", "4096", "--read-delay", "0.002", "--bufsize", "1000")
    assert listening.fields["rcvbuf"] == 8192  # Linux doubles what was asked (bookkeeping room)
    port = int(str(listening.fields["addr"]).rsplit(":", 1)[1])
    done = subprocess.run(argv("tcp_client.py", "--host", LOOPBACK, "--port", str(port),
                               "--message", "x" * 1000, "--count", "20"),
                          capture_output=True, text=True, timeout=WAIT, env=env())
    assert done.returncode == 0, done.stdout + done.stderr
    reads = [e for e in _finish(proc) if e.name == "recv"]
    assert sum(int(e.fields["n"]) for e in reads) == 20_000
    gaps = [b.t - a.t for a, b in zip(reads, reads[1:], strict=False)]
    assert min(gaps) >= 0.002 - 1e-4  # each read waits its pause first (a floor, not a timing)
