"""`socketlab shell HOST` and `socketlab exec [-i] [-t] HOST CMD`: a command's streams as they come.

With a terminal (-t, and `shell` when stdin is one) the local terminal is put in raw mode and
every key goes to the host, as with `docker exec -it`; its size follows the window. Without
one, the command's output is written as it arrives and stdin (-i) is passed on; Ctrl-C or
SIGTERM here ends the command in the host too (its pid is its launcher's first line), so
nothing keeps running there once this command has returned.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from rich.console import Console

from socketlab.cli import common
from socketlab.errors import ConfigError, LabError
from socketlab.lab.process import PID_PREFIX

# bash with the host's name in the prompt where the image has bash, else its sh
SHELL = ("if command -v bash >/dev/null 2>&1; then PS1=\"$0\"':\\w\\$ ' exec bash --norc -i; fi; "
         'PS1="$0> " exec sh -i')


def register(command) -> None:
    sh = command("shell", "a terminal in a host (bash, else sh), like `docker exec -it HOST bash`",
                 shell)
    sh.add_argument("host", metavar="HOST", help="a host of the lab, e.g. server or client")


def shell(args: argparse.Namespace, out: Console, err: Console) -> int:
    terminal = _is_terminal(sys.stdin)
    return attached(common.running_lab(args, err), args.host, ["sh", "-c", SHELL, args.host],
                    tty=terminal, stdin=True, out=out, err=err)


def attached(lab, host: str, argv: Sequence[str], *, tty: bool, stdin: bool, out: Console,
             err: Console, stdin_fd: int | None = None) -> int:
    """Run argv in the host with its streams joined to ours; its exit code."""
    if tty and not _is_terminal(sys.stdin):
        raise ConfigError("-t needs a terminal, and this command's input is not one",
                          hint="leave -t out (-i alone passes the input on)")
    if tty:
        size = shutil.get_terminal_size()  # set before the command starts: it may ask at once
        sized = ["sh", "-c", f'stty rows {size.lines} cols {size.columns} 2>/dev/null; exec "$@"',
                 "sh", *argv]
        stream = lab.attach(host, sized, tty=True, stdin=stdin,
                            env=[f"TERM={os.environ.get('TERM', 'xterm')}"])
        with _raw(sys.stdin.fileno()), _window_size(stream):
            _pump(stream, _bytes_to(out), _bytes_to(out), sys.stdin.fileno() if stdin else None)
        return stream.exit_code() or 0
    launch = ["sh", "-c", f'echo "{PID_PREFIX}$$"; exec "$@"', "sh", *argv]
    stream = lab.attach(host, launch, stdin=stdin)
    pid: list[str] = []
    try:
        _pump(stream, _without_pid_line(_bytes_to(out), pid), _bytes_to(err),
              (sys.stdin.fileno() if stdin_fd is None else stdin_fd) if stdin else None)
    except KeyboardInterrupt:
        if pid and pid[0]:  # the command would go on in the host: end it there too
            lab.exec(host, ["kill", "-TERM", pid[0]], timeout=5)
        raise
    return stream.exit_code() or 0


def _pump(stream, write_out: Callable[[bytes], None], write_err: Callable[[bytes], None],
          stdin_fd: int | None) -> None:
    """Output written as it comes (a thread), input sent as it is typed, until the end."""
    done = threading.Event()

    def output() -> None:
        try:
            for data, error in stream.chunks():
                (write_out if data is not None else write_err)(data if data is not None else error)
        finally:
            done.set()

    reader = threading.Thread(target=output, daemon=True)
    reader.start()
    while stdin_fd is not None and not done.is_set():
        ready, _, _ = select.select([stdin_fd], [], [], 0.1)  # 0.1 s: notice the end soon
        if not ready:
            continue
        data = os.read(stdin_fd, 65536)
        if not data:
            stream.close_stdin()  # end of input: the command sees EOF, its output goes on
            break
        stream.sendall(data)
    while not done.wait(0.2):  # a wait that Ctrl-C can interrupt
        pass


def _bytes_to(console: Console) -> Callable[[bytes], None]:
    """Raw bytes to a console's file: its binary buffer if it has one (a real stream)."""
    file = console.file
    buffer = getattr(file, "buffer", None)

    def write(data: bytes) -> None:
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            file.write(data.decode(errors="replace"))
            file.flush()

    return write


def _without_pid_line(write: Callable[[bytes], None], pid: list[str]) -> Callable[[bytes], None]:
    """`write`, once the launcher's first line (the command's pid, kept in `pid`) is read off."""
    pending = bytearray()
    prefix = PID_PREFIX.encode()

    def first(data: bytes) -> None:
        if pid or not data:
            write(data)
            return
        pending.extend(data)
        if b"\n" not in pending:
            return
        line, rest = bytes(pending).split(b"\n", 1)
        if line.startswith(prefix):
            pid.append(line[len(prefix):].decode())
        else:
            pid.append("")
            rest = bytes(pending)
        if rest:
            write(rest)

    return first


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """Every key as it is typed, nothing echoed here (the host's terminal echoes); restored
    on the way out, whatever happens."""
    import termios
    import tty

    before = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: keys typed ahead are kept, and sent
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, before)


@contextlib.contextmanager
def _window_size(stream) -> Iterator[None]:
    """The host's terminal takes this window's size, now and whenever it changes."""
    def resize(*_: object) -> bool:
        size = shutil.get_terminal_size()
        try:
            stream.resize(size.lines, size.columns)
        except LabError:  # not started yet, or just ended
            return False
        return True

    for _ in range(20):  # the engine takes a size only once the command has started
        if resize():
            break
        time.sleep(0.05)
    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
