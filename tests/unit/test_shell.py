"""The streams of `exec` and `shell` without Docker: the pid line read off, output written as it
comes, input passed on and its end told to the command."""

from __future__ import annotations

import os
import queue

from socketlab.cli.shell import _pump, _without_pid_line
from tests.unit.conftest import cli


def test_the_launchers_pid_line_is_read_off_even_in_pieces():
    written, pid = [], []
    write = _without_pid_line(written.append, pid)
    for piece in (b"socketlab-p", b"id=42\nhel", b"lo\n", b"more"):
        write(piece)
    assert pid == ["42"]
    assert b"".join(written) == b"hello\nmore"


def test_output_without_a_pid_line_is_kept_whole():
    written, pid = [], []
    write = _without_pid_line(written.append, pid)
    write(b"plain first line\nsecond")
    assert b"".join(written) == b"plain first line\nsecond"


class EchoStream:
    """A command that echoes each line of its input, then ends when its input ends."""

    def __init__(self) -> None:
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.stdin_closed = False

    def chunks(self):
        yield None, b"ready on stderr\n"
        while (line := self.lines.get(timeout=10)) is not None:
            yield b"echo:" + line, None

    def sendall(self, data: bytes) -> None:
        self.lines.put(data)

    def close_stdin(self) -> None:
        self.stdin_closed = True
        self.lines.put(None)


def test_pump_passes_input_on_and_output_back_until_the_end():
    stream, out, err = EchoStream(), [], []
    read_end, write_end = os.pipe()
    os.write(write_end, b"one\n")
    os.close(write_end)  # the input ends after one line
    try:
        _pump(stream, out.append, err.append, read_end)
    finally:
        os.close(read_end)
    assert stream.stdin_closed
    assert out == [b"echo:one\n"]
    assert err == [b"ready on stderr\n"]


def test_exec_t_without_a_terminal_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")

    class Lab:
        config = None

    from socketlab.cli import common

    monkeypatch.setattr(common, "running_lab", lambda _args, _err: Lab())
    code, out, err = cli("exec", "-t", "client", "bash")
    assert (code, out) == (64, "")
    assert err.splitlines()[0] == "error: -t needs a terminal, and this command's input is not one"
