"""The swarm sandbox: a real two-node Docker Swarm on this one machine, made and removed by one
command each (`socketlab sandbox up` / `down`), for CI and for trying the lab across nodes.

    state = Sandbox("slswarm", progress=print).up(["socketlab/lab:latest"])
    ...                                    # `socketlab --engine swarm ...` finds it by itself
    Sandbox("slswarm").down()              # nothing of it is left

Each node is a dockerd of its own in a network namespace of its own, started with `nsenter
--net=` (`ip netns exec` remounts /sys, and dockerd then fails "Devices cgroup isn't mounted"),
with its own data root, exec root, socket and pidfile, its own --bip and an empty
--config-file (the machine's daemon.json sets a data root and storage driver that would clash
with the flags). One veth pair on 10.77.K.0/24 joins the two namespaces and is their only
link: swarm control (2377/tcp), gossip (7946) and the overlay's VXLAN (4789/udp) cross it and
nothing else. Node n1 is the manager (`swarm init`), n2 joins as a worker; each carries the
label socketlab.node=n1|n2 for placement. Images come from this machine's engine by docker
save | load. Storage is overlay2 where the kernel mounts it (here: 0.5 s to create a lab
container where vfs, which copies every layer, took 10-17 s), else vfs.

Everything the sandbox makes is named from the sandbox's name (namespaces NAME-n1/-n2, veths
NAME-1/-2, folder SANDBOX_DIR/NAME), so `down` finds all of it even when the `up` that made it
was killed half-way; state.json (written only once the sandbox is whole) is how the swarm
engine finds the nodes' endpoints.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker
import docker.errors

from socketlab.errors import ConfigError, SwarmError
from socketlab.lab import sandbox_host as host
from socketlab.lab import signals
from socketlab.lab.images import distribute_image, unmount_below
from socketlab.lab.subnets import host_routes, pick

SANDBOX_DIR = Path("/var/lib/socketlab/sandbox")  # env SOCKETLAB_SANDBOX_DIR
DEFAULT_NAME = "slswarm"                            # env SOCKETLAB_SANDBOX
UNDERLAY_POOL = "10.77.0.0/16"  # one /24 per sandbox: never 192.168.x (the labs' own range)
NODE_LABEL = "socketlab.node"
STORAGE_DRIVERS = ("auto", "overlay2", "vfs")
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")  # NAME-1 must fit an interface name (15)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Node:
    """One sandbox node: a dockerd in its own network namespace, one end of the veth."""

    name: str      # n1, n2: also its socketlab.node label
    netns: str
    veth: str
    address: str   # on the underlay (the veth)
    prefix: int
    bip: str       # its default bridge (unused by labs; kept off every other range)
    dir: str

    @property
    def url(self) -> str:
        return f"unix://{self.dir}/docker.sock"

    @property
    def pidfile(self) -> Path:
        return Path(self.dir) / "docker.pid"

    @property
    def log(self) -> Path:
        return Path(self.dir) / "dockerd.log"


@dataclass
class State:
    """A sandbox as made: what `--engine swarm` and `sandbox status` read."""

    name: str
    underlay: str
    nodes: list[Node]
    storage: str = ""
    images: list[str] = field(default_factory=list)
    up_seconds: float = 0.0

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> State:
        data = json.loads(text)
        data["nodes"] = [Node(**n) for n in data["nodes"]]
        return cls(**data)


def sandbox_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("SOCKETLAB_SANDBOX_DIR") or SANDBOX_DIR)


def default_name(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("SOCKETLAB_SANDBOX") or DEFAULT_NAME


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ConfigError(f"sandbox name {name!r} is not valid",
                          hint="use 1-10 lowercase letters and digits, starting with a letter")
    return name


def plan(name: str, root: Path, underlay: str) -> list[Node]:
    """The two nodes of sandbox `name` on the /24 `underlay` (pure)."""
    net = ipaddress.IPv4Network(underlay)
    third = int(net.network_address) >> 8 & 0xFF
    return [Node(name=f"n{i}", netns=f"{name}-n{i}", veth=f"{name}-{i}",
                 address=str(net.network_address + i), prefix=net.prefixlen,
                 bip=f"10.{77 + i}.{third}.1/24", dir=str(root / name / f"n{i}"))
            for i in (1, 2)]


def node_client(url: str, timeout: int = 60) -> docker.DockerClient:
    return docker.DockerClient(base_url=url, timeout=timeout)


def find(name: str | None = None, root: Path | None = None) -> State:
    """The state of the sandbox `name` (default $SOCKETLAB_SANDBOX or slswarm) if it is up."""
    name = check_name(name or default_name())
    path = (root or sandbox_dir()) / name / "state.json"
    try:
        return State.from_json(path.read_text())
    except FileNotFoundError:
        raise SwarmError(f"no swarm sandbox {name!r} is up (no {path})",
                         hint="start one with `socketlab sandbox up`, or name your swarm's "
                              "nodes with --nodes / SOCKETLAB_SWARM_NODES") from None
    except (ValueError, TypeError, KeyError) as e:
        raise SwarmError(f"the sandbox's state file {path} is damaged ({e})",
                         hint="`socketlab sandbox down`, then `up` again") from None


def node_status(state: State) -> list[dict[str, str]]:
    """One row per node: name, underlay address, swarm role, whether its dockerd answers,
    how many containers it has, its endpoint."""
    rows = []
    for node in state.nodes:
        row = {"node": node.name, "address": node.address, "endpoint": node.url,
               "role": "-", "daemon": "does not answer", "containers": "-"}
        with contextlib.suppress(docker.errors.DockerException, OSError):
            info = node_client(node.url, timeout=5).info()
            row.update(daemon="answers", containers=str(info.get("Containers", 0)),
                       role="manager" if info["Swarm"].get("ControlAvailable") else
                       "worker" if info["Swarm"].get("LocalNodeState") == "active" else "not in swarm")
        rows.append(row)
    return rows


class Sandbox:
    """Make, inspect and remove one swarm sandbox (needs root: namespaces, veths, dockerd)."""

    def __init__(self, name: str | None = None, *, root: Path | None = None,
                 progress: Progress | None = None) -> None:
        self.name = check_name(name or default_name())
        self.root = root or sandbox_dir()
        self.dir = self.root / self.name
        self.state_file = self.dir / "state.json"
        self.progress = progress or (lambda _msg: None)

    # -- up ---------------------------------------------------------------------------------
    def up(self, images: Sequence[str], storage: str = "auto", *,
           source: docker.DockerClient | None = None) -> State:
        """Make the sandbox and copy `images` to both nodes; a failed or interrupted `up`
        removes whatever it had made. If it is up already, only the images are copied."""
        if storage not in STORAGE_DRIVERS:
            raise ConfigError(f"unknown storage driver {storage!r}",
                              hint=f"use one of {', '.join(STORAGE_DRIVERS)}")
        host.check_machine()
        if self.state_file.exists():
            state = find(self.name, self.root)
            self.progress(f"sandbox {self.name!r} is already up ({state.underlay})")
            self._copy_images(state, images, source)
            return state
        if self.leftovers():
            raise SwarmError(f"parts of sandbox {self.name!r} are there but it is not whole "
                             f"({', '.join(self.leftovers())})",
                             hint=f"remove them with `socketlab sandbox down --name {self.name}`")
        start = time.monotonic()
        try:
            state = self._make(storage)
            self._copy_images(state, images, source)
            state.up_seconds = round(time.monotonic() - start, 1)
            self.state_file.write_text(state.to_json())
        except BaseException as e:
            self._roll_back()
            if isinstance(e, KeyboardInterrupt):
                raise signals.Interrupted(f"sandbox {self.name!r} was removed: "
                                          + self._outcome()) from e
            raise
        return state

    def _make(self, storage: str) -> State:
        with self._lock():  # two sandboxes made at once never take the same underlay
            self.dir.mkdir(parents=True)
            state = State(self.name, self._free_underlay(), [])
            state.nodes = plan(self.name, self.root, state.underlay)
            (self.dir / "underlay").write_text(state.underlay)
        self.progress(f"sandbox {self.name!r}: nodes n1 {state.nodes[0].address} and "
                      f"n2 {state.nodes[1].address} on a veth pair ({state.underlay})")
        with signals.deferred():
            host.link(state.nodes)
        state.storage = self._start_daemons(state.nodes, storage)
        self._form_swarm(state.nodes)
        return state

    def _free_underlay(self) -> str:
        taken = []
        for other in self.root.glob("*/underlay"):
            with contextlib.suppress(OSError, ValueError):
                taken.append(ipaddress.IPv4Network(other.read_text().strip()))
        return pick([*taken, *host_routes()], UNDERLAY_POOL, 24)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _start_daemons(self, nodes: list[Node], storage: str) -> str:
        """Start both dockerds; with storage "auto", overlay2 first and vfs if it fails."""
        config_file = self.dir / "daemon.json"
        config_file.write_text("{}\n")  # the machine's daemon.json would clash with the flags
        for driver in (["overlay2", "vfs"] if storage == "auto" else [storage]):
            self.progress(f"starting dockerd on n1 and n2 (storage {driver})")
            try:
                for node in nodes:
                    host.spawn(node, config_file, driver)
                for node in nodes:
                    host.wait_ready(node)
                return driver
            except SwarmError as e:
                if driver == "vfs" or storage != "auto":
                    raise
                self.progress(f"overlay2 did not work here ({e}); trying vfs")
                with signals.deferred():
                    host.stop_nodes(nodes)
                    for node in nodes:
                        unmount_below(Path(node.dir))
                        shutil.rmtree(node.dir, ignore_errors=True)
        raise AssertionError("unreachable")

    def _form_swarm(self, nodes: list[Node]) -> None:
        manager, worker = nodes
        self.progress(f"swarm init on n1 ({manager.address}), join from n2 ({worker.address})")
        mc, wc = node_client(manager.url), node_client(worker.url)
        try:
            mc.swarm.init(advertise_addr=manager.address, listen_addr=f"{manager.address}:2377")
            mc.swarm.reload()
            wc.swarm.join(remote_addrs=[f"{manager.address}:2377"],
                          join_token=mc.swarm.attrs["JoinTokens"]["Worker"],
                          advertise_addr=worker.address, listen_addr=f"{worker.address}:2377")
            for node, client in ((manager, mc), (worker, wc)):
                swarm_node = mc.nodes.get(client.info()["Swarm"]["NodeID"])
                spec = swarm_node.attrs["Spec"]
                swarm_node.update({"Role": spec["Role"], "Availability": spec["Availability"],
                                   "Labels": {NODE_LABEL: node.name}})
            _wait_nodes_ready(mc, 2)
        except docker.errors.APIError as e:
            raise SwarmError(f"forming the sandbox's swarm failed: {e.explanation or e}",
                             hint=f"see {manager.log} and {worker.log}") from None

    def _copy_images(self, state: State, images: Sequence[str],
                     source: docker.DockerClient | None) -> None:
        if not images:
            return
        from socketlab.lab.docker_api import connect

        source = source or connect()
        targets = {node.name: node_client(node.url, timeout=600) for node in state.nodes}
        for image in images:
            distribute_image(source, targets, image, self.progress)
            if image not in state.images:
                state.images.append(image)

    # -- down -------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Remove everything of the sandbox: its nodes' containers, both dockerds and their
        containerds, the namespaces and veths, the data. Safe to call at any time, also
        twice; a signal meanwhile waits until it is done. Returns what it removed."""
        with signals.deferred(raise_after=False) as held:
            removed = self._remove()
        if held:
            raise signals.Interrupted(f"sandbox {self.name!r}: " + self._outcome())
        return removed

    def _roll_back(self) -> None:
        with signals.deferred(raise_after=False):
            self._remove()

    def _remove(self) -> list[str]:
        removed: list[str] = []
        nodes = plan(self.name, self.root, "10.77.0.0/24")  # names and folders only
        if self.leftovers():
            self.progress(f"removing sandbox {self.name!r}")
        present = [node for node in nodes if Path(node.dir).exists()]
        for node in present:
            removed += _remove_containers(node)
        removed += [f"dockerd and containerd of {name}" for name in host.stop_nodes(present)]
        for node in present:
            unmount_below(Path(node.dir))
        removed += host.unlink(nodes)
        if self.dir.exists():
            shutil.rmtree(self.dir)
            removed.append(f"folder {self.dir}")
        left = self.leftovers()
        if left:
            raise SwarmError(f"sandbox {self.name!r} could not be removed whole: "
                             f"{', '.join(left)} remain", hint="run `socketlab sandbox down` again")
        return removed

    def leftovers(self) -> list[str]:
        """What of this sandbox exists now (empty: nothing)."""
        nodes = plan(self.name, self.root, "10.77.0.0/24")
        left = [f"namespace {n.netns}" for n in nodes if Path(f"/run/netns/{n.netns}").exists()]
        left += [f"veth {n.veth}" for n in nodes if Path(f"/sys/class/net/{n.veth}").exists()]
        pids = [pid for n in nodes for pid in host.processes_under(n.dir)]
        if pids:
            left.append(f"{len(pids)} processes of its daemons (pids {', '.join(map(str, pids[:4]))}"
                        + (", ...)" if len(pids) > 4 else ")"))
        if self.dir.exists():
            left.append(f"folder {self.dir}")
        return left

    def _outcome(self) -> str:
        left = self.leftovers()
        return f"{', '.join(left)} remain" if left else "nothing of it is left"


def _wait_nodes_ready(manager: docker.DockerClient, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [n.attrs["Status"]["State"] for n in manager.nodes.list()]
        if states.count("ready") >= count:
            return
        time.sleep(0.2)
    raise SwarmError(f"the sandbox's {count} nodes were not ready in {timeout:.0f} s")


def _remove_containers(node: Node) -> list[str]:
    """Every container on the node, while its dockerd still answers (fast: no stop wait)."""
    try:
        client = node_client(node.url, timeout=30)
        containers = client.containers.list(all=True)
    except (docker.errors.DockerException, OSError):
        return []
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True)
    return [f"container {c.name} on {node.name}" for c in containers]


