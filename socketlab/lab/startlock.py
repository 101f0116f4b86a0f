"""One start at a time per lab name: two `up` of one project at the same moment never both
create (and then both roll back, each removing what the other made). The second waits for
the first, then finds its lab and is refused naming the difference, as when they are not
simultaneous (Lab.up holds this from its check for a lab of that name until its lab is up or
rolled back).

    with starting("mylab", progress):    # another start of "mylab" on this machine: wait
        ...                              # check that no lab "mylab" is there, then make it

The lock is a file per name in the machine's temporary folder, locked with flock (per open
file, so threads of one process exclude each other too; released by the system when a
process ends, however it ends) and removed by its holder at the end: nothing is left. A
waiter that gets the lock of a file its holder has just removed takes the new one instead.
Like the subnets' lock (subnets.py), it does not reach a process on another machine that
shares the engine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir())


def lock_path(project: str, lock_dir: Path = LOCK_DIR) -> Path:
    """The lock file of lab `project` (a project name is letters, digits, '-' and '_')."""
    return lock_dir / f"socketlab-start-{project}.lock"


@contextlib.contextmanager
def starting(project: str, progress: Callable[[str], None] = lambda _m: None, *,
             lock_dir: Path = LOCK_DIR) -> Iterator[None]:
    """Hold the start of lab `project` for the block; if another start holds it, say so and
    wait for it (a Ctrl-C while waiting interrupts the wait: nothing was done)."""
    path = lock_path(project, lock_dir)
    fd = _locked(path, lambda: progress(f"another start of lab {project!r} is under way: "
                                        "waiting for it to end"))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # another user's file in a sticky folder: it stays
            path.unlink()  # while still held: a waiter then sees it gone and takes a new one
        os.close(fd)  # the lock goes with it


def _locked(path: Path, waiting: Callable[[], None]) -> int:
    """An open file descriptor of `path`, locked, and `path` still that file."""
    said = False
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # flock needs no write access
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not said:
                    waiting()
                    said = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it on the way out: lock the one there now


def _same_file(fd: int, path: Path) -> bool:
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)
