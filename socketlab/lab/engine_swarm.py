"""The swarm engine: a lab's hosts on different Docker Swarm nodes, joined by an overlay (VXLAN)
network that carries the topology's own addresses; each host reached through its node.

    engine = make_engine("swarm", "mylab", place={"server": "n1", "client": "n2"})
    engine.create(topology, settings, lab_image=image)   # the overlay, then each host on its node
    engine.placement()                                    # {"server": "n1", "client": "n2"}

Why containers and not a stack: `docker stack deploy` gives a service's tasks whatever address
the overlay hands out (the post's hosts are .5 and .6), and service virtual IPs need IPVS, which
some kernels (this workplace's) lack. So the engine does what `docker run --network NET --ip
ADDR` does on each node, on an `--attachable` overlay made on a manager (swarm_spec.py turns the
rendered compose file into both). Everything after creation is the compose engine's own code,
asking every node instead of one engine: the containers carry compose's labels (project,
service) plus the node they run on, and look-ups and exec go to the node that runs the host.

An image a node lacks is copied to it from this machine's engine (docker save | load, with
progress). A static address the overlay will not give back (a failed attach can keep it
reserved until the network is removed) gets one more try on a fresh overlay, said as it happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from socketlab.errors import ImageError, LabNotRunning, SwarmError
from socketlab.lab import signals
from socketlab.lab.composefile import render, unescape
from socketlab.lab.docker_http import DockerHTTP
from socketlab.lab.engine import Running
from socketlab.lab.engine_compose import SERVICE_LABEL, ComposeEngine
from socketlab.lab.images import distribute_image, local_image
from socketlab.lab.swarm import Swarm, place_hosts
from socketlab.lab.swarm_spec import (
    MTU_OPT,
    NODE_LABEL,
    ContainerSpec,
    container_specs,
    network_specs,
)
from socketlab.lab.topology import Topology

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container as DockerContainer

NETWORK_RELEASE_S = 15.0
OVERLAY_MTU = 1450  # Docker's overlay default: 1500 on the underlay, less 50 bytes of VXLAN


class AddressReserved(SwarmError):
    """A static address the overlay would not give (a failed attach can keep it reserved)."""


class SwarmEngine(ComposeEngine):
    name = "swarm"

    def __init__(self, project: str, *, swarm: Swarm | None = None,
                 place: Mapping[str, str] | None = None,
                 source: Callable[[], docker.DockerClient] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        super().__init__(project, progress=progress)
        self.swarm = swarm or Swarm.from_settings()
        self.wanted = dict(place or {})
        self._source = source  # this machine's engine, where missing images come from
        self._nodes_http: NodesHTTP | None = None

    @property
    def client(self) -> docker.DockerClient:
        """The manager's engine: the lab's overlays are made and listed there."""
        if self._client is None:
            self._client = self.swarm.manager
        return self._client

    @property
    def http(self) -> NodesHTTP:
        if self._nodes_http is None:
            self._nodes_http = NodesHTTP(self.swarm)
        return self._nodes_http

    # -- lifecycle ----------------------------------------------------------------------------
    def create(self, topology: Topology, settings: Mapping[str, str], *, lab_image: str,
               labels: Mapping[str, str] | None = None) -> None:
        placement = place_hosts(topology.names, self.swarm.nodes(), self.wanted)
        doc = unescape(render(topology, lab_image=lab_image, settings=settings, labels=labels))
        specs = container_specs(doc, self.project, placement)
        self._copy_images(specs)
        where = ", ".join(f"{h} on {n}" for h, n in placement.items())
        self.progress(f"on swarm ({self.swarm.source}): {where}")
        try:
            self._create_on_nodes(doc, specs)
        except AddressReserved as e:
            self.progress(f"{e}; removing the overlay and trying once more on a fresh one")
            self.remove()
            self._create_on_nodes(doc, specs)

    def _copy_images(self, specs: Sequence[ContainerSpec]) -> None:
        """Every image onto the nodes that run it, from this machine's engine if they lack it."""
        for image in dict.fromkeys(s.create["image"] for s in specs):
            nodes = dict.fromkeys(s.node for s in specs if s.create["image"] == image)
            targets = {n: self.swarm.client(n) for n in nodes}
            missing = [n for n, c in targets.items() if local_image(c, image) is None]
            if not missing:
                continue
            source = self._local_engine()
            if source is None or local_image(source, image) is None:
                raise ImageError(f"the image {image} is missing on node {', '.join(missing)}",
                                 hint=f"load it there (`docker save {image} | docker -H ENDPOINT "
                                      "load`), or build it on this machine first")
            distribute_image(source, {n: targets[n] for n in missing}, image, self.progress)

    def _local_engine(self) -> docker.DockerClient | None:
        from socketlab.lab.docker_api import connect

        try:
            return self._source() if self._source else connect()
        except Exception:  # noqa: BLE001  (no local engine: the caller says what is missing)
            return None

    def _create_on_nodes(self, doc: Mapping[str, Any], specs: Sequence[ContainerSpec]) -> None:
        for net in network_specs(doc, self.project):
            with signals.deferred():
                try:
                    self.client.networks.create(check_duplicate=True, **net)
                except _sdk_errors().APIError as e:
                    raise SwarmError(f"the overlay {net['name']} could not be made: "
                                     f"{e.explanation or e}") from None
        made: dict[str, Any] = {}
        for spec in specs:
            with signals.deferred():
                made[spec.service] = _create(self.swarm.client(spec.node), spec, made)

    def _remove_network(self, network) -> None:
        """An overlay whose last container has just gone may still be held by that container's
        attachment task on its node for a moment ("in use by task"): wait for it to go."""
        errors = _sdk_errors()
        deadline = time.monotonic() + NETWORK_RELEASE_S
        while True:
            try:
                network.remove()
                return
            except errors.NotFound:
                return
            except errors.APIError as e:
                if "in use by task" not in str(e.explanation or e) or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)  # polling the manager until the node has let the overlay go

    def _project_containers(self) -> dict[str, DockerContainer]:
        """Every container of this lab on every node, by service name."""
        def listed(client: docker.DockerClient) -> list[DockerContainer]:
            return client.containers.list(all=True, filters={**self._filter()},
                                          ignore_removed=True)

        clients = list(self.swarm.clients().values())
        with ThreadPoolExecutor(max_workers=max(1, len(clients))) as pool:
            found = [c for batch in pool.map(listed, clients) for c in batch]
        return {c.labels.get(SERVICE_LABEL) or str(c.name): c for c in found}

    def running(self) -> Running:
        """As the compose engine reads it; an overlay with no MTU of its own has 1450."""
        found = super().running()
        with_mtu = {n["Name"]: bool((n.get("Options") or {}).get(MTU_OPT))
                    for n in self.http.networks(filters=self._filter())}
        networks = tuple(n if with_mtu.get(f"{self.project}_{n.name}") else replace(n, mtu=OVERLAY_MTU)
                         for n in found.topology.networks)
        return replace(found, topology=replace(found.topology, networks=networks))

    def placement(self) -> dict[str, str]:
        """Which node runs which container of this lab, as the containers say."""
        return {s: c.labels.get(NODE_LABEL, "?") for s, c in self._project_containers().items()}

    # -- the engine as a whole ----------------------------------------------------------------
    def has_image(self, image: str) -> bool:
        """On every node socketlab reaches (create copies it there from this machine if not)."""
        return all(local_image(c, image) is not None for c in self.swarm.clients().values())

    def version(self) -> str:
        nodes = self.swarm.nodes()
        return f"{super().version()} (swarm of {len(nodes)} nodes)"


