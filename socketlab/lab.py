"""Lab: one running copy of the topology in docker-compose.yml, and the only door to Docker.

    with Lab(LabConfig()) as lab:                  # compose up (idle hosts) ... compose down
        lab.exec("server", ["ss", "-tan"])         # an ExecResult: exit code, stdout, stderr
        proc = lab.start("server", [...])          # a program left running, read line by line

Lifecycle goes through the compose CLI; exec, logs and look-ups go through the Docker SDK.
Containers are found by compose's labels (project, service), never by their names.
"""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.utils.socket import STDOUT, frames_iter

from socketlab import compose as compose_cli
from socketlab.config import HOSTS, LabConfig
from socketlab.errors import (
    ComposeError,
    ConfigError,
    DockerUnavailable,
    ImageError,
    LabNotRunning,
    LabTimeout,
    UnknownHost,
)

_PID_PREFIX = "socketlab-pid="  # the launcher's first line: the command's pid in its host
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
LAB_LABEL = "io.socketlab.lab"
ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGE_CONTEXT = ROOT / "images" / "lab"


def connect() -> docker.DockerClient:
    """A Docker client that has answered a ping, or DockerUnavailable saying why not."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException as e:
        raise _unavailable(e) from None


def _unavailable(e: Exception) -> DockerUnavailable:
    text = str(e)
    if "Permission denied" in text or "PermissionError" in text:
        return DockerUnavailable(
            "no permission to use the Docker engine's socket",
            hint="add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in "
                 "again) or run as root",
        )
    if "FileNotFoundError" in text or "No such file" in text or "Connection refused" in text:
        return DockerUnavailable("the Docker engine is not running (nothing answers on its socket)")
    return DockerUnavailable(f"cannot reach the Docker engine: {text}")


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float


class RunningExec:
    """A command left running in a host; its output lines arrive as they are printed.
    Its first line (from the launcher) is its pid in the host, so it can be signalled."""

    def __init__(self, api, exec_id: str, stream: Iterator, lab: Lab | None = None,
                 host: str = "", gate=None) -> None:
        self._api, self._id, self._lab, self._host = api, exec_id, lab, host
        self._gate = gate  # the exec's stdin socket, for a command started gated
        self.pid: str | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout_lines: list[str] = []
        self.stderr = ""
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Iterator) -> None:
        pending = ""
        try:
            for out, err in stream:
                self.stderr += (err or b"").decode(errors="replace")
                pending += (out or b"").decode(errors="replace")
                *complete, pending = pending.split("\n")
                for line in complete:
                    self._lines.put(line)
        finally:
            if pending:
                self._lines.put(pending)
            self._lines.put(None)

    def wait_for(self, match: Callable[[str], bool], timeout: float) -> str | None:
        """The first new line for which `match` is true; None if the command ended first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._lines.put(None)  # keep the end marker for later readers
                return None
            if self.pid is None and line.startswith(_PID_PREFIX):
                self.pid = line[len(_PID_PREFIX):].strip()
                continue
            self.stdout_lines.append(line)
            if match(line):
                return line
        raise LabTimeout(f"no matching output after {timeout:g} s",
                         hint="output so far: " + " | ".join(self.stdout_lines[-5:]))

    def wait(self, timeout: float) -> int:
        """Wait for the end of the command; its exit code."""
        self.wait_for(lambda _line: False, timeout)
        self._thread.join(timeout=1)
        if self._gate is not None:
            self._gate.close()
        return self._api.exec_inspect(self._id)["ExitCode"]

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    def release(self, go: bool = True) -> None:
        """Let a gated command run (go), or end it before it ever started (not go)."""
        if self._gate is not None:
            self._gate.sendall(b"go\n" if go else b"stop\n")

    def signal(self, name: str = "TERM") -> bool:
        """Send a signal (TERM, INT, KILL, ...) to this command only; False if it has ended."""
        if self.pid is None:
            self.wait_for(lambda _line: True, 5)  # the pid line comes first
        if self.pid is None or self._lab is None:
            return False
        return self._lab.exec(self._host, ["kill", f"-{name}", self.pid], timeout=5).exit_code == 0


