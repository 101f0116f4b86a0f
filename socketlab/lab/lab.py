"""Lab: one running copy of the topology in docker-compose.yml, and the only door to Docker.

    with Lab() as lab:                             # compose up (idle hosts) ... compose down
        lab.exec("server", ["ss", "-tan"])         # an ExecResult: exit code, stdout, stderr
        proc = lab.start("server", [...])          # a program left running, read line by line

Lifecycle goes through the compose CLI and the Docker SDK; finding a running lab's hosts and
exec in them go through the Engine API directly (docker_http: no SDK to import on the fast
path), one look-up per host per Lab. Containers are found by compose's labels (project,
service), never by their names.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from socketlab.errors import (
    ComposeError,
    ConfigError,
    ImageError,
    LabError,
    LabNotRunning,
    UnknownHost,
)
from socketlab.lab import compose as compose_cli
from socketlab.lab import shapespec, signals
from socketlab.lab.assets import COMPOSE_FILE
from socketlab.lab.config import HOSTS, LabConfig
from socketlab.lab.docker_api import connect
from socketlab.lab.docker_http import DockerHTTP, ExecStream
from socketlab.lab.existing import differences, exists_error
from socketlab.lab.process import ExecResult, RunningExec, bounded
from socketlab.lab.subnets import claim_subnet

if TYPE_CHECKING:
    import docker

T = TypeVar("T")
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
LAB_LABEL = "io.socketlab.lab"


class Lab:
    """One lab: a compose project of the server and client hosts on their own bridge."""

    def __init__(self, config: LabConfig | None = None, *, client: docker.DockerClient | None = None,
                 compose: compose_cli.Compose | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.config = config or LabConfig.isolated()  # never another user's lab
        self._client = client
        self._compose = compose
        self._http: DockerHTTP | None = None
        self._ids: dict[str, str] = {}  # the running hosts' container ids, looked up once
        self.progress = progress or (lambda _msg: None)

    @classmethod
    def running(cls, project: str, *, client: docker.DockerClient | None = None,
                progress: Callable[[str], None] | None = None) -> Lab:
        """The lab `project` as it runs now: its addresses and port read from its containers,
        so `run` and `exec` work whatever settings it was started with. Three requests to the
        engine (the hosts, the server's settings, the network), none through the SDK."""
        engine = DockerHTTP.from_env()
        flt = {"label": f"{PROJECT_LABEL}={project}", "status": "running"}
        found = {c["Labels"].get(SERVICE_LABEL): c for c in engine.containers(filters=flt)}
        if not all(h in found for h in HOSTS):
            raise LabNotRunning(f"lab {project!r} is not running")
        ips = {h: _lab_address(found[h]) for h in HOSTS}
        server = engine.inspect_container(found["server"]["Id"])["Config"]
        env = dict(e.split("=", 1) for e in server.get("Env") or [])
        subnet = engine.inspect_network(ips["server"][1])["IPAM"]["Config"][0]["Subnet"]
        config = LabConfig(project=project, subnet=subnet, server_ip=ips["server"][0],
                           client_ip=ips["client"][0], image=server["Image"],
                           port=int(env.get("SOCKETLAB_PORT", LabConfig.port)),
                           offloads=env.get("SOCKETLAB_OFFLOADS") == "on")
        lab = cls(config, client=client, progress=progress)
        lab._http, lab._ids = engine, {h: found[h]["Id"] for h in HOSTS}
        return lab

    # -- the Docker side, made on first use ------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        """The Docker SDK's client: lifecycle, images, networks, archives."""
        if self._client is None:
            self._client = connect()
        return self._client

    @property
    def http(self) -> DockerHTTP:
        """The Engine API without the SDK: look-ups and exec, the fast path."""
        if self._http is None:
            self._http = DockerHTTP.from_env()
        return self._http

    @property
    def compose(self) -> compose_cli.Compose:
        if self._compose is None:
            self._compose = compose_cli.detect()
        return self._compose

    def _compose_run(self, args: list[str], mode: str = "idle", timeout: float = 120) -> None:
        argv = self.compose.argv(self.config.project, COMPOSE_FILE, *args)
        compose_cli.run_compose(argv, self.config.compose_env(mode), timeout=timeout)

    # -- lifecycle --------------------------------------------------------------------------
    # A lab is started whole or not at all, and removed whole: a failed or interrupted start
    # removes what it created, and never touches a lab of the same name that was already there.
    def __enter__(self) -> Lab:
        return self.up()  # a failed or interrupted start has already rolled itself back

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        self.down()  # raises Interrupted itself if a signal comes while it removes
        if isinstance(exc, KeyboardInterrupt) and not signals.outcome_of(exc):
            raise signals.Interrupted(self._gone(removed=True)) from exc

    def up(self) -> Lab:
        """Start the two hosts (idle) on the lab's bridge; return once both are running.

        A lab of this name that is already there (running or not) is left exactly as it is:
        LabExists says how it differs from this one. Anything else that stops the start
        (an error, SIGINT or SIGTERM) removes what the start had created, then goes on;
        an interruption then says, as Interrupted, that nothing of the lab is left."""
        shaping = shapespec.env_shaping(os.environ)  # a bad SOCKETLAB_SHAPE_*: nothing starts
        self._check_image()
        self._refuse_if_there()
        self._ids.clear()
        try:
            self._create()
            self._start()
            self._await_shaping(shaping)
        except BaseException as e:
            self._roll_back()
            if isinstance(e, KeyboardInterrupt) and not signals.outcome_of(e):
                raise signals.Interrupted(self._gone(removed=False)) from e
            raise
        return self

    def _refuse_if_there(self) -> None:
        """LabExists if anything of a lab of this name is there (nothing is changed)."""
        there = self.leftovers()
        if not there:
            return
        try:
            running = self._running_now().config
        except LabNotRunning:
            raise exists_error(self.config.project, None, there) from None
        raise exists_error(self.config.project, differences(self.config, running))

    def _running_now(self) -> Lab:
        """The lab of this name as it runs now (LabNotRunning if it does not)."""
        return Lab.running(self.config.project, client=self.client)

    def _create(self) -> None:
        """Compose creates the network and the hosts (not started), on a free subnet if the
        subnet is "auto" (chosen under the machine-wide lock, held until the network exists)."""
        if not self.config.resolved:
            with claim_subnet(self.client) as subnet:
                self.config = self.config.with_(subnet=subnet)
                self._create()
            return
        self._check_subnet_free()
        self.progress(f"starting lab {self.config.project!r} on {self.config.subnet} "
                      f"(server {self.config.server_ip}, client {self.config.client_ip})")
        self._create_hosts()

    def _create_hosts(self) -> None:
        """The network and the hosts, on the subnet chosen (not started)."""
        with signals.deferred():  # compose runs to its end: no half-made network to chase
            self._compose_run(compose_cli.create_args())

    def _start(self) -> None:
        """Start both hosts at once (compose would start them one after the other, since
        the client depends on the server in the file's own `up`)."""
        containers = self._project_containers()
        missing = [h for h in HOSTS if h not in containers]
        if missing:
            raise ComposeError(f"compose did not create {', '.join(missing)}",
                               hint="run again with --debug to see compose's output")
        with signals.deferred():
            _in_parallel(lambda c: c.start(), containers.values())
        if set(self._containers()) != set(HOSTS):
            raise ComposeError("the lab's hosts did not stay running",
                               hint=f"see `docker logs {containers['server'].name}`")

    def _await_shaping(self, shaping: dict) -> None:
        """A host with SOCKETLAB_SHAPE_* is ready only once lab-host has its shaping in place
        (a host that cannot apply it stops, with lab-shape's one-line reason in its log)."""
        for host, wanted in shaping.items():
            if self.exec(host, shapespec.wait_argv(30), timeout=35).exit_code == 0:
                self.progress(f"{host}: shaped as {shapespec.ENV[host]} says ({', '.join(wanted)})")
                continue
            said = [ln for ln in self.logs(host).splitlines() if ln.startswith("lab-shape")]
            raise LabError(f"{host}: {shapespec.ENV[host]} was not put in place: "
                           f"{said[-1] if said else 'no word from lab-shape'}",
                           hint=f"see `socketlab logs {host}`; `socketlab shape {host} --backends`")

    def _roll_back(self) -> None:
        """Remove what a failed start created; further signals wait until that is done."""
        with signals.deferred(raise_after=False):
            self._remove()

    def down(self) -> list[str]:
        """Remove the hosts and the bridge; safe to call at any time, also twice. Returns
        what was removed (empty: there was no such lab).

        Everything is found by the compose project's label and removed through the SDK,
        both hosts at once: the same as `compose down` for this file (it has no volumes),
        in a quarter of the time. A signal while this runs waits until it is done, then is
        raised as Interrupted saying what became of the lab."""
        with signals.deferred(raise_after=False) as held:
            removed = self._remove()
        if held:
            raise signals.Interrupted(self._gone(removed=bool(removed)))
        return removed

    def _remove(self) -> list[str]:
        """Remove every container and network of this lab; LabError if any is still there
        afterwards (then nothing claims that it is gone)."""
        self._ids.clear()
        containers = list(self._project_containers().values())
        networks = self.client.networks.list(filters=self._project_filter())
        if containers or networks:
            self.progress(f"removing lab {self.config.project!r}")
        _in_parallel(_remove_container, containers)
        for network in networks:
            with contextlib.suppress(_sdk_errors().NotFound):
                network.remove()
        left = _settled(self.leftovers)
        if left:
            raise ComposeError(f"lab {self.config.project!r} could not be removed entirely: "
                               f"{', '.join(left)} still there",
                               hint=f"try `socketlab -p {self.config.project} down` again; "
                                    "see `docker ps -a` and `docker network ls`")
        return [f"container {c.name}" for c in containers] + [f"network {n.name}" for n in networks]

    def leftovers(self) -> list[str]:
        """Every container and network of this lab that exists now, running or not."""
        containers = self._project_containers().values()
        networks = self.client.networks.list(filters=self._project_filter())
        return [f"container {c.name}" for c in containers] + [f"network {n.name}" for n in networks]

    def _gone(self, *, removed: bool) -> str:
        """What an interrupted command says it left, once _remove has checked it."""
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

    def _project_filter(self) -> dict[str, str]:
        return {"label": f"{PROJECT_LABEL}={self.config.project}"}

    def _project_containers(self) -> dict[str, object]:
        """Every container of this lab, running or not, by service name."""
        found = self.client.containers.list(all=True, filters=self._project_filter(),
                                           ignore_removed=True)  # removed meanwhile: gone
        return {c.labels.get(SERVICE_LABEL, c.name): c for c in found}

    def _check_image(self) -> None:
        try:
            self.client.images.get(self.config.image)
        except _sdk_errors().ImageNotFound:
            raise ImageError(f"the lab image {self.config.image} is missing") from None

    def _check_subnet_free(self) -> None:
        """Fail before compose does, naming the network that holds the subnet."""
        want = ipaddress.IPv4Network(self.config.subnet)
        for net in self.client.networks.list():
            if (net.attrs.get("Labels") or {}).get(PROJECT_LABEL) == self.config.project:
                continue
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                try:
                    theirs = ipaddress.IPv4Network(cfg.get("Subnet", ""), strict=False)
                except ValueError:
                    continue
                if want.overlaps(theirs):
                    raise ConfigError(
                        f"subnet {want} overlaps Docker network {net.name!r} ({theirs})",
                        hint="pick another subnet, e.g. --subnet 192.168.34.0/24 "
                             "(or SOCKETLAB_SUBNET), or remove that network",
                    )

    # -- the hosts --------------------------------------------------------------------------
    def _containers(self) -> dict[str, object]:
        """The running hosts of this lab, by service name."""
        return {name: c for name, c in self._project_containers().items() if c.status == "running"}

    def container(self, host: str):
        if host not in HOSTS:
            raise UnknownHost(f"unknown host {host!r}", hint=f"the lab's hosts are {', '.join(HOSTS)}")
        found = self._containers().get(host)
        if found is None:
            raise LabNotRunning(f"host {host!r} of lab {self.config.project!r} is not running")
        return found

    def status(self) -> list[dict[str, str]]:
        """One row per host as it is now: name, address, state, container id (an absent
        host has no address: the settings asked for are not what is there)."""
        found = self._project_containers()
        return [{"host": h, "address": _configured_address(found[h]) if h in found else "-",
                 "state": found[h].status if h in found else "absent",
                 "container": found[h].short_id if h in found else "-"} for h in HOSTS]

    def subnet_in_use(self) -> str | None:
        """The subnet of this lab's network as it is now; None if it has none."""
        for network in self.client.networks.list(filters=self._project_filter()):
            for cfg in (network.attrs.get("IPAM") or {}).get("Config") or []:
                if cfg.get("Subnet"):
                    return cfg["Subnet"]
        return None

    def container_id(self, host: str) -> str:
        """The id of a running host's container: looked up once, then remembered."""
        if host not in HOSTS:
            raise UnknownHost(f"unknown host {host!r}", hint=f"the lab's hosts are {', '.join(HOSTS)}")
        if host not in self._ids:
            flt = {"label": [f"{PROJECT_LABEL}={self.config.project}", f"{SERVICE_LABEL}={host}"],
                   "status": "running"}
            found = self.http.containers(filters=flt)
            if not found:
                raise LabNotRunning(f"host {host!r} of lab {self.config.project!r} is not running")
            self._ids[host] = found[0]["Id"]
        return self._ids[host]

    def _on_host(self, host: str, action: Callable[[str], T]) -> T:
        """`action(container id)`; if a remembered container is gone, look it up once again."""
        try:
            return action(self.container_id(host))
        except LabNotRunning:
            if self._ids.pop(host, None) is None:
                raise
            return action(self.container_id(host))

    def read_file(self, host: str, path: str) -> bytes | None:
        """A file of a host, copied out through the engine (no process starts in the host);
        None if there is no such file."""
        return self._on_host(host, lambda cid: self.http.read_file(cid, path))

    def exec(self, host: str, argv: Sequence[str], *, timeout: float | None = None) -> ExecResult:
        """Run a command in a host and wait for it (bounded by `timeout`, in the host)."""
        argv = bounded(argv, timeout)
        start = time.monotonic()
        code, out, err = self._on_host(host, lambda cid: self.http.exec_run(cid, argv))
        return ExecResult(code, out.decode(errors="replace"), err.decode(errors="replace"),
                          time.monotonic() - start)

    def attach(self, host: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False,
               env: Sequence[str] = ()) -> ExecStream:
        """A command in a host with its streams handed over as they come: a terminal (tty) and
        input (stdin) if asked. Not bounded in time: a person is at the other end."""
        def begin(cid: str) -> ExecStream:
            exec_id = self.http.exec_create(cid, argv, stdin=stdin, tty=tty, environment=env)
            return self.http.exec_attach(exec_id, tty=tty)

        return self._on_host(host, begin)

    def start(self, host: str, argv: Sequence[str], *, timeout: float,
              gated: bool = False) -> RunningExec:
        """Start a command in a host, bounded by `timeout` in the host; read it as it runs.

        gated: the command is set up now but waits for RunningExec.release() to run, so the
        cost of starting an exec (about 0.1 s on some engines) is paid before it matters."""
        def kill(pid: str, sig: str) -> bool:
            return self.exec(host, ["kill", f"-{sig}", pid], timeout=5).exit_code == 0

        return self._on_host(host, lambda cid: self.http.start_exec(cid, argv, timeout=timeout,
                                                                    gated=gated, kill=kill))

    def logs(self, host: str) -> str:
        return self.container(host).logs().decode(errors="replace")


def _in_parallel(action: Callable[[object], object], items: Iterable[object]) -> None:
    """Apply `action` to every item at once (threads: the work is waiting on the engine)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(action, item) for item in items]:
            future.result()


def _sdk_errors():
    """The Docker SDK's errors, imported with the SDK (never on the fast path)."""
    import docker.errors

    return docker.errors


def _remove_container(container) -> None:
    errors = _sdk_errors()
    try:
        container.remove(force=True)
    except errors.NotFound:
        pass
    except errors.APIError as e:
        if e.status_code != 409:  # 409: another `down` is removing it already
            raise


def _settled(look: Callable[[], list[str]], timeout: float = 10.0) -> list[str]:
    """What `look` still finds once removals by others (a parallel `down`) have finished."""
    deadline = time.monotonic() + timeout
    while (left := look()) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the engine for removals in progress
    return left


def _configured_address(container) -> str:
    """A host's address on the lab network: the one it has, else the one it is given."""
    for settings in container.attrs["NetworkSettings"]["Networks"].values():
        given = (settings.get("IPAMConfig") or {}).get("IPv4Address")
        if settings.get("IPAddress") or given:
            return settings.get("IPAddress") or given
    return "-"


def _lab_address(container: dict) -> tuple[str, str]:
    """(IP address, network id) of a lab host on its lab network (from the engine's list)."""
    for settings in container["NetworkSettings"]["Networks"].values():
        if settings.get("IPAddress"):
            return settings["IPAddress"], settings["NetworkID"]
    raise LabNotRunning(f"container {container['Names'][0].lstrip('/')} has no address on the "
                        "lab network")


def remove_all_labs(client: docker.DockerClient) -> list[str]:
    """Every container and network that any socketlab lab left behind (by label)."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LAB_LABEL},
                                            ignore_removed=True):
        _remove_container(container)
        removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": LAB_LABEL}):
        network.remove()
        removed.append(f"network {network.name}")
    return removed