class NodesHTTP:
    """The compose engine's fast path (DockerHTTP) across nodes: lists gather every node's
    containers, and a container's own requests go to the node that runs it."""

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm
        self._node_of: dict[str, str] = {}
        self._exec_at: dict[str, DockerHTTP] = {}  # an exec's node: where it was created

    def _nodes(self) -> dict[str, DockerHTTP]:
        return {n.name: self.swarm.http(n.name) for n in self.swarm.nodes() if n.endpoint}

    def containers(self, *, all: bool = False, filters=None) -> list[dict]:
        found = []
        for node, http in self._nodes().items():
            for c in http.containers(all=all, filters=filters):
                self._node_of[c["Id"]] = node
                found.append(c)
        return found

    def _at(self, container: str) -> DockerHTTP:
        if container not in self._node_of:
            self.containers(all=True, filters={"id": container})
        if container not in self._node_of:
            raise LabNotRunning(f"no node runs the container {container[:12]}")
        return self.swarm.http(self._node_of[container])

    def networks(self, *, filters=None) -> list[dict]:
        manager = next(n.name for n in self.swarm.nodes() if n.endpoint and n.role == "manager")
        return self.swarm.http(manager).networks(filters=filters)

    def inspect_container(self, container: str) -> dict:
        return self._at(container).inspect_container(container)

    def read_file(self, container: str, path: str) -> bytes | None:
        return self._at(container).read_file(container, path)

    def exec_run(self, container: str, cmd: Sequence[str], *, user: str = ""):
        return self._at(container).exec_run(container, cmd, user=user)

    def exec_create(self, container: str, cmd: Sequence[str], **options: Any) -> str:
        http = self._at(container)
        exec_id = http.exec_create(container, cmd, **options)
        self._exec_at[exec_id] = http
        return exec_id

    def exec_attach(self, exec_id: str, **options: Any):
        return self._exec_at[exec_id].exec_attach(exec_id, **options)

    def start_exec(self, container: str, argv: Sequence[str], **options: Any):
        return self._at(container).start_exec(container, argv, **options)


