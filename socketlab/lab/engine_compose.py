"""The compose engine: one Docker engine; the lab made by the compose CLI, run through the SDK.

Creation goes through compose, on the topology rendered as a compose file (so the lab is what
compose would make of the user's own file, plus the lab's addresses, labels, routes and
sidecars); starting, copying and removal go through the Docker SDK; reading the running lab and
exec go through the Engine API directly (docker_http: the fast path imports no SDK). Containers
are found by compose's labels (project, service), never by container names.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from socketlab.errors import ComposeError, ImageError, LabError, LabNotRunning
from socketlab.lab import compose as compose_cli
from socketlab.lab.composefile import (
    INDEX_LABEL,
    INSTRUMENTS_LABEL,
    LAB_LABEL,
    MTU_OPT,
    NETWORKS_LABEL,
    ROLE_LABEL,
    SIDECAR_LABEL,
    dump,
    render,
)
from socketlab.lab.docker_api import connect
from socketlab.lab.docker_http import DockerHTTP
from socketlab.lab.engine import Container, Engine, Running
from socketlab.lab.process import ExecResult, RunningExec, bounded
from socketlab.lab.topology import DEFAULT_MTU, INLINE, Host, Network, Topology

if TYPE_CHECKING:
    import docker

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NETWORK_LABEL = "com.docker.compose.network"
T = TypeVar("T")


class ComposeEngine(Engine):
    name = "compose"

    def __init__(self, project: str, *, client: docker.DockerClient | None = None,
                 compose: compose_cli.Compose | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        super().__init__(project, progress=progress)
        self._client, self._compose = client, compose
        self._http: DockerHTTP | None = None
        self._ids: dict[str, str] = {}  # running containers by service, looked up once

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    @property
    def http(self) -> DockerHTTP:
        """The Engine API without the SDK: reading the running lab and exec (the fast path)."""
        if self._http is None:
            self._http = DockerHTTP.from_env()
        return self._http

    @property
    def compose(self) -> compose_cli.Compose:
        if self._compose is None:
            self._compose = compose_cli.detect()
        return self._compose

    # -- lifecycle ----------------------------------------------------------------------------
    def create(self, topology: Topology, settings: Mapping[str, str], *, lab_image: str) -> None:
        doc = render(topology, lab_image=lab_image, settings=settings)
        project_dir = Path(topology.source).resolve().parent if topology.source else Path.cwd()
        with tempfile.TemporaryDirectory(prefix=f"socketlab-{self.project}-") as tmp:
            rendered = Path(tmp) / "compose.yml"
            rendered.write_text(dump(doc))
            self._build_missing(topology, doc, rendered, project_dir, lab_image)
            self._compose_run(rendered, project_dir, compose_cli.create_args(), settings)

    def _build_missing(self, topology: Topology, doc: Mapping, rendered: Path, project_dir: Path,
                       lab_image: str) -> None:
        """Images of the user's own hosts that compose can build and that are not there yet."""
        for h in topology.hosts:
            if h.image == lab_image or self.has_image(h.image):
                continue
            if not doc["services"][h.name].get("build"):
                raise ImageError(f"the image {h.image} of host {h.name!r} is missing",
                                 hint=f"build or load it (`docker build -t {h.image} ...`), "
                                      "or give the host a build: section")
            self.progress(f"building {h.image} for host {h.name!r}")
            self._compose_run(rendered, project_dir, ["build", h.name], {}, timeout=900)

    def _compose_run(self, file: Path, project_dir: Path, args: list[str], env: Mapping[str, str],
                     timeout: float = 120) -> None:
        argv = self.compose.argv(self.project, file, *args, project_dir=project_dir)
        compose_cli.run_compose(argv, env, timeout=timeout)

    def start(self) -> None:
        self._ids.clear()
        containers = self._project_containers()
        hosts = [c for c in containers.values() if SIDECAR_LABEL not in c.labels]
        sidecars = [c for c in containers.values() if SIDECAR_LABEL in c.labels]
        if not hosts:
            raise ComposeError("compose created no host", hint="run again with --debug")
        _in_parallel(lambda c: c.start(), hosts)
        _in_parallel(lambda c: c.start(), sidecars)  # each joins its host's namespace
        stopped = [s for s, c in self._project_containers().items() if c.status != "running"]
        if stopped:
            raise ComposeError(f"the lab's {', '.join(stopped)} did not stay running",
                               hint=f"see `docker logs {containers[stopped[0]].name}`")

    def remove(self) -> list[str]:
        self._ids.clear()
        containers = list(self._project_containers().values())
        networks = self.client.networks.list(filters=self._filter())
        if containers or networks:
            self.progress(f"removing lab {self.project!r}")
        sidecars = [c for c in containers if SIDECAR_LABEL in c.labels]
        _in_parallel(_remove_container, sidecars)  # before the hosts whose namespace they hold
        _in_parallel(_remove_container, [c for c in containers if c not in sidecars])
        for network in networks:
            self._remove_network(network)
        left = _settled(self.leftovers)
        if left:
            raise ComposeError(f"lab {self.project!r} could not be removed entirely: "
                               f"{', '.join(left)} still there",
                               hint=f"try `socketlab -p {self.project} down` again; "
                                    "see `docker ps -a` and `docker network ls`")
        return [f"container {c.name}" for c in containers] + [f"network {n.name}" for n in networks]

    def _remove_network(self, network) -> None:
        with contextlib.suppress(_sdk_errors().NotFound):
            network.remove()

    def leftovers(self) -> list[str]:
        containers = self._project_containers().values()
        networks = self.client.networks.list(filters=self._filter())
        return [f"container {c.name}" for c in containers] + [f"network {n.name}" for n in networks]

    def containers(self) -> dict[str, Container]:
        return {s: Container(s, c.status, c.short_id) for s, c in self._project_containers().items()}

    def running(self) -> Running:
        flt = self._filter()
        found = {c["Labels"].get(SERVICE_LABEL, c["Names"][0].lstrip("/")): c
                 for c in self.http.containers(all=True, filters=flt)}
        hosts = {s: c for s, c in found.items() if ROLE_LABEL in c["Labels"]}
        stopped = [s for s, c in found.items() if c["State"] != "running"]
        if not hosts or stopped:
            detail = f" ({', '.join(stopped)} not running)" if hosts and stopped else ""
            raise LabNotRunning(f"lab {self.project!r} is not running{detail}")
        networks = {}
        for attrs in self.http.networks(filters=flt):
            subnet = ((attrs.get("IPAM") or {}).get("Config") or [{}])[0].get("Subnet")
            name = (attrs.get("Labels") or {}).get(NETWORK_LABEL, attrs["Name"])
            mtu = int((attrs.get("Options") or {}).get(MTU_OPT, DEFAULT_MTU))
            networks[attrs["Id"]] = Network(name, subnet, mtu, bool(attrs.get("Internal")))
        ordered = sorted(hosts.values(), key=lambda c: int(c["Labels"].get(INDEX_LABEL, "0")))
        for c in ordered:  # the list names an image by id once its tag has moved on
            if c["Image"].startswith("sha256:"):
                c["Image"] = self.http.inspect_container(c["Id"])["Config"]["Image"]
        topo = Topology(tuple(_running_host(c, networks) for c in ordered),
                        tuple(networks.values()), source=f"lab {self.project!r}")
        self._ids = {s: c["Id"] for s, c in found.items()}
        lab_side = next((c for c in found.values() if SIDECAR_LABEL in c["Labels"]
                         or c["Labels"].get(INSTRUMENTS_LABEL) == INLINE), None)
        config = self.http.inspect_container(lab_side["Id"])["Config"] if lab_side else {}
        env = _env(config)
        return Running(topo, {k: v for k, v in env.items() if k.startswith("SOCKETLAB_")},
                       config.get("Image", ""))

    def _filter(self) -> dict[str, str]:
        return {"label": f"{PROJECT_LABEL}={self.project}"}

    def _project_containers(self) -> dict[str, object]:
        found = self.client.containers.list(all=True, filters=self._filter(),
                                           ignore_removed=True)  # removed meanwhile: gone
        return {c.labels.get(SERVICE_LABEL, c.name): c for c in found}

    # -- the engine as a whole ----------------------------------------------------------------
    def subnets_in_use(self) -> dict[str, ipaddress.IPv4Network]:
        found = {}
        for net in self.client.networks.list():
            if (net.attrs.get("Labels") or {}).get(PROJECT_LABEL) == self.project:
                continue
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                with contextlib.suppress(ValueError):
                    found[net.name] = ipaddress.IPv4Network(cfg.get("Subnet", ""), strict=False)
        return found

    def has_image(self, image: str) -> bool:
        try:
            self.client.images.get(image)
        except _sdk_errors().ImageNotFound:
            return False
        return True

    def version(self) -> str:
        return str(self.client.version().get("Version", "?"))

    # -- in a container -----------------------------------------------------------------------
    def _running(self, service: str):
        found = self._project_containers().get(service)
        if found is None or found.status != "running":
            raise LabNotRunning(f"host {service!r} of lab {self.project!r} is not running")
        return found

    def _id(self, service: str) -> str:
        """The running container of a service: looked up once, then remembered."""
        if service not in self._ids:
            flt = {"label": [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}"],
                   "status": "running"}
            found = self.http.containers(filters=flt)
            if not found:
                raise LabNotRunning(f"host {service!r} of lab {self.project!r} is not running")
            self._ids[service] = found[0]["Id"]
        return self._ids[service]

    def _in(self, service: str, action: Callable[[str], T]) -> T:
        """`action(container id)`; if a remembered container is gone, look it up once again."""
        try:
            return action(self._id(service))
        except LabNotRunning:
            if self._ids.pop(service, None) is None:
                raise
            return action(self._id(service))

    def exec(self, service: str, argv: Sequence[str], *, timeout: float | None = None) -> ExecResult:
        start = time.monotonic()
        code, out, err = self._in(service, lambda cid: self.http.exec_run(cid, bounded(argv, timeout)))
        return ExecResult(code, out.decode(errors="replace"), err.decode(errors="replace"),
                          time.monotonic() - start)

    def read_file(self, service: str, path: str) -> bytes | None:
        return self._in(service, lambda cid: self.http.read_file(cid, path))

    def start_exec(self, service: str, argv: Sequence[str], *, timeout: float,
                   gated: bool = False) -> RunningExec:
        def kill(pid: str, sig: str) -> bool:
            return self.exec(service, ["kill", f"-{sig}", pid], timeout=5).exit_code == 0

        return self._in(service, lambda cid: self.http.start_exec(cid, argv, timeout=timeout,
                                                                 gated=gated, kill=kill))

    def put(self, service: str, src: Path, dest: str) -> None:
        if not dest.startswith("/"):
            raise LabError(f"{dest!r} is not an absolute path", hint="give the path in the host from /")
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            tar.add(str(src), arcname=dest.strip("/"), filter=_owned_by_root)
        if not self._running(service).put_archive("/", data.getvalue()):  # makes missing parents
            raise LabError(f"copying {src} to {service}:{dest} failed")

    def get(self, service: str, src: str, dest: Path) -> Path:
        stream, _stat = self._running(service).get_archive(src)
        with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(stream)), mode="r|") as tar:
            member = next(iter(tar), None)
            data = tar.extractfile(member) if member is not None else None
            if data is None:
                raise LabError(f"{service}:{src} is not a file")
            with open(dest, "wb") as out:
                while chunk := data.read(1 << 20):
                    out.write(chunk)
        return dest

    def logs(self, service: str) -> str:
        return self._running(service).logs().decode(errors="replace")


