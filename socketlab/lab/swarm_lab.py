"""A Lab whose hosts run on Docker Swarm nodes: the Lab's API over the swarm engine.

    swarm = Swarm.from_settings()                 # SOCKETLAB_SWARM_NODES, else the sandbox
    with SwarmLab(LabConfig(subnet="auto"), swarm=swarm, place={"client": "n2"}) as lab:
        lab.placement()                           # {"server": "n1", "client": "n2"}
        run_pair(lab, Options(proto="tcp"))       # programs, capture, shaping: unchanged

Programs, capture, shaping, counters and experiments only ask the Lab (exec, start,
container); here each of those goes to the SwarmEngine, which reaches the host through the
Docker endpoint of its node. (This adapter goes away once the Lab runs any Engine itself.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from socketlab.lab.assets import COMPOSE_FILE
from socketlab.lab.composefile import read_topology
from socketlab.lab.config import DEFAULT_PORT, HOSTS, LabConfig
from socketlab.lab.engine_swarm import NodesHTTP, SwarmEngine
from socketlab.lab.lab import Lab
from socketlab.lab.swarm import Swarm

if TYPE_CHECKING:
    import docker


class SwarmLab(Lab):
    """The post's two hosts on swarm nodes, joined by an overlay with the lab's subnet."""

    def __init__(self, config: LabConfig | None = None, *, swarm: Swarm,
                 place: Mapping[str, str] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        super().__init__(config, progress=progress)
        self.swarm = swarm
        self.engine = SwarmEngine(self.config.project, swarm=swarm, place=place,
                                  progress=self.progress)

    @classmethod
    def running(cls, project: str, *, swarm: Swarm,  # type: ignore[override]
                progress: Callable[[str], None] | None = None) -> SwarmLab:
        """The swarm lab `project` as it runs now, its settings read from its containers."""
        lab = cls(LabConfig(project=project), swarm=swarm, progress=progress)
        found = lab.engine.running()
        server, client = found.topology.host("server"), found.topology.host("client")
        lab.config = LabConfig(
            project=project, subnet=found.topology.network(server.networks[0]).subnet or "",
            server_ip=server.ip, client_ip=client.ip, image=found.lab_image,
            port=int(found.settings.get("SOCKETLAB_PORT", DEFAULT_PORT)),
            offloads=found.settings.get("SOCKETLAB_OFFLOADS") == "on")
        return lab

    @property
    def client(self) -> docker.DockerClient:
        """The manager's engine (the overlay lives there)."""
        return self.engine.client

    @property
    def http(self) -> NodesHTTP:  # type: ignore[override]
        """Look-ups and exec on every node: the Lab's own exec, start and attach then reach
        each host through the endpoint of the node that runs it."""
        return self.engine.http

    def _project_containers(self) -> dict[str, object]:
        return self.engine._project_containers()

    # -- lifecycle: the Lab's own steps (refuse, create, start, roll back), on the engine --
    def _check_image(self) -> None:
        """Nothing to check here: creating copies a missing image to the nodes that run it."""

    def _running_now(self) -> SwarmLab:
        return SwarmLab.running(self.config.project, swarm=self.swarm)

    def _create_hosts(self) -> None:
        """The overlay on the manager, then each host on its node (not started)."""
        settings = self.config.compose_env("idle")
        topology = read_topology(COMPOSE_FILE, settings, lab_image=self.config.image)
        self.engine.create(topology, settings, lab_image=self.config.image)

    def _start(self) -> None:
        self.engine.start()

    def _remove(self) -> list[str]:
        return self.engine.remove()

    def leftovers(self) -> list[str]:
        return self.engine.leftovers()

    # -- the hosts --------------------------------------------------------------------------
    def placement(self) -> dict[str, str]:
        """Which node runs which host."""
        return {h: n for h, n in self.engine.placement().items() if h in HOSTS}

    def status(self) -> list[dict[str, str]]:
        found, nodes = self.engine.containers(), self.placement()
        return [{"host": h, "address": self.config.ip_of(h), "node": nodes.get(h, "-"),
                 "state": found[h].state if h in found else "absent",
                 "container": found[h].id if h in found else "-"} for h in HOSTS]
