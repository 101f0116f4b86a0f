"""A lab of the same name that is already there: how it differs from the one asked for, the
error that refuses to touch it, and the commands' way to use it instead of starting one.

    differences(asked, running)   {"subnet": ("192.168.40.0/24", "192.168.131.0/24")}
    exists_error("x", diffs)      LabExists saying why nothing was started
    with this_or_running(lab) as lab: ...   a fresh lab, or the one that runs, left running
    refuse_unusable(lab)          what this_or_running would refuse, refused now (nothing made)
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from socketlab.errors import LabExists, LabNotRunning
from socketlab.lab import signals
from socketlab.lab.config import LabConfig

if TYPE_CHECKING:
    from socketlab.lab.lab import Lab

# The settings that make one lab differ from another, in the order a message names them.
SETTINGS = ("topology", "subnet", "server_ip", "client_ip", "port", "image", "offloads")
_ADDRESSES = {"subnet", "server_ip", "client_ip"}


def differences(asked: LabConfig, running: LabConfig,
                only: Collection[str] | None = None) -> dict[str, tuple[str, str]]:
    """setting -> (asked for, running) for each setting in `only` (default all) that differs.
    Addresses asked as "auto" match any."""
    found = {}
    for name in SETTINGS:
        if only is not None and name not in only:
            continue
        if name in _ADDRESSES and not asked.resolved:
            continue
        want, have = _shown(name, getattr(asked, name)), _shown(name, getattr(running, name))
        if want != have:
            found[name] = (want, have)
    return found


def _shown(name: str, value: object) -> str:
    if name == "subnet":
        return str(ipaddress.IPv4Network(str(value), strict=False))
    if name == "offloads":
        return "on" if value else "off"
    if name == "topology":  # "" is the bundled file; a path is compared as an absolute one
        return str(Path(str(value)).resolve()) if value else "docker-compose.yml"
    return str(value)


def exists_error(project: str, diffs: dict[str, tuple[str, str]] | None,
                 there: Collection[str] = ()) -> LabExists:
    """The refusal: diffs None means the lab is there but not running (`there` says what)."""
    hint = (f"it was left as it is: take it down first (`socketlab -p {project} down`), "
            "or give the new lab another name with -p")
    if diffs is None:
        return LabExists(f"lab {project!r} is already there but not running "
                         f"({', '.join(there)})", hint)
    if not diffs:
        return LabExists(f"lab {project!r} is already running", hint, running=True)
    said = ", ".join(f"{name.replace('_', ' ')} {have}, not {want}"
                     for name, (want, have) in diffs.items())
    return LabExists(f"lab {project!r} is already running with other settings ({said})", hint,
                     running=True, differences=diffs)


@contextlib.contextmanager
def this_or_running(lab: Lab, asked: Collection[str] | None = None) -> Iterator[Lab]:
    """A lab for the length of the block: `lab`, started now and removed at the end; or, if a
    lab of that name already runs and differs in none of the settings `asked` (default all),
    that one, used as it is and left running. A lab that differs is refused (LabExists)."""
    try:
        lab.up()
    except LabExists as e:
        if not e.running:
            raise
        running = lab.running(lab.config.project, engine=lab.engine, progress=lab.progress)
        if differences(lab.config, running.config, asked):
            raise
        yield from _borrowed(running)
        return
    try:
        yield lab
    except BaseException as e:
        lab.__exit__(type(e), e, e.__traceback__)  # removes it; says so if interrupted
        raise
    lab.down()


def refuse_unusable(lab: Lab, asked: Collection[str] | None = None) -> None:
    """LabExists now if this_or_running(lab, asked) would refuse: a lab of that name is there
    but not running, or runs and differs in a setting `asked`. For a command that makes files
    (a run folder) before its lab: it refuses before making anything. Nothing is changed."""
    there = lab.leftovers()
    if not there:
        return
    project = lab.config.project
    try:
        running = lab.running(project, engine=lab.engine)
    except LabNotRunning:
        raise exists_error(project, None, there) from None
    diffs = differences(lab.config, running.config, asked)
    if diffs:
        raise exists_error(project, diffs)


def _borrowed(running: Lab) -> Iterator[Lab]:
    project = running.config.project
    running.progress(f"lab {project!r} is already running on {running.config.subnet}: "
                     "using it as it is, and leaving it up")
    try:
        yield running
    except KeyboardInterrupt as e:
        if signals.outcome_of(e):
            raise
        raise signals.Interrupted(f"lab {project!r} is still running, as before") from e