def _running_host(container: Mapping, networks: Mapping[str, Network]) -> Host:
    """A host as the engine's container list shows it."""
    by_name = {}
    for settings in container["NetworkSettings"]["Networks"].values():
        net = networks.get(settings.get("NetworkID"))
        if net is not None:
            by_name[net.name] = settings.get("IPAddress") or \
                (settings.get("IPAMConfig") or {}).get("IPv4Address")
    labels = container["Labels"]
    order = [n for n in labels.get(NETWORKS_LABEL, "").split(",") if n in by_name]
    order += [n for n in by_name if n not in order]
    return Host(labels.get(SERVICE_LABEL, container["Names"][0].lstrip("/")),
                tuple((n, by_name[n]) for n in order), container["Image"],
                labels.get(ROLE_LABEL, "host"), labels.get(INSTRUMENTS_LABEL, INLINE))


def _env(config: Mapping) -> dict[str, str]:
    """A container's environment, from its inspected Config."""
    return dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (the Docker SDK's archive stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        while not self._rest:
            self._rest = next(self._chunks, b"")
            if not self._rest:
                return 0
        n = min(len(buf), len(self._rest))
        buf[:n], self._rest = self._rest[:n], self._rest[n:]
        return n


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
    try:
        container.remove(force=True)
    except _sdk_errors().NotFound:
        pass
    except _sdk_errors().APIError as e:
        if e.status_code != 409:  # 409: another `down` is removing it already
            raise


def _settled(look: Callable[[], list[str]], timeout: float = 10.0) -> list[str]:
    """What `look` still finds once removals by others (a parallel `down`) have finished."""
    deadline = time.monotonic() + timeout
    while (left := look()) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the engine for removals in progress
    return left


def remove_all_labs(client: docker.DockerClient) -> list[str]:
    """Every container and network that any socketlab lab left behind (by label)."""
    removed = []
    found = client.containers.list(all=True, filters={"label": LAB_LABEL}, ignore_removed=True)
    sidecars = [c for c in found if SIDECAR_LABEL in c.labels]
    for container in sidecars + [c for c in found if c not in sidecars]:
        _remove_container(container)
        removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": LAB_LABEL}):
        with contextlib.suppress(_sdk_errors().NotFound):
            network.remove()
        removed.append(f"network {network.name}")
    return removed

