"""The engine seam: what runs a lab's containers. The Lab above it never knows which one runs.

    engine = make_engine("compose", project="mylab")      # one Docker engine, via compose
    engine.create(topology, settings)      # networks and containers of a placed topology
    engine.start()                         # hosts first, then their sidecars
    engine.exec("server", ["ss", "-tan"], timeout=10)
    engine.remove()                        # everything of this lab, found by its labels

An engine works on *services* (a host's name, or the name of its sidecar, `X-instruments`):
the Lab maps a host to the service that runs a command for it. Every method may raise a
LabError saying what went wrong and what to do; none prints. Signals, rollback and the
choice of subnets stay in the Lab, the same for every engine.

To add an engine: subclass Engine, implement the abstract methods, register it in ENGINES
(module path and class name, imported on first use): `compose` (one Docker engine) and
`swarm` (hosts on Docker Swarm nodes, engine_swarm.py).
"""

from __future__ import annotations

import abc
import importlib
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from socketlab.errors import ConfigError
from socketlab.lab.process import ExecResult, RunningExec
from socketlab.lab.topology import Topology

ENGINES = {"compose": ("socketlab.lab.engine_compose", "ComposeEngine"),
           "swarm": ("socketlab.lab.engine_swarm", "SwarmEngine")}


@dataclass(frozen=True)
class Container:
    """One container of a lab, as the engine sees it now."""

    service: str
    state: str  # "running", "created", "exited", ...
    id: str     # a short id, for people
    address: str = "-"  # on its first network (given, or had), for people
    sidecar_of: str = ""  # the host whose instruments it carries, if it is a sidecar


@dataclass(frozen=True)
class Running:
    """A lab as it runs now: its topology (read from its containers) and the SOCKETLAB_*
    settings its lab-image hosts were started with."""

    topology: Topology
    settings: Mapping[str, str]
    lab_image: str


class Engine(abc.ABC):
    """One lab (a project name) on one engine. Made cheaply: it connects on first use."""

    name = "?"

    def __init__(self, project: str, *, progress: Callable[[str], None] | None = None) -> None:
        self.project = project
        self.progress = progress or (lambda _msg: None)

    # -- the lab's lifecycle (the Lab wraps these in signal handling and rollback) ----------
    @abc.abstractmethod
    def create(self, topology: Topology, settings: Mapping[str, str], *, lab_image: str,
               labels: Mapping[str, str] | None = None) -> None:
        """Make the networks and the containers of a placed topology, not started.
        settings: the SOCKETLAB_* variables lab-image containers get unless they set them;
        labels: more labels for every network and container (its owner's)."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start every container of this lab (hosts before their sidecars); return once they
        run, or raise saying which did not stay up."""

    @abc.abstractmethod
    def remove(self) -> list[str]:
        """Remove every container and network of this lab; what was removed, as
        "container NAME" / "network NAME" (empty: nothing was there)."""

    @abc.abstractmethod
    def leftovers(self) -> list[str]:
        """Every container and network of this lab that exists now, running or not."""

    @abc.abstractmethod
    def containers(self) -> dict[str, Container]:
        """Every container of this lab, by service name: hosts in the file's order, then
        sidecars."""

    @abc.abstractmethod
    def networks(self) -> dict[str, str | None]:
        """This lab's networks as they are now: name -> subnet (None: it has none)."""

    @abc.abstractmethod
    def running(self) -> Running:
        """The lab as it runs now; LabNotRunning if it does not."""

    # -- the engine as a whole ----------------------------------------------------------------
    @abc.abstractmethod
    def subnets_in_use(self) -> dict[str, ipaddress.IPv4Network]:
        """Every subnet the engine's networks hold, by network name, this lab's left out."""

    @abc.abstractmethod
    def has_image(self, image: str) -> bool: ...

    @abc.abstractmethod
    def version(self) -> str:
        """The engine's own version, for reports."""

    def describe(self) -> dict[str, str]:
        """What ran the lab, for a run's report (name -> version)."""
        return {self.name: self.version()}

    # -- in a container -------------------------------------------------------------------
    @abc.abstractmethod
    def exec(self, service: str, argv: Sequence[str], *, timeout: float | None = None) -> ExecResult:
        """Run a command (bounded by `timeout` inside the container) and wait for it."""

    @abc.abstractmethod
    def start_exec(self, service: str, argv: Sequence[str], *, timeout: float,
                   gated: bool = False) -> RunningExec:
        """Start a command and read it as it runs (see Lab.start for `gated`)."""

    def attach(self, service: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False,
               env: Sequence[str] = ()):
        """A command whose streams are handed over as they come (a terminal, if tty): for a
        person at the other end. An engine that cannot says so."""
        raise ConfigError(f"the {self.name} engine has no interactive commands",
                          hint="use exec, or a lab on the compose engine")

    @abc.abstractmethod
    def put(self, service: str, src: Path, dest: str) -> None:
        """Copy a file or a folder of this machine to `dest` in the container (the copy's own
        path; missing parent folders are made). Needs nothing in the container, not a shell."""

    @abc.abstractmethod
    def get(self, service: str, src: str, dest: Path) -> Path:
        """Copy one file out of the container to `dest`; returns dest."""

    @abc.abstractmethod
    def read_file(self, service: str, path: str) -> bytes | None:
        """A small file's content, copied out of the container (no process started in it);
        None if there is no such file. lab-shape's state is read so before every run."""

    @abc.abstractmethod
    def logs(self, service: str) -> str:
        """What the container printed, also once it has stopped."""


def make_engine(name: str, project: str, **options: object) -> Engine:
    """The engine called `name` for lab `project` (options go to its constructor)."""
    try:
        module, cls = ENGINES[name]
    except KeyError:
        raise ConfigError(f"unknown engine {name!r}", hint=f"use one of {', '.join(ENGINES)}") from None
    return getattr(importlib.import_module(module), cls)(project, **options)
