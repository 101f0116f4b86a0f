"""What every command shares: exit codes, the lab's settings from options, progress, JSON.

The commands reach the lab through `lab_for` and `running_lab` here (tests put a fake in).
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socketlab.errors import ConfigError
from socketlab.lab.config import LabConfig
from socketlab.lab.lab import Lab

if TYPE_CHECKING:
    from rich.console import Console


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1         # the command ran, and what it ran failed (e.g. connect refused)
    LAB_ERROR = 2      # socketlab could not do what was asked (a LabError)
    USAGE = 64
    INTERRUPTED = 130


def topology_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--subnet", help="lab subnet (default 192.168.33.0/24; env SOCKETLAB_SUBNET)")
    cmd.add_argument("--server-ip", help="server address (default .5 of the subnet)")
    cmd.add_argument("--client-ip", help="client address (default .6 of the subnet)")
    cmd.add_argument("--port", type=int, help="server port (default 6666; env SOCKETLAB_PORT)")
    cmd.add_argument("--topology", metavar="FILE",
                     help="a compose file of your own as the lab (e.g. topologies/router.yml; "
                          "default the post's two hosts; env SOCKETLAB_TOPOLOGY)")
    cmd.add_argument("--mount", action="append", metavar="DIR[:PATH]",
                     help="a folder of this machine, read-only in every lab-image host at PATH "
                          "(default /work); repeat for more")
    cmd.add_argument("--offloads", action="store_true", default=None,
                     help="keep the hosts' segmentation/checksum offloads on (default off, so "
                          "captures show MSS-sized segments; env SOCKETLAB_OFFLOADS=on)")


def program_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--message", default="hello,world", help="what the client sends")
    cmd.add_argument("--bufsize", type=int, default=3, help="the server's receive size")
    cmd.add_argument("--count", type=int, default=1, help="how many times the client sends it")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more (else a usage error naming the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small: use 1 or more")
    return value


def config_from(args: argparse.Namespace) -> LabConfig:
    """Settings from the environment, then the options. A --subnet given without addresses
    gets its own .5 and .6, whatever SOCKETLAB_SERVER_IP/CLIENT_IP say."""
    subnet = getattr(args, "subnet", None)
    derive = "" if subnet else None
    return LabConfig.from_env(project=args.project, subnet=subnet,
                              server_ip=getattr(args, "server_ip", None) or derive,
                              client_ip=getattr(args, "client_ip", None) or derive,
                              port=getattr(args, "port", None),
                              offloads=getattr(args, "offloads", None),
                              topology=getattr(args, "topology", None),
                              mounts=tuple(getattr(args, "mount", None) or ()) or None,
                              unsealed=tuple(getattr(args, "unsealed", None) or ()) or None)


# option -> (LabConfig setting, its environment variable)
_SETTINGS = {"subnet": ("subnet", "SOCKETLAB_SUBNET"), "server_ip": ("server_ip", "SOCKETLAB_SERVER_IP"),
             "client_ip": ("client_ip", "SOCKETLAB_CLIENT_IP"), "port": ("port", "SOCKETLAB_PORT"),
             "offloads": ("offloads", "SOCKETLAB_OFFLOADS"), "image": ("image", "SOCKETLAB_IMAGE")}


def asked(args: argparse.Namespace, environ=None) -> set[str]:
    """The lab settings the user asked for, by an option or a SOCKETLAB_* variable (a lab
    that already runs may differ in the others)."""
    import os

    env = os.environ if environ is None else environ
    return {setting for option, (setting, var) in _SETTINGS.items()
            if getattr(args, option, None) is not None or env.get(var)}


def writable_folder(path: str | Path, option: str) -> Path:
    """`path` as a folder this process can write files in, checked now, before anything
    starts (by writing a file there: permissions, a read-only disk, a file in the way);
    folders made for the check are removed again. ConfigError if it cannot."""
    import tempfile

    path = Path(path)
    made = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ConfigError(f"{option} {path}: cannot write there ({e.strerror})",
                          hint="give a folder you can write to") from None
    finally:
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
    return path


def writable_file(path: str | Path, option: str) -> Path:
    """`path` as a file this process can write, checked now (its folder, and the file itself
    if it exists); nothing is left by the check. ConfigError if it cannot."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder", hint="give a file name")
    writable_folder(path.parent, option)
    existed = path.exists()
    try:
        with open(path, "a"):
            pass
    except OSError as e:
        raise ConfigError(f"{option} {path}: cannot write it ({e.strerror})",
                          hint="give a file you can write") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


class LaterConsole:
    """A rich Console made on its first use. rich takes about 0.05 s to import: a command
    whose first words come after a wait (`run`, once its exchange is over) loads it during
    that wait (see `load_meanwhile`), not before anything has started."""

    def __init__(self, **settings: Any) -> None:  # rich Console's own keyword arguments
        self._settings = settings
        self._console: Console | None = None

    def resolved(self) -> Console:
        """The Console itself (made now, on first use), for what takes one whole (rich's
        Progress, Live)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._settings)
        return self._console

    def __getattr__(self, name: str):
        return getattr(self.resolved(), name)


def dump_json(console: Console, data: object) -> None:
    console.print_json(json.dumps(data, default=str))


def progress(err: Console):
    def say(message: str) -> None:
        from rich.markup import escape  # a step's words may quote names with brackets

        err.print(f"[cyan]•[/] {escape(message)}", markup=True, soft_wrap=True)

    return say


def engine_of(args: argparse.Namespace) -> str:
    """compose or swarm: --engine, else SOCKETLAB_ENGINE, else compose."""
    engine = getattr(args, "engine", None) or os.environ.get("SOCKETLAB_ENGINE") or "compose"
    if engine not in ("compose", "swarm"):
        raise ConfigError(f"SOCKETLAB_ENGINE={engine!r} is neither compose nor swarm",
                          hint="use compose (one Docker engine) or swarm")
    return engine


def lab_for(args: argparse.Namespace, err: Console, *, topology: str | None = None) -> Lab:
    """A lab to start: its settings from the options and the environment (`topology`: this
    compose file, whatever the options say)."""
    config = config_from(args)
    if topology is not None:
        config = config.with_(topology=topology, server_ip=config.server_ip,
                              client_ip=config.client_ip)
    if engine_of(args) == "swarm":
        from socketlab.lab.swarm import Swarm, parse_place
        from socketlab.lab.swarm_lab import SwarmLab

        place = getattr(args, "place", None) or os.environ.get("SOCKETLAB_SWARM_PLACE")
        return SwarmLab(config, swarm=Swarm.from_settings(), place=parse_place(place),
                        progress=progress(err))
    return Lab(config, progress=progress(err))


def running_lab(args: argparse.Namespace, err: Console) -> Lab:
    """The lab that runs now: its settings read from its containers."""
    if engine_of(args) == "swarm":
        from socketlab.lab.swarm import Swarm
        from socketlab.lab.swarm_lab import SwarmLab

        lab: Lab = SwarmLab.running(config_from(args).project, swarm=Swarm.from_settings(),
                                    progress=progress(err))
    else:
        lab = Lab.running(config_from(args).project, progress=progress(err))
    unsealed = [h.name for h in lab.topology.hosts if h.unsealed]
    if unsealed:  # every command on such a lab says so (up --unsealed: docs/sealed.md)
        err.print(f"warning: lab {lab.config.project!r} runs {', '.join(unsealed)} UNSEALED "
                  "(--unsealed): not held to socketlab's allowlist", markup=False, soft_wrap=True)
    return lab