def _create(client: docker.DockerClient, spec: ContainerSpec, made: Mapping[str, Any]):
    """One container on its node: created on its first network with its static address, then
    connected to the others (not started)."""
    create = dict(spec.create)
    if spec.share_with:
        create["network_mode"] = f"container:{made[spec.share_with].id}"
    elif spec.networks:
        first, ip = spec.networks[0]
        create["network"] = first
        create["networking_config"] = {first: client.api.create_endpoint_config(
            ipv4_address=ip, aliases=[spec.service])}  # found by its name, as compose does
    errors = _sdk_errors()
    try:
        container = client.containers.create(**create)
        for net, ip in spec.networks[1:]:
            client.networks.get(net).connect(container, ipv4_address=ip, aliases=[spec.service])
    except errors.ImageNotFound:
        raise ImageError(f"image {create['image']} is missing on node {spec.node}") from None
    except errors.APIError as e:
        said = str(e.explanation or e)
        if "already in use" in said or "deadline exceeded" in said:
            raise AddressReserved(f"node {spec.node} could not attach {spec.service} at its "
                                  f"address ({said}): the overlay may keep an address reserved "
                                  "after a failed attach") from None
        raise SwarmError(f"node {spec.node} could not create {spec.service}: {said}") from None
    return container


def _sdk_errors():
    import docker.errors

    return docker.errors


def remove_all_swarm_labs(swarm: Swarm) -> list[str]:
    """Every socketlab container on every node (the workers' first), then the labs' overlays
    (on the manager)."""
    from socketlab.lab.composefile import LAB_LABEL
    from socketlab.lab.containers import remove_all_labs
    from socketlab.lab.containers import remove_container as _remove_container

    removed, manager = [], swarm.manager
    for node, client in swarm.clients().items():
        if client is manager:
            continue
        for container in client.containers.list(all=True, filters={"label": LAB_LABEL},
                                                ignore_removed=True):
            _remove_container(container)
            removed.append(f"container {container.name} on {node}")
    name = next((n.name for n in swarm.nodes() if n.endpoint and swarm.client(n.name) is manager), "")
    return removed + [f"{what} on {name}" if what.startswith("container") else what
                      for what in remove_all_labs(manager)]


def is_swarm(lab: object) -> bool:
    """True for a lab whose engine is a swarm."""
    return getattr(getattr(lab, "engine", None), "name", "") == "swarm"

