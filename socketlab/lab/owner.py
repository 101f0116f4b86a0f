"""Who made a lab, written on it, and whether that maker is gone (for the reaper).

Every container and network of a lab carries its owner's labels: the host name and boot of the
machine the owning process runs on, its process id, the process's start time (so a process id
used again by another process is told apart), and, if the lab was given a time to live, when it
expires. `stale` is the reaper's one rule, a pure function of those labels and what it sees of
this machine's processes:

    a lab without owner labels .......................... left alone (someone else's, older,
                                                          or kept: made by `socketlab up`)
    expired (its time to live has passed) ............... stale, whoever owns it (if anyone)
    owned on another host (or another boot of it) ....... left alone (we cannot see that process)
    owned here, its process gone, or a zombie ........... stale
    owned here, its id now another process's ............ stale
    owned here, alive ................................... left alone
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

HOST_LABEL = "io.socketlab.owner.host"
BOOT_LABEL = "io.socketlab.owner.boot"  # the machine's boot id: another machine, or a reboot
PID_LABEL = "io.socketlab.owner.pid"
STARTED_LABEL = "io.socketlab.owner.started"  # clock ticks after boot ("" where unknown)
EXPIRES_LABEL = "io.socketlab.expires"  # unix time after which any socketlab may remove it
# The owner removes the lab itself (a `with` block, the plugin). Owner labels without it were
# written by a socketlab that also put them on `socketlab up`'s labs, whose process exits at
# once: such a lab is left alone (taken as one without an owner).
REMOVES_LABEL = "io.socketlab.owner.removes-it"
PROC = Path("/proc")


@dataclass(frozen=True)
class Machine:
    """This machine as the rule needs it: its name and boot, and a way to ask after a process."""

    host: str
    boot: str
    start_of: Callable[[int], str | None]  # a process's start ("" unknown), None: gone

    @classmethod
    def here(cls, proc: Path = PROC) -> Machine:
        return cls(socket.gethostname(), boot_id(proc), lambda pid: process_start(pid, proc))


@dataclass(frozen=True)
class Owner:
    host: str
    boot: str
    pid: int
    started: str
    expires: float | None = None

    @classmethod
    def me(cls, ttl: float = 0.0, *, machine: Machine | None = None,
           now: Callable[[], float] = time.time) -> Owner:
        """This process, as the owner of a lab it makes (`ttl` seconds to live; 0: no limit)."""
        machine = machine or Machine.here()
        pid = os.getpid()
        return cls(machine.host, machine.boot, pid, machine.start_of(pid) or "",
                   now() + ttl if ttl > 0 else None)

    def labels(self) -> dict[str, str]:
        out = {HOST_LABEL: self.host, BOOT_LABEL: self.boot, PID_LABEL: str(self.pid),
               STARTED_LABEL: self.started, REMOVES_LABEL: "true"}
        if self.expires is not None:
            out[EXPIRES_LABEL] = f"{self.expires:.0f}"
        return out

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Owner | None:
        """The owner a lab's labels name; None if they name none (or not readably, or not as
        an owner that removes the lab itself: see REMOVES_LABEL). A kept lab with a time to
        live (kept_labels) names no process: only when it expires."""
        if HOST_LABEL not in labels and EXPIRES_LABEL in labels:
            with contextlib.suppress(ValueError):
                return cls("", "", 0, "", float(labels[EXPIRES_LABEL]))  # no host: never "gone"
            return None
        if labels.get(REMOVES_LABEL) != "true":
            return None
        try:
            expires = labels.get(EXPIRES_LABEL)
            return cls(labels[HOST_LABEL], labels.get(BOOT_LABEL, ""), int(labels[PID_LABEL]),
                       labels.get(STARTED_LABEL, ""), float(expires) if expires else None)
        except (KeyError, ValueError):
            return None

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def kept_labels(ttl: float = 0.0, *, now: Callable[[], float] = time.time) -> dict[str, str]:
    """The labels of a lab meant to outlive the process that makes it (`socketlab up`, until
    `socketlab down`): no owner process, so the reaper never takes it for a gone owner's; only
    its time to live, if it has one."""
    return {EXPIRES_LABEL: f"{now() + ttl:.0f}"} if ttl > 0 else {}


def stale(owner: Owner | None, machine: Machine, now: float) -> str | None:
    """Why a lab with this owner may be removed by anyone, or None: leave it alone."""
    if owner is None:
        return None
    if owner.expires is not None and now >= owner.expires:
        return f"its time to live ran out {now - owner.expires:.0f} s ago ({owner})"
    if (owner.host, owner.boot) != (machine.host, machine.boot):
        return None
    started = machine.start_of(owner.pid)
    if started is None:
        return f"its owner, {owner}, is gone"
    if owner.started and started and started != owner.started:
        return f"its owner, {owner}, is gone (that process id is another process's now)"
    return None


def process_start(pid: int, proc: Path = PROC) -> str | None:
    """A process's start (clock ticks after boot, /proc/PID/stat's 22nd field); None if there is
    no such process or it is a zombie (ended, not yet waited for); "" where /proc is missing
    and the process exists (then a process id used again cannot be told apart)."""
    if not (proc / "self").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the name, in parentheses, may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def children(pid: int, proc: Path = PROC) -> list[int]:
    """The processes whose parent is `pid` (from /proc; none where it is missing)."""
    found = []
    for entry in proc.glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[-1].split()
        except OSError:  # it ended while we looked
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.parent.name))
    return sorted(found)


def boot_id(proc: Path = PROC) -> str:
    try:
        return (proc / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
