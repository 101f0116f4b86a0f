"""One start at a time per lab name: two `up` of one project at the same moment never both
create (and then both roll back, each removing what the other made). The second waits for
the first, then finds its lab and is refused naming the difference, as when they are not
simultaneous (Lab.up holds this from its check for a lab of that name until its lab is up or
rolled back).

    with starting("mylab", progress):    # another start of "mylab" on this machine: wait
        ...                              # check that no lab "mylab" is there, then make it

The lock is one byte, at an offset taken from the name, of one file shared by every process on
this machine (POSIX record locks, released by the system when a process ends, however it
ends); two names that share a byte only wait for each other. Like the subnets' lock
(subnets.py), it does not reach a process on another machine that shares the engine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_FILE = Path(tempfile.gettempdir()) / "socketlab-starts.lock"
_SLOTS = 1 << 20  # byte offsets: one per name, as far as a hash tells names apart


def slot(project: str) -> int:
    """The byte of the lock file that stands for `project` (pure)."""
    return int.from_bytes(hashlib.sha256(project.encode()).digest()[:8], "big") % _SLOTS


@contextlib.contextmanager
def starting(project: str, progress: Callable[[str], None] = lambda _m: None, *,
             lock_file: Path = LOCK_FILE) -> Iterator[None]:
    """Hold the start of lab `project` for the block; if another process holds it, say so and
    wait for it (a Ctrl-C while waiting interrupts the wait: nothing was done)."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's file (their umask): a file of this user's own
        fd = os.open(lock_file.with_name(f"{lock_file.stem}-{os.getuid()}.lock"),
                     os.O_RDWR | os.O_CREAT, 0o600)
    try:
        offset = slot(project)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError:  # EAGAIN/EACCES: held by another start
            progress(f"another start of lab {project!r} is under way: waiting for it to end")
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)
    finally:
        os.close(fd)
