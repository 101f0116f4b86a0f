"""Lab: one running copy of a topology (docker-compose.yml, or a compose file of your own).

    with Lab() as lab:                             # networks and idle hosts up ... all removed
        lab.exec("server", ["ss", "-tan"])         # an ExecResult: exit code, stdout, stderr
        proc = lab.start("server", [...])          # a program left running, read line by line
        lab.put("client", Path("my_client.py"), "/work/my_client.py")
        lab.topology.host("server").ip             # who is where (socketlab.lab.topology)

The Lab reads the topology, places it on its subnets, and keeps a lab whole: started whole or
not at all, removed whole, a lab of the same name never touched, signals held while Docker
changes. What runs the containers is its engine (socketlab.lab.engine; compose by default):
nothing here knows which one. A host that runs an image of its own has its instruments
(tcpdump, tc, iptables, lab-shape) in a sidecar: `instruments=True` runs a command there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from socketlab.errors import ConfigError, ImageError, LabError, LabNotRunning
from socketlab.lab import seal, shapespec, signals
from socketlab.lab.assets import COMPOSE_FILE
from socketlab.lab.composefile import LAB_LABEL, read_topology
from socketlab.lab.config import DEFAULT_PORT, DEFAULT_SUBNET, LAB_IMAGE, LabConfig
from socketlab.lab.engine import Engine, make_engine
from socketlab.lab.existing import differences, exists_error
from socketlab.lab.owner import Owner, kept_labels
from socketlab.lab.process import ExecResult, RunningExec
from socketlab.lab.topology import Topology

if TYPE_CHECKING:
    import docker

    from socketlab.lab.compose import Compose
    from socketlab.lab.engine_compose import ComposeEngine

__all__ = ["LAB_LABEL", "Lab"]
L = TypeVar("L", bound="Lab")  # Lab.running() makes a lab of the class it is asked of
SETUP_S = 20.0  # the most a host's lab-host may take to set its network up


class Lab:
    """One lab: a topology's hosts and networks, run by an engine under one project name."""

    def __init__(self, config: LabConfig | None = None, *, engine: Engine | None = None,
                 client=None, compose=None, progress: Callable[[str], None] | None = None) -> None:
        self.config = config or LabConfig.isolated()  # never another user's lab
        self.progress = progress or (lambda _msg: None)
        self.engine = engine or make_engine("compose", self.config.project, client=client,
                                            compose=compose, progress=self._say)
        self._topology: Topology | None = None
        self._kept = False  # up(kept=True): meant to outlive this process

    def _say(self, message: str) -> None:
        self.progress(message)

    @classmethod
    def running(cls: type[L], project: str, *, client: docker.DockerClient | None = None,
                engine: Engine | None = None, progress: Callable[[str], None] | None = None) -> L:
        """The lab `project` as it runs now: its topology and settings read from its
        containers, so `run` and `exec` work whatever it was started with."""
        engine = engine or make_engine("compose", project, client=client)
        now = engine.running()
        topo = now.topology
        server, client_host = topo.role_host("server"), topo.role_host("client")
        source = now.settings.get("SOCKETLAB_TOPOLOGY", "")
        config = LabConfig(project=project, subnet=topo.networks[0].subnet or DEFAULT_SUBNET,
                           server_ip=server.ip if server else "",
                           client_ip=client_host.ip if client_host else "",
                           image=now.lab_image or LAB_IMAGE,
                           port=int(now.settings.get("SOCKETLAB_PORT", DEFAULT_PORT)),
                           offloads=now.settings.get("SOCKETLAB_OFFLOADS") == "on",
                           topology=source if source != str(COMPOSE_FILE) else "")
        lab = cls(config, engine=engine, progress=progress)
        lab._topology = topo
        return lab

    # -- compose-engine specifics, for the callers that need them ----------------------------
    @property
    def client(self) -> docker.DockerClient:
        """The Docker SDK's client of the engine (image builds, run metadata)."""
        return self._compose_engine().client

    @property
    def compose(self) -> Compose:
        return self._compose_engine().compose

    def _compose_engine(self) -> ComposeEngine:
        from socketlab.lab.engine_compose import ComposeEngine  # the engine's own module: loaded

        if not isinstance(self.engine, ComposeEngine):
            raise ConfigError(f"the {self.engine.name} engine has no Docker client of its own",
                              hint="this needs a lab on Docker (compose or swarm)")
        return self.engine

    # -- the topology ----------------------------------------------------------------------
    @property
    def topology(self) -> Topology:
        """The lab's hosts and networks: as placed (once the lab is up, or on a fixed
        subnet), else as the file says (addresses None until subnet auto is chosen)."""
        if self._topology is None:
            self._topology = self._read_topology()
        return self._topology

    @property
    def compose_file(self) -> Path:
        return Path(self.config.topology).resolve() if self.config.topology else COMPOSE_FILE

    def _read_topology(self) -> Topology:
        """The topology file read with this lab's settings; its first network on the lab's
        subnet (the other networks keep the file's subnets)."""
        cfg = self.config if self.config.resolved else self.config.with_(subnet=DEFAULT_SUBNET)
        topo = read_topology(self.compose_file, self._settings(cfg), lab_image=self.config.image,
                             mounts=[folder for folder, _ in self.config.folders()],
                             unsealed=self.config.unsealed)
        if not self.config.resolved:
            return topo
        return topo.place({topo.networks[0].name: self.config.subnet})

    def _settings(self, cfg: LabConfig) -> dict[str, str]:
        return {**cfg.compose_env(), "SOCKETLAB_TOPOLOGY": str(self.compose_file)}

    def _adopt(self, topo: Topology) -> None:
        """Use a placed topology; the settings then say where its server and client are."""
        self._topology = topo = topo.with_mounts(self.config.folders())
        subnet = topo.networks[0].subnet or self.config.subnet  # placed: it has one
        self.config = dataclasses.replace(self.config, subnet=subnet)
        if self.config.topology:
            server, client = topo.role_host("server"), topo.role_host("client")
            self.config = dataclasses.replace(self.config, server_ip=server.ip if server else "",
                                              client_ip=client.ip if client else "")

    # -- lifecycle --------------------------------------------------------------------------
    # A lab is started whole or not at all, and removed whole: a failed or interrupted start
    # removes what it created, and never touches a lab of the same name that was already there.
    def __enter__(self) -> Lab:
        return self.up()  # a failed or interrupted start has already rolled itself back

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        self.down()  # raises Interrupted itself if a signal comes while it removes
        if isinstance(exc, KeyboardInterrupt) and not signals.outcome_of(exc):
            raise signals.Interrupted(self._gone(removed=True)) from exc

    def up(self, *, kept: bool = False) -> Lab:
        """Start every host (idle) on the lab's networks; return once all are running.
        kept: the lab is meant to outlive this process (`socketlab up`, until `down`): it names
        no owner process, so the reaper (socketlab.lab.reaper) never removes it as a gone
        owner's; otherwise it is this process's, and removed by the next reap once it is gone.

        A lab of this name that is already there (running or not) is left exactly as it is:
        LabExists says how it differs from this one; so is one that another process is
        starting at this moment (this start waits for that one, then finds it). Anything
        else that stops the start (an error, SIGINT or SIGTERM) removes what the start had
        created, then goes on; an interruption then says, as Interrupted, that nothing of
        the lab is left."""
        self._kept = kept
        topo = self.topology  # a broken topology file fails here, before anything is done
        shaping = shapespec.env_shaping(os.environ)  # a bad SOCKETLAB_SHAPE_*: nothing starts
        self._check_image()
        from socketlab.lab.startlock import starting  # making a lab only

        with starting(self.config.project, self.progress):  # a start of this name at a time
            self._refuse_if_there()
            try:
                self._create(topo)
                with signals.deferred():
                    self.engine.start()
                self._await_shaping(shaping)
                self._wait_set_up()
                self._check_sealed()
            except BaseException as e:
                self._roll_back()
                if isinstance(e, KeyboardInterrupt) and not signals.outcome_of(e):
                    raise signals.Interrupted(self._gone(removed=False)) from e
                raise
        return self

    def _await_shaping(self, shaping: dict) -> None:
        """A host with SOCKETLAB_SHAPE_* is ready only once lab-host has its shaping in place
        (a host that cannot apply it stops, with lab-shape's one-line reason in its log)."""
        for host, wanted in shaping.items():
            try:
                done = self.exec(host, shapespec.wait_argv(30), timeout=35).exit_code == 0
            except LabError:  # it stopped: its log says why
                done = False
            if done:
                self.progress(f"{host}: shaped as {shapespec.ENV[host]} says ({', '.join(wanted)})")
                continue
            said = [ln for ln in self.logs(host).splitlines() if ln.startswith("lab-shape")]
            raise LabError(f"{host}: {shapespec.ENV[host]} was not put in place: "
                           f"{said[-1] if said else 'no word from lab-shape'}",
                           hint=f"see `socketlab logs {host}`; `socketlab shape {host} --backends`")

    def _wait_set_up(self) -> None:
        """Running is not ready: each host's lab-host sets its network up first (routes, no
        default route, offloads). Wait for that, in every host at once (one exec each)."""
        def ready(service: str) -> tuple[str, bool]:
            try:
                return service, self.engine.exec(service, ["lab-ready", "--setup", f"{SETUP_S:g}"],
                                                 timeout=SETUP_S + 5).exit_code == 0
            except LabError:  # it stopped: its log says why
                return service, False

        from concurrent.futures import ThreadPoolExecutor  # here: a run on a running lab needs none

        with ThreadPoolExecutor(max_workers=4) as pool:
            late = [s for s, ok in pool.map(ready, [h.tools for h in self.topology.hosts]) if not ok]
        if late:
            said = self._last_words(late[0])
            raise LabError(f"{late[0]} did not set its network up"
                           + (f": {said}" if said else f" in {SETUP_S:g} s"),
                           hint="nothing of the lab is left; fix what its log says, then start it again")

    def _check_sealed(self) -> None:
        """Every host's seal, asked of it from outside its programs, before the lab is up (a
        host started with --unsealed is not required to be sealed: it is warned of)."""
        for warning in seal.require_sealed(self.seals()):
            self.progress(warning)

    def seals(self, hosts: Sequence[str] | None = None) -> list[seal.Seal]:
        """Each host's seal as it is now (lab-seal --check, run beside its programs)."""
        chosen = [h for h in self.topology.hosts if hosts is None or h.name in hosts]
        return seal.seals(chosen, lambda s, argv: self.engine.exec(s, argv, timeout=15))

    def _last_words(self, service: str) -> str:
        """The last lines a container printed, if any (why it stopped, as a rule)."""
        try:
            lines = [ln.strip() for ln in self.engine.logs(service).splitlines() if ln.strip()]
        except LabError:
            return ""
        return "; ".join(lines[-2:])

    def _check_image(self) -> None:
        if not self.engine.has_image(self.config.image):
            raise ImageError(f"the lab image {self.config.image} is missing")

    def _refuse_if_there(self) -> None:
        """LabExists if anything of a lab of this name is there (nothing is changed)."""
        there = self.leftovers()
        if not there:
            return
        try:
            running = type(self).running(self.config.project, engine=self.engine).config
        except LabNotRunning:
            raise exists_error(self.config.project, None, there) from None
        raise exists_error(self.config.project, differences(self.config, running))

    def _create(self, topo: Topology) -> None:
        """The engine makes the networks and the hosts (not started), on free subnets if the
        subnet is "auto" (chosen under the machine-wide lock, held until the networks exist)."""
        if self.config.resolved:
            self._adopt(topo)
            self._create_placed()
            return
        from socketlab.lab.subnets import claim_subnets  # making a lab only

        taken = lambda: self.engine.subnets_in_use().values()  # noqa: E731
        with claim_subnets(taken, len(topo.networks)) as subnets:
            self.config = self.config.with_(subnet=subnets[0])
            placed = self._read_topology()
            self._adopt(placed.place({n.name: s for n, s in zip(placed.networks[1:], subnets[1:],
                                                                strict=True)}))
            self._create_placed()

    def _create_placed(self) -> None:
        self._check_subnets_free()
        hosts = ", ".join(f"{h.name} {h.ip}" for h in self.topology.hosts)
        subnets = ", ".join(n.subnet or "?" for n in self.topology.networks)
        self.progress(f"starting lab {self.config.project!r} on {subnets} ({hosts})")
        owner = kept_labels(self.config.ttl) if self._kept else \
            Owner.me(self.config.ttl).labels()  # for the reaper (socketlab.lab.reaper)
        with signals.deferred():  # the engine runs to its end: no half-made network to chase
            self.engine.create(self.topology, self._settings(self.config), lab_image=self.config.image,
                               labels=owner)

    def _check_subnets_free(self) -> None:
        """Fail before the engine does, naming the network that holds a subnet."""
        theirs = self.engine.subnets_in_use()
        for n in self.topology.networks:
            want = ipaddress.IPv4Network(n.subnet or "")
            for name, other in theirs.items():
                if want.overlaps(other):
                    raise ConfigError(
                        f"subnet {want} overlaps Docker network {name!r} ({other})",
                        hint="pick another subnet, e.g. --subnet 192.168.34.0/24 "
                             "(or SOCKETLAB_SUBNET, or --subnet auto), or remove that network")

    def _roll_back(self) -> None:
        """Remove what a failed start created; further signals wait until that is done."""
        with signals.deferred(raise_after=False):
            self.engine.remove()

    def down(self) -> list[str]:
        """Remove the hosts and the networks; safe to call at any time, also twice. Returns
        what was removed (empty: there was no such lab). A signal while this runs waits until
        it is done, then is raised as Interrupted saying what became of the lab."""
        with signals.deferred(raise_after=False) as held:
            removed = self.engine.remove()
        if held:
            raise signals.Interrupted(self._gone(removed=bool(removed)))
        return removed

    def leftovers(self) -> list[str]:
        """Every container and network of this lab that exists now, running or not."""
        return self.engine.leftovers()

    def _gone(self, *, removed: bool) -> str:
        """What an interrupted command says it left, once the engine has checked it."""
        if removed:
            return f"lab {self.config.project!r} was removed; nothing of it is left"
        return f"lab {self.config.project!r} was not started; nothing of it is left"

    @contextlib.contextmanager
    def removed_if_interrupted(self) -> Iterator[Lab]:
        """Keep this (just started) lab, unless SIGINT/SIGTERM comes during the block."""
        try:
            yield self
        except KeyboardInterrupt as e:
            if signals.outcome_of(e):
                raise
            self._roll_back()
            raise signals.Interrupted(self._gone(removed=True)) from e

    # -- the hosts --------------------------------------------------------------------------
    def status(self) -> list[dict[str, str]]:
        """One row per host as it is now: name, address, state, container id, its seal (an
        absent host has no address: the settings asked for are not what is there)."""
        found = [c for c in self.engine.containers().values() if not c.sidecar_of]
        running = [c.service for c in found if c.state == "running"]
        sealed = {s.host: s.words for s in self.seals(running)} if running else {}
        rows = [{"name": c.service, "address": c.address, "state": c.state, "container": c.id,
                 "sealed": sealed.get(c.service, "-")} for c in found]
        seen = {c.service for c in found}
        return rows + [{"name": h.name, "address": "-", "state": "absent", "container": "-",
                        "sealed": "-"}
                       for h in self.topology.hosts if h.name not in seen]

    def subnet_in_use(self) -> str | None:
        """The subnet of this lab's first network as it is now; None if it has none."""
        return next(iter(self.engine.networks().values()), None)

    def _service(self, host: str, instruments: bool) -> str:
        h = self.topology.host(host)  # UnknownHost names the lab's hosts
        return h.tools if instruments else h.name

    def exec(self, host: str, argv: Sequence[str], *, timeout: float | None = None,
             instruments: bool = False) -> ExecResult:
        """Run a command in a host and wait for it (bounded by `timeout`, in the host).
        instruments: in the container that carries the host's tools (its sidecar, if any)."""
        return self.engine.exec(self._service(host, instruments), argv, timeout=timeout)

    def start(self, host: str, argv: Sequence[str], *, timeout: float, gated: bool = False,
              instruments: bool = False) -> RunningExec:
        """Start a command in a host, bounded by `timeout` in the host; read it as it runs.

        gated: the command is set up now but waits for RunningExec.release() to run, so the
        cost of starting an exec (about 0.1 s on some engines) is paid before it matters."""
        return self.engine.start_exec(self._service(host, instruments), argv, timeout=timeout,
                                      gated=gated)

    def attach(self, host: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False,
               env: Sequence[str] = ()):
        """A command in a host with its streams handed over as they come: a terminal (tty) and
        input (stdin) if asked. Not bounded in time: a person is at the other end."""
        return self.engine.attach(self._service(host, False), argv, tty=tty, stdin=stdin, env=env)

    def put(self, host: str, src: str | Path, dest: str) -> None:
        """Copy a file or a folder of this machine into a host, as `dest` (parents made)."""
        src = Path(src)
        if not src.exists():
            raise ConfigError(f"{src} does not exist", hint="give a file or a folder on this machine")
        self.engine.put(self._service(host, False), src, dest)

    def get(self, host: str, src: str, dest: str | Path, *, instruments: bool = False) -> Path:
        """Copy one file out of a host to `dest` on this machine."""
        return self.engine.get(self._service(host, instruments), src, Path(dest))

    def read_file(self, host: str, path: str, *, instruments: bool = False) -> bytes | None:
        """A file of a host, copied out through the engine (no process starts in the host);
        None if there is no such file."""
        return self.engine.read_file(self._service(host, instruments), path)

    def logs(self, host: str) -> str:
        return self.engine.logs(self._service(host, False))