class Lab:
    """One lab: a compose project of the server and client hosts on their own bridge."""

    def __init__(self, config: LabConfig | None = None, *, client: docker.DockerClient | None = None,
                 compose: compose_cli.Compose | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.config = config or LabConfig.from_env()
        self._client = client
        self._compose = compose
        self.progress = progress or (lambda _msg: None)

    @classmethod
    def running(cls, project: str, *, client: docker.DockerClient | None = None,
                progress: Callable[[str], None] | None = None) -> Lab:
        """The lab `project` as it runs now: its addresses and port read from its containers,
        so `run` and `exec` work whatever settings it was started with."""
        client = client or connect()
        flt = {"label": f"{PROJECT_LABEL}={project}", "status": "running"}
        found = {c.labels.get(SERVICE_LABEL): c for c in client.containers.list(filters=flt)}
        if not all(h in found for h in HOSTS):
            raise LabNotRunning(f"lab {project!r} is not running")
        ips = {h: _lab_address(found[h]) for h in HOSTS}
        env = dict(e.split("=", 1) for e in found["server"].attrs["Config"].get("Env") or [])
        subnet = client.networks.get(ips["server"][1]).attrs["IPAM"]["Config"][0]["Subnet"]
        config = LabConfig(project=project, subnet=subnet, server_ip=ips["server"][0],
                           client_ip=ips["client"][0], image=found["server"].attrs["Config"]["Image"],
                           port=int(env.get("SOCKETLAB_PORT", LabConfig.port)),
                           offloads=env.get("SOCKETLAB_OFFLOADS") == "on")
        return cls(config, client=client, progress=progress)

    # -- the Docker side, made on first use ------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    @property
    def compose(self) -> compose_cli.Compose:
        if self._compose is None:
            self._compose = compose_cli.detect()
        return self._compose

    def _compose_run(self, args: list[str], mode: str = "idle", timeout: float = 120) -> None:
        argv = self.compose.argv(self.config.project, COMPOSE_FILE, *args)
        compose_cli.run_compose(argv, self.config.compose_env(mode), timeout=timeout)

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self.up()
        except BaseException:
            self.down()  # a failed (or interrupted) start leaves nothing behind
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> Lab:
        """Start the two hosts (idle) on the lab's bridge; return once both are running.

        Compose creates the network and the containers exactly as docker-compose.yml says;
        the SDK then starts both at once (compose would start them one after the other,
        since the client depends on the server in the file's own `up`)."""
        self._check_image()
        self._check_subnet_free()
        self.progress(f"starting lab {self.config.project!r} on {self.config.subnet} "
                      f"(server {self.config.server_ip}, client {self.config.client_ip})")
        self._compose_run(compose_cli.create_args())
        containers = self._project_containers()
        missing = [h for h in HOSTS if h not in containers]
        if missing:
            raise ComposeError(f"compose did not create {', '.join(missing)}",
                               hint="run again with --debug to see compose's output")
        _in_parallel(lambda c: c.start(), containers.values())
        if set(self._containers()) != set(HOSTS):
            raise ComposeError("the lab's hosts did not stay running",
                               hint=f"see `docker logs {containers['server'].name}`")
        return self

    def down(self) -> None:
        """Remove the hosts and the bridge; safe to call at any time, also twice.

        Everything is found by the compose project's label and removed through the SDK,
        both hosts at once: the same as `compose down` for this file (it has no volumes),
        in a quarter of the time. A second Ctrl-C while this runs is ignored."""
        with _sigint_ignored():
            containers = list(self._project_containers().values())
            networks = self.client.networks.list(filters=self._project_filter())
            if containers or networks:
                self.progress(f"removing lab {self.config.project!r}")
            _in_parallel(_remove_container, containers)
            for network in networks:
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()

    def _project_filter(self) -> dict[str, str]:
        return {"label": f"{PROJECT_LABEL}={self.config.project}"}

    def _project_containers(self) -> dict[str, object]:
        """Every container of this lab, running or not, by service name."""
        found = self.client.containers.list(all=True, filters=self._project_filter())
        return {c.labels.get(SERVICE_LABEL, c.name): c for c in found}

    def _check_image(self) -> None:
        try:
            self.client.images.get(self.config.image)
        except docker.errors.ImageNotFound:
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
        """One row per host: name, address, state, container id."""
        found = self._project_containers()
        return [{"host": h, "address": self.config.ip_of(h),
                 "state": found[h].status if h in found else "absent",
                 "container": found[h].short_id if h in found else "-"} for h in HOSTS]

    def exec(self, host: str, argv: Sequence[str], *, timeout: float | None = None) -> ExecResult:
        """Run a command in a host and wait for it (bounded by `timeout`, in the host)."""
        container = self.container(host)
        argv = _bounded(argv, timeout)
        start = time.monotonic()
        code, (out, err) = container.exec_run(list(argv), demux=True)
        return ExecResult(code, (out or b"").decode(errors="replace"),
                          (err or b"").decode(errors="replace"), time.monotonic() - start)

    def start(self, host: str, argv: Sequence[str], *, timeout: float,
              gated: bool = False) -> RunningExec:
        """Start a command in a host, bounded by `timeout` in the host; read it as it runs.

        gated: the command is set up now but waits for RunningExec.release() to run, so the
        cost of starting an exec (about 0.1 s on some engines) is paid before it matters."""
        container = self.container(host)
        api = self.client.api
        wait = 'read go; [ "$go" = go ] || exit 125; ' if gated else ""
        launch = ["sh", "-c", f'echo "{_PID_PREFIX}$$"; {wait}exec "$@"', "sh",
                  *_bounded(argv, timeout)]
        exec_id = api.exec_create(container.id, launch, stdin=gated)["Id"]
        if not gated:
            return RunningExec(api, exec_id, api.exec_start(exec_id, stream=True, demux=True),
                               self, host)
        attached = api.exec_start(exec_id, socket=True)
        sock = getattr(attached, "_sock", attached)
        return RunningExec(api, exec_id, _demuxed(frames_iter(sock, False)), self, host, sock)

    def logs(self, host: str) -> str:
        return self.container(host).logs().decode(errors="replace")


def _in_parallel(action: Callable[[object], object], items: Iterable[object]) -> None:
    """Apply `action` to every item at once (threads: the work is waiting on the engine)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(action, item) for item in items]:
            future.result()


def _remove_container(container) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _demuxed(frames: Iterator[tuple[int, bytes]]) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Docker's multiplexed frames as (stdout, stderr) chunks, as exec_start(demux=True) gives."""
    for stream, data in frames:
        yield (data, None) if stream == STDOUT else (None, data)


def _lab_address(container) -> tuple[str, str]:
    """(IP address, network id) of a lab host on its lab network."""
    networks = container.attrs["NetworkSettings"]["Networks"]
    for settings in networks.values():
        if settings.get("IPAddress"):
            return settings["IPAddress"], settings["NetworkID"]
    raise LabNotRunning(f"container {container.name} has no address on the lab network")


def _bounded(argv: Sequence[str], timeout: float | None) -> list[str]:
    """`timeout` inside the host: a command never outlives its budget, whatever the host side does."""
    if timeout is None:
        return list(argv)
    return ["timeout", "-k", "1", f"{timeout:g}", *argv]


def remove_all_labs(client: docker.DockerClient) -> list[str]:
    """Every container and network that any socketlab lab left behind (by label)."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LAB_LABEL}):
        container.remove(force=True)
        removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": LAB_LABEL}):
        network.remove()
        removed.append(f"network {network.name}")
    return removed
