"""Every lab on this engine, as `socketlab ls` shows it: found by the labels every lab carries.

    for lab in list_labs(DockerHTTP.from_env()):
        print(lab.project, lab.state, lab.subnets, [h.name for h in lab.hosts])

Two requests to the engine (containers, networks), whatever the number of labs; no SDK.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from socketlab.lab.composefile import LAB_LABEL, SIDECAR_LABEL
from socketlab.lab.docker_http import DockerHTTP
from socketlab.lab.engine_compose import PROJECT_LABEL, SERVICE_LABEL


@dataclass(frozen=True)
class HostInfo:
    name: str
    address: str  # "-" when it has none (not running)
    state: str    # the engine's: running, created, exited, ...
    container: str  # the container's id (12 characters)
    instruments: str = ""  # the id of the container with its tools (lab-shape): its sidecar, else itself


@dataclass(frozen=True)
class LabInfo:
    project: str
    subnets: tuple[str, ...]
    hosts: tuple[HostInfo, ...]
    shaping: dict[str, dict] = field(default_factory=dict)  # host -> direction -> what (if asked)

    @property
    def state(self) -> str:
        """running (every host), stopped (none), partly running (some), or what the one is."""
        states = {h.state for h in self.hosts}
        if states == {"running"}:
            return "running"
        if "running" in states:
            return f"partly running ({sum(h.state == 'running' for h in self.hosts)}/{len(self.hosts)})"
        return "no hosts" if not states else states.pop() if len(states) == 1 else "stopped"

    def as_dict(self) -> dict:
        return {"project": self.project, "state": self.state, "subnets": list(self.subnets),
                "hosts": [{k: v for k, v in vars(h).items() if k != "instruments"} for h in self.hosts],
                "shaping": self.shaping}


def list_labs(engine: DockerHTTP) -> list[LabInfo]:
    """Every lab (compose project with the lab label) on the engine, sorted by name."""
    containers: dict[str, list[dict]] = defaultdict(list)
    for c in engine.containers(all=True, filters={"label": LAB_LABEL}):
        containers[c["Labels"].get(PROJECT_LABEL, "?")].append(c)
    subnets: dict[str, list[str]] = defaultdict(list)
    for net in engine.networks(filters={"label": LAB_LABEL}):
        project = (net.get("Labels") or {}).get(PROJECT_LABEL, "?")
        subnets[project] += [cfg["Subnet"] for cfg in (net.get("IPAM") or {}).get("Config") or []
                             if cfg.get("Subnet")]
    labs = []
    for project in sorted(set(containers) | set(subnets)):
        sidecars = {c["Labels"][SIDECAR_LABEL]: c["Id"] for c in containers[project]
                    if SIDECAR_LABEL in c["Labels"]}
        hosts = sorted((_host(c, sidecars) for c in containers[project]
                        if SIDECAR_LABEL not in c["Labels"]), key=lambda h: h.name)
        labs.append(LabInfo(project, tuple(sorted(subnets[project])), tuple(hosts)))
    return labs


def _host(container: dict, sidecars: dict[str, str]) -> HostInfo:
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    address = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "-")
    name = container["Labels"].get(SERVICE_LABEL) or container["Names"][0].lstrip("/")
    return HostInfo(name, address, container["State"], container["Id"][:12],
                    sidecars.get(name, container["Id"]))
