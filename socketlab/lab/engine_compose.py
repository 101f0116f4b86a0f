"""The compose engine: one Docker engine; the lab made by the compose CLI, run through the SDK.

Creation goes through compose, on the topology rendered as a compose file (so the lab is what
compose would make of the user's own file, plus the lab's addresses, labels, routes and
sidecars); starting, copying and removal go through the Docker SDK; reading the running lab and
exec go through the Engine API directly (docker_http: the fast path imports no SDK). Containers
are found by compose's labels (project, service), never by container names.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from socketlab.errors import ComposeError, ImageError, LabError, LabNotRunning
from socketlab.lab.composefile import (
    INDEX_LABEL,
    INSTRUMENTS_LABEL,
    MTU_OPT,
    ROLE_LABEL,
    SIDECAR_LABEL,
    dump,
    render,
    sidecar_spec,
)
from socketlab.lab.containers import (
    SERVICE_LABEL,
    archive_of,
    configured_address,
    container_env,
    extract_file,
    in_parallel,
    remove_container,
    running_host,
    sdk_errors,
    settled,
)
from socketlab.lab.docker_api import connect
from socketlab.lab.docker_http import DockerHTTP, EngineAPI
from socketlab.lab.engine import Container, Engine, Running
from socketlab.lab.process import ExecResult, RunningExec, bounded
from socketlab.lab.topology import DEFAULT_MTU, INLINE, Network, Topology

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container as DockerContainer

    from socketlab.lab import compose as compose_cli

PROJECT_LABEL = "com.docker.compose.project"
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
    def http(self) -> EngineAPI:
        """The Engine API without the SDK: reading the running lab and exec (the fast path)."""
        if self._http is None:
            self._http = DockerHTTP.from_env()
        return self._http

    @property
    def compose(self) -> compose_cli.Compose:
        if self._compose is None:
            from socketlab.lab import compose as compose_cli  # the compose tool: up and down only

            self._compose = compose_cli.detect()
        return self._compose

    # -- lifecycle ----------------------------------------------------------------------------
    def create(self, topology: Topology, settings: Mapping[str, str], *, lab_image: str,
               labels: Mapping[str, str] | None = None) -> None:
        import tempfile

        from socketlab.lab import compose as compose_cli

        doc = render(topology, lab_image=lab_image, settings=settings, labels=labels)
        project_dir = Path(topology.source).resolve().parent if topology.source else Path.cwd()
        with tempfile.TemporaryDirectory(prefix=f"socketlab-{self.project}-") as tmp:
            rendered = Path(tmp) / "compose.yml"
            rendered.write_text(dump(doc))
            self._build_missing(topology, doc, rendered, project_dir, lab_image)
            self._compose_run(rendered, project_dir, compose_cli.create_args(), settings)
        self._connect_the_rest(topology)
        self._create_sidecars(topology, settings, lab_image, labels or {})
        self._check_confined()

    def _create_sidecars(self, topology: Topology, settings: Mapping[str, str],
                         lab_image: str, labels: Mapping[str, str]) -> None:
        """Each sidecar made here, in its host's network namespace (`container:ID`), with
        compose's labels, so that the lab is found and removed as one."""
        hosts = self._project_containers()
        for h in topology.hosts:
            if not h.sidecar:
                continue
            spec = sidecar_spec(topology, h.name, lab_image=lab_image, settings=settings,
                                labels=labels)
            self.client.containers.create(
                spec["image"], spec["command"], name=f"{self.project}_{h.sidecar}_1",
                environment=spec["environment"], init=True, cap_add=spec["cap_add"],
                network_mode=f"container:{hosts[h.name].id}", mem_limit=spec["mem_limit"],
                memswap_limit=spec["memswap_limit"], pids_limit=spec["pids_limit"],
                security_opt=spec["security_opt"],
                labels={**spec["labels"], PROJECT_LABEL: self.project, SERVICE_LABEL: h.sidecar,
                        "com.docker.compose.oneoff": "False",
                        "com.docker.compose.container-number": "1"})

    def _check_confined(self) -> None:
        """Every container of the lab is on the lab's own networks, or in a lab host's
        namespace; anything else (Docker's default bridge has a way out) is refused."""
        ours = {n.name for n in self.client.networks.list(filters=self._filter())}
        containers = self._project_containers()
        ids = {c.id for c in containers.values()}
        for service, c in containers.items():
            mode = c.attrs["HostConfig"].get("NetworkMode", "")
            nets = set(c.attrs["NetworkSettings"]["Networks"])
            joined = mode.startswith("container:") and mode.split(":", 1)[1] in ids
            if not joined and not (nets and nets <= ours):
                raise ComposeError(f"the lab's {service} is on {', '.join(sorted(nets)) or mode}, "
                                   "not only on the lab's networks: nothing was started",
                                   hint="check its networks: and network_mode: in the compose file")

    def _connect_the_rest(self, topology: Topology) -> None:
        """A host on several networks: Compose v1 attaches the others only as it starts a
        container itself (here the SDK starts them), so they are attached now, with their
        addresses, before anything starts."""
        nets = {(n.attrs.get("Labels") or {}).get(NETWORK_LABEL): n
                for n in self.client.networks.list(filters=self._filter())}
        containers = self._project_containers()
        for h in topology.hosts:
            container = containers.get(h.name)
            if container is None or len(h.addresses) < 2:
                continue
            have = {settings.get("NetworkID") for settings in
                    container.attrs["NetworkSettings"]["Networks"].values()}
            for net, ip in h.addresses:
                if net in nets and nets[net].id not in have:
                    nets[net].connect(container, ipv4_address=ip)

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
        from socketlab.lab import compose as compose_cli

        no_env = file.with_name("no.env")  # compose reads nothing of the topology's .env: the
        no_env.touch()  # file is already interpolated, and its DOCKER_HOST must not steer compose
        argv = self.compose.argv(self.project, file, *args, project_dir=project_dir, env_file=no_env)
        compose_cli.run_compose(argv, env, timeout=timeout)

    def start(self) -> None:
        self._ids.clear()
        containers = self._project_containers()
        hosts = [c for c in containers.values() if SIDECAR_LABEL not in c.labels]
        sidecars = [c for c in containers.values() if SIDECAR_LABEL in c.labels]
        if not hosts:
            raise ComposeError("compose created no host", hint="run again with --debug")
        in_parallel(lambda c: c.start(), hosts)
        in_parallel(lambda c: c.start(), sidecars)  # each joins its host's namespace
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
        in_parallel(remove_container, sidecars)  # before the hosts whose namespace they hold
        in_parallel(remove_container, [c for c in containers if c not in sidecars])
        for network in networks:
            self._remove_network(network)
        left = settled(self.leftovers)
        if left:
            raise ComposeError(f"lab {self.project!r} could not be removed entirely: "
                               f"{', '.join(left)} still there",
                               hint=f"try `socketlab -p {self.project} down` again; "
                                    "see `docker ps -a` and `docker network ls`")
        return [f"container {c.name}" for c in containers] + [f"network {n.name}" for n in networks]

    def _remove_network(self, network) -> None:
        with contextlib.suppress(sdk_errors().NotFound):
            network.remove()

    def leftovers(self) -> list[str]:
        containers = self._project_containers().values()
        networks = self.client.networks.list(filters=self._filter())
        return [f"container {c.name}" for c in containers] + [f"network {n.name}" for n in networks]

    def containers(self) -> dict[str, Container]:
        found = sorted(self._project_containers().items(),
                       key=lambda sc: (SIDECAR_LABEL in sc[1].labels,
                                       int(sc[1].labels.get(INDEX_LABEL, "0"))))
        return {s: Container(s, c.status, c.short_id, configured_address(c.attrs),
                             c.labels.get(SIDECAR_LABEL, "")) for s, c in found}

    def networks(self) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for net in self.client.networks.list(filters=self._filter()):
            attrs = net.attrs
            name = (attrs.get("Labels") or {}).get(NETWORK_LABEL) or str(net.name)
            found[name] = next((c["Subnet"] for c in (attrs.get("IPAM") or {}).get("Config") or []
                                if c.get("Subnet")), None)
        return found

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
        running_hosts = tuple(running_host(c, networks) for c in ordered)
        seen = list(dict.fromkeys(n for h in running_hosts for n in h.networks))  # file order
        topo = Topology(running_hosts, tuple(sorted(networks.values(), key=lambda n: seen.index(n.name)
                                                    if n.name in seen else len(seen))),
                        source=f"lab {self.project!r}")
        self._ids = {s: c["Id"] for s, c in found.items()}
        lab_side = next((c for c in found.values() if SIDECAR_LABEL in c["Labels"]
                         or c["Labels"].get(INSTRUMENTS_LABEL) == INLINE), None)
        config = self.http.inspect_container(lab_side["Id"])["Config"] if lab_side else {}
        env = container_env(config)
        return Running(topo, {k: v for k, v in env.items() if k.startswith("SOCKETLAB_")},
                       config.get("Image", ""))

    def _filter(self) -> dict[str, str]:
        return {"label": f"{PROJECT_LABEL}={self.project}"}

    def _project_containers(self) -> dict[str, DockerContainer]:
        found = self.client.containers.list(all=True, filters={**self._filter()},
                                           ignore_removed=True)  # removed meanwhile: gone
        return {c.labels.get(SERVICE_LABEL) or str(c.name): c for c in found}

    # -- the engine as a whole ----------------------------------------------------------------
    def subnets_in_use(self) -> dict[str, ipaddress.IPv4Network]:
        found: dict[str, ipaddress.IPv4Network] = {}
        for net in self.client.networks.list():
            if (net.attrs.get("Labels") or {}).get(PROJECT_LABEL) == self.project:
                continue
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                with contextlib.suppress(ValueError):
                    found[str(net.name)] = ipaddress.IPv4Network(cfg.get("Subnet", ""), strict=False)
        return found

    def has_image(self, image: str) -> bool:
        try:
            self.client.images.get(image)
        except sdk_errors().ImageNotFound:
            return False
        return True

    def version(self) -> str:
        return str(self.client.version().get("Version", "?"))

    def describe(self) -> dict[str, str]:
        return {"docker": self.version(),
                "compose": f"{' '.join(self.compose.prefix)} {self.compose.version}"}

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

    def container_id(self, service: str) -> str:
        """The running container of a service, for tools beside the lab (the docker CLI)."""
        return self._in(service, lambda cid: cid)

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

    def attach(self, service: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False,
               env: Sequence[str] = ()):
        def begin(cid: str):
            exec_id = self.http.exec_create(cid, argv, stdin=stdin, tty=tty, environment=env)
            return self.http.exec_attach(exec_id, tty=tty)

        return self._in(service, begin)

    def put(self, service: str, src: Path, dest: str) -> None:
        if not dest.startswith("/"):
            raise LabError(f"{dest!r} is not an absolute path", hint="give the path in the host from /")
        if not self._running(service).put_archive("/", archive_of(src, dest)):  # makes parents
            raise LabError(f"copying {src} to {service}:{dest} failed")

    def get(self, service: str, src: str, dest: Path) -> Path:
        stream, _stat = self._running(service).get_archive(src)
        if not extract_file(stream, dest):
            raise LabError(f"{service}:{src} is not a file")
        return dest

    def logs(self, service: str) -> str:
        """What the container printed (running or not: an exited host's logs say why)."""
        found = self._project_containers().get(service)
        if found is None:
            raise LabNotRunning(f"host {service!r} of lab {self.project!r} is not there")
        return found.logs().decode(errors="replace")
