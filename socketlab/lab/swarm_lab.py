"""A Lab whose hosts run on Docker Swarm nodes: the Lab over the swarm engine.

    swarm = Swarm.from_settings()                 # SOCKETLAB_SWARM_NODES, else the sandbox
    with SwarmLab(LabConfig(subnet="auto"), swarm=swarm, place={"client": "n2"}) as lab:
        lab.placement()                           # {"server": "n1", "client": "n2"}
        run_pair(lab, Options(proto="tcp"))       # programs, capture, shaping: unchanged

The Lab runs any engine (socketlab.lab.engine); this only adds what a swarm has and one
Docker engine has not: the node each host runs on, and images copied to the nodes as the
lab is made (so a missing image is not refused before).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from socketlab.lab.config import LabConfig
from socketlab.lab.engine_swarm import SwarmEngine
from socketlab.lab.lab import Lab
from socketlab.lab.swarm import Swarm

if TYPE_CHECKING:
    import docker

    from socketlab.lab.engine import Engine


class SwarmLab(Lab):
    """A lab's hosts on swarm nodes, joined by an overlay with the lab's subnet."""

    engine: SwarmEngine  # always: __init__ makes it or is given it

    def __init__(self, config: LabConfig | None = None, *, swarm: Swarm | None = None,
                 place: Mapping[str, str] | None = None, engine: SwarmEngine | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        config = config or LabConfig.isolated()
        engine = engine or SwarmEngine(config.project, swarm=swarm, place=place)
        super().__init__(config, engine=engine, progress=progress)
        engine.progress = self._say
        self.swarm = engine.swarm

    @classmethod
    def running(cls, project: str, *, client: docker.DockerClient | None = None,
                engine: Engine | None = None, progress: Callable[[str], None] | None = None,
                swarm: Swarm | None = None) -> SwarmLab:
        """The swarm lab `project` as it runs now, its settings read from its containers
        (`client` is not used: the swarm's nodes each have their own)."""
        if engine is not None and not isinstance(engine, SwarmEngine):
            raise TypeError(f"a SwarmLab runs on the swarm engine, not {engine.name}")
        return super().running(project, engine=engine or SwarmEngine(project, swarm=swarm),
                               progress=progress)

    def _check_image(self) -> None:
        """Nothing to check here: creating copies a missing image to the nodes that run it."""

    # -- the hosts --------------------------------------------------------------------------
    def placement(self) -> dict[str, str]:
        """Which node runs which host."""
        names = set(self.topology.names)
        return {h: n for h, n in self.engine.placement().items() if h in names}

    def status(self) -> list[dict[str, str]]:
        nodes = self.placement()
        return [{"name": r["name"], "address": r["address"], "node": nodes.get(r["name"], "-"),
                 "state": r["state"], "container": r["container"], "sealed": r.get("sealed", "-")}
                for r in super().status()]

    def container(self, host: str):
        """The SDK's container of a host (on its node's engine)."""
        return self.engine._running(self._service(host, False))
