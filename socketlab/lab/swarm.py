"""A Docker Swarm as socketlab reaches it: its nodes, each with a Docker endpoint of its own,
and which node runs which host of a lab.

    swarm = Swarm.from_settings()       # SOCKETLAB_SWARM_NODES=ENDPOINT,... else the sandbox
    swarm.nodes()                       # [SwarmNode(name="n1", role="manager", ...), ...]
    place_hosts(["server", "client"], swarm.nodes(), {"client": "n2"})

A node is named by its `socketlab.node` label, else its hostname. Endpoints are what DOCKER_HOST
takes (unix:// or tcp://, TLS from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH as the docker CLI reads
them), a manager's first; the lab's overlay is made on that manager, and each host is created,
reached and removed through the endpoint of the node it runs on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from socketlab.errors import ConfigError, SwarmError
from socketlab.lab import sandbox
from socketlab.lab.docker_http import DockerHTTP

if TYPE_CHECKING:
    import docker

NODES_ENV = "SOCKETLAB_SWARM_NODES"   # the nodes' Docker endpoints, a manager's first
PLACE_ENV = "SOCKETLAB_SWARM_PLACE"   # host=node,...
NODE_NAME_LABEL = sandbox.NODE_LABEL
NETWORK_GONE_TIMEOUT = 15.0  # socketlab.node: a node's name for placement


@dataclass(frozen=True)
class SwarmNode:
    name: str        # its socketlab.node label, else its hostname
    id: str
    hostname: str
    role: str        # manager | worker
    state: str       # ready | down | unknown
    availability: str
    address: str
    endpoint: str | None  # the Docker endpoint socketlab reaches it by (None: not given)


def parse_place(text: str | None) -> dict[str, str]:
    """"server=n1,client=n2" as {"server": "n1", "client": "n2"} (pure)."""
    place = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        host, sep, node = item.partition("=")
        if not sep or not host.strip() or not node.strip():
            raise ConfigError(f"placement {item!r} is not HOST=NODE",
                              hint="e.g. --place server=n1,client=n2")
        place[host.strip()] = node.strip()
    return place


def place_hosts(hosts: Sequence[str], nodes: Sequence[SwarmNode],
                wanted: Mapping[str, str]) -> dict[str, str]:
    """Which node each host runs on: `wanted` first, the rest round-robin over the nodes
    that are ready, active and have an endpoint, in order. Refuses unknown hosts or nodes,
    and nodes that are down, drained or out of reach (pure)."""
    unknown = sorted(set(wanted) - set(hosts))
    if unknown:
        raise ConfigError(f"placement names {', '.join(unknown)}, not a host of the lab",
                          hint=f"the lab's hosts are {', '.join(hosts)}")
    by_name = {n.name: n for n in nodes}
    by_name.update({n.hostname: n for n in nodes if n.hostname not in by_name})
    reachable = [n for n in nodes if n.endpoint and n.state == "ready" and n.availability == "active"]
    if not reachable:
        raise SwarmError("no node of the swarm is ready, active and reachable by socketlab",
                         hint="see `docker node ls` on a manager")
    placement = {}
    for i, host in enumerate(hosts):
        node = by_name.get(wanted[host]) if host in wanted else reachable[i % len(reachable)]
        if node is None:
            raise SwarmError(f"no swarm node is named or labelled {wanted[host]!r} (for {host})",
                             hint=f"label one: `docker node update --label-add "
                                  f"{NODE_NAME_LABEL}={wanted[host]} NODE`; the nodes are "
                                  + ", ".join(f"{n.name} ({n.hostname})" for n in nodes))
        _check_usable(node, host)
        placement[host] = node.name
    return placement


def _check_usable(node: SwarmNode, host: str) -> None:
    if node.state != "ready":
        raise SwarmError(f"node {node.name} (for {host}) is {node.state}",
                         hint="start its Docker engine, or place the host elsewhere (--place)")
    if node.availability != "active":
        raise SwarmError(f"node {node.name} (for {host}) is {node.availability}",
                         hint=f"`docker node update --availability active {node.id}`")
    if not node.endpoint:
        raise SwarmError(f"node {node.name} (for {host}) has no Docker endpoint that answers",
                         hint=f"add its endpoint to {NODES_ENV} (e.g. tcp://{node.hostname}:2376), "
                              "or check that the one given there answers (`docker -H ENDPOINT info`)")


class Swarm:
    """A swarm as the lab reaches it: one Docker endpoint per node, a manager's first."""

    def __init__(self, endpoints: Sequence[str], *, source: str = "",
                 connect: Callable[[str], docker.DockerClient] | None = None) -> None:
        if not endpoints:
            raise ConfigError("no swarm node endpoints given",
                              hint=f"set {NODES_ENV}=ENDPOINT,... or start the sandbox")
        self.endpoints = list(endpoints)
        self.source = source or ", ".join(self.endpoints)
        self._connect = connect or sdk_client
        self._clients: dict[str, docker.DockerClient] = {}
        self._https: dict[str, DockerHTTP] = {}
        self._nodes: list[SwarmNode] | None = None

    @classmethod
    def from_settings(cls, environ: Mapping[str, str] | None = None) -> Swarm:
        """The nodes in SOCKETLAB_SWARM_NODES if set, else the swarm sandbox's."""
        env = os.environ if environ is None else environ
        given = [e.strip() for e in env.get(NODES_ENV, "").split(",") if e.strip()]
        if given:
            return cls(given, source=NODES_ENV)
        state = sandbox.find(sandbox.default_name(env), sandbox.sandbox_dir(env))
        return cls([n.url for n in state.nodes], source=f"sandbox {state.name!r}")

    def client_at(self, endpoint: str) -> docker.DockerClient:
        """The Docker SDK's client for one endpoint (it has answered a ping)."""
        import docker.errors

        if endpoint not in self._clients:
            try:
                client = self._connect(endpoint)
                client.ping()
            except (docker.errors.DockerException, OSError) as e:
                raise SwarmError(f"the Docker endpoint {endpoint} does not answer ({e})",
                                 hint=f"is that node's engine running? (endpoints from {self.source})"
                                 ) from None
            self._clients[endpoint] = client
        return self._clients[endpoint]

    @property
    def manager(self) -> docker.DockerClient:
        """The first endpoint that is a swarm manager (the lab's networks are made there)."""
        for endpoint in self.endpoints:
            swarm_info = self.client_at(endpoint).info().get("Swarm") or {}
            if swarm_info.get("ControlAvailable"):
                return self.client_at(endpoint)
            if swarm_info.get("LocalNodeState") != "active":
                raise SwarmError(f"the engine at {endpoint} is not part of a swarm",
                                 hint="`docker swarm init` on one machine, `docker swarm join` "
                                      "on the others (or `socketlab sandbox up`)")
        raise SwarmError(f"none of the endpoints ({self.source}) is a swarm manager",
                         hint="put a manager's endpoint first: `docker node ls` works there")

    def nodes(self) -> list[SwarmNode]:
        """Every node of the swarm as its manager sees it, with the endpoint that reaches it."""
        if self._nodes is None:
            manager, by_id = self.manager, dict[str, str]()
            for endpoint in self.endpoints:
                try:
                    node_id = (self.client_at(endpoint).info().get("Swarm") or {}).get("NodeID")
                except SwarmError:  # a node that is down: the manager's list says which
                    continue
                if node_id:
                    by_id.setdefault(node_id, endpoint)
            self._nodes = [_node(n.attrs, by_id.get(n.id or "")) for n in manager.nodes.list()]
            order = {e: i for i, e in enumerate(self.endpoints)}
            self._nodes.sort(key=lambda n: order.get(n.endpoint or "", len(order)))
        return self._nodes

    def client(self, node: str) -> docker.DockerClient:
        for n in self.nodes():
            if n.name == node and n.endpoint:
                return self.client_at(n.endpoint)
        raise SwarmError(f"node {node} has no Docker endpoint socketlab knows",
                         hint=f"add it to {NODES_ENV}")

    def clients(self) -> dict[str, docker.DockerClient]:
        """The SDK client of every node socketlab can reach, by node name."""
        return {n.name: self.client_at(n.endpoint) for n in self.nodes() if n.endpoint}

    def http(self, node: str) -> DockerHTTP:
        """The Engine API of one node without the SDK (look-ups and exec: the fast path)."""
        endpoint = next((n.endpoint for n in self.nodes() if n.name == node and n.endpoint), None)
        if endpoint is None:
            raise SwarmError(f"node {node} has no Docker endpoint socketlab knows",
                             hint=f"add it to {NODES_ENV}")
        if endpoint not in self._https:
            self._https[endpoint] = DockerHTTP.from_env({**os.environ, "DOCKER_HOST": endpoint})
        return self._https[endpoint]


def sdk_client(endpoint: str) -> docker.DockerClient:
    """The SDK's client for an endpoint, TLS as DOCKER_TLS_VERIFY/DOCKER_CERT_PATH say."""
    import docker

    return docker.from_env(environment={**os.environ, "DOCKER_HOST": endpoint}, timeout=120)


def _node(attrs: Mapping[str, Any], endpoint: str | None) -> SwarmNode:
    spec, desc, status = attrs.get("Spec", {}), attrs.get("Description", {}), attrs.get("Status", {})
    hostname = desc.get("Hostname", "")
    return SwarmNode(name=(spec.get("Labels") or {}).get(NODE_NAME_LABEL) or hostname,
                     id=attrs.get("ID", ""), hostname=hostname, role=spec.get("Role", ""),
                     state=status.get("State", "unknown"),
                     availability=spec.get("Availability", ""), address=status.get("Addr", ""),
                     endpoint=endpoint)
