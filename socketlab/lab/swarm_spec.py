"""A lab's rendered compose file as the swarm engine creates it: overlays and containers (pure).

Every network of the file becomes an `--attachable` overlay with its subnet (and its MTU if the
file sets one), always internal: a non-internal overlay would give each host a second
interface, on its node's docker_gwbridge, and a way out of the lab. Every service becomes one
container on the node it is placed on, with its static addresses (`docker run --network NET
--ip ADDR`), the compose labels (project, service) that the lab finds its hosts by, and the
node it runs on.

    networks = network_specs(doc, "lab1")                 # for manager.networks.create(**spec)
    hosts = container_specs(doc, "lab1", {"server": "n1", "client": "n2"})

What the document asks that cannot be carried to another machine (bind mounts, published
ports, host namespaces, devices, privileged) is refused with one line; build, depends_on and
restart are left out (the image is copied to the nodes; socketlab starts the hosts itself).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from socketlab.errors import ConfigError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NETWORK_LABEL = "com.docker.compose.network"
NODE_LABEL = "io.socketlab.node"      # on a lab container: the swarm node it was placed on
ENGINE_LABEL = "io.socketlab.engine"
MTU_OPT = "com.docker.network.driver.mtu"

_IGNORED = {"build", "depends_on", "restart", "container_name", "hostname", "stop_grace_period",
            "profiles", "deploy"}
_REFUSED = {"ports": "published ports", "volumes": "volumes (a bind mount names a folder of "
            "this machine)", "privileged": "privileged mode", "devices": "devices",
            "pid": "the host's pid namespace", "ipc": "the host's ipc namespace",
            "extra_hosts": "extra hosts", "links": "links", "external_links": "links"}
_DIRECT = {"image": "image", "command": "command", "entrypoint": "entrypoint", "user": "user",
           "working_dir": "working_dir", "cap_add": "cap_add", "cap_drop": "cap_drop",
           "init": "init", "sysctls": "sysctls", "read_only": "read_only",
           "security_opt": "security_opt", "tmpfs": None, "mem_limit": "mem_limit",
           "memswap_limit": "memswap_limit", "pids_limit": "pids_limit",
           "shm_size": "shm_size", "stop_signal": "stop_signal",
           "ulimits": None, "cpus": None, "healthcheck": None, "environment": None,
           "labels": None, "networks": None, "network_mode": None, "mem_reservation": None}


@dataclass(frozen=True)
class ContainerSpec:
    """One host (or sidecar) as the engine creates it on `node`."""

    service: str
    node: str
    name: str
    create: dict[str, Any]                                   # containers.create(**create)
    networks: list[tuple[str, str | None]] = field(default_factory=list)  # (network, ip)
    share_with: str | None = None  # network_mode service:X: X's container, on the same node


def network_name(project: str, network: str) -> str:
    return f"{project}_{network}"


def network_specs(doc: Mapping[str, Any], project: str) -> list[dict[str, Any]]:
    """One attachable overlay per network of the document: kwargs for networks.create."""
    specs = []
    for name, net in (doc.get("networks") or {}).items():
        net = net or {}
        if net.get("external"):
            raise ConfigError(f"network {name!r} is external: the swarm engine makes its own",
                              hint="remove `external:` from the compose file")
        pools = [{"Subnet": c["subnet"]} for c in (net.get("ipam") or {}).get("config") or []
                 if c.get("subnet")]
        options = {k: str(v) for k, v in (net.get("driver_opts") or {}).items() if k == MTU_OPT}
        specs.append({  # always internal: no docker_gwbridge, no way out of the lab
            "name": network_name(project, name), "driver": "overlay", "attachable": True,
            "internal": True, "options": options,
            "ipam": {"Driver": "default", "Config": pools} if pools else None,
            "labels": {**_labels(net.get("labels")), PROJECT_LABEL: project, NETWORK_LABEL: name},
        })
    return specs


def container_specs(doc: Mapping[str, Any], project: str,
                    placement: Mapping[str, str]) -> list[ContainerSpec]:
    """Every service of the document as a container on its node, in file order (a service
    that shares another's network namespace goes to that one's node, after it)."""
    services = doc.get("services") or {}
    specs = []
    for service, spec in services.items():
        share = _shared(service, spec or {}, services)
        node = placement.get(share or service)
        if node is None:
            raise ConfigError(f"service {service!r} has no node to run on",
                              hint="place it: --place HOST=NODE (or SOCKETLAB_SWARM_PLACE)")
        specs.append(_container(service, spec or {}, project, node, share))
    return sorted(specs, key=lambda s: s.share_with is not None)


def _container(service: str, spec: Mapping[str, Any], project: str, node: str,
               share: str | None) -> ContainerSpec:
    _check_keys(service, spec)
    create: dict[str, Any] = {name: v for k, v in spec.items() if (name := _DIRECT.get(k))}
    if "image" not in create:
        raise ConfigError(f"service {service!r} has no image", hint="give it `image:`")
    create["environment"] = _environment(spec.get("environment"))
    create["labels"] = {**_labels(spec.get("labels")), PROJECT_LABEL: project,
                        SERVICE_LABEL: service, NODE_LABEL: node, ENGINE_LABEL: "swarm"}
    create["name"] = f"{project}-{service}"
    if "cpus" in spec:
        create["nano_cpus"] = int(float(spec["cpus"]) * 1e9)
    if "ulimits" in spec:
        create["ulimits"] = _ulimits(spec["ulimits"])
    if "tmpfs" in spec:
        paths = [spec["tmpfs"]] if isinstance(spec["tmpfs"], str) else spec["tmpfs"]
        create["tmpfs"] = dict(str(p).partition(":")[::2] for p in paths)  # (path, options)
    if "mem_reservation" in spec:
        create["mem_reservation"] = spec["mem_reservation"]
    if spec.get("healthcheck") and not spec["healthcheck"].get("disable"):
        create["healthcheck"] = _healthcheck(spec["healthcheck"])
    joined = _networks(spec.get("networks"))
    networks = [(network_name(project, net), (opts or {}).get("ipv4_address"))
                for net, opts in joined.items()]
    if share is None and len(networks) > 1:
        # Measured on the sandbox: a container connected to a second attachable overlay before
        # it starts fails to start ("attaching to network failed ... context deadline
        # exceeded"), on a worker and on the manager alike; connected after, the host would
        # boot (seal, routes) without it.
        raise ConfigError(f"service {service!r} is on {len(networks)} networks "
                          f"({', '.join(joined)}): on "
                          "swarm a host joins one overlay (the engine does not attach a second "
                          "one to a container before it starts)",
                          hint="run this topology on one engine (without --engine swarm)")
    if share is None and spec.get("network_mode") == "none":
        create["network_mode"] = "none"
    return ContainerSpec(service, node, create["name"], create, [] if share else networks, share)


def _check_keys(service: str, spec: Mapping[str, Any]) -> None:
    for key in spec:
        if key in _REFUSED:
            raise ConfigError(f"service {service!r} asks for {_REFUSED[key]}, which the swarm "
                              "engine cannot carry to another machine",
                              hint=f"remove `{key}:` from it, or run this lab on one engine")
        if key not in _DIRECT and key not in _IGNORED:
            raise ConfigError(f"service {service!r} sets `{key}`, which the swarm engine does "
                              "not carry over", hint="remove it, or run this lab on one engine")
    mode = spec.get("network_mode")
    if mode not in (None, "none") and not str(mode).startswith("service:"):
        raise ConfigError(f"service {service!r} has network_mode {mode!r}",
                          hint="on swarm a host joins the lab's overlays, or another host's "
                               "namespace (service:NAME)")


def _shared(service: str, spec: Mapping[str, Any], services: Mapping[str, Any]) -> str | None:
    mode = str(spec.get("network_mode") or "")
    if not mode.startswith("service:"):
        return None
    other = mode.removeprefix("service:")
    if other not in services or other == service:
        raise ConfigError(f"service {service!r} shares the namespace of {other!r}, "
                          "which is not a service of the file")
    return other


def _networks(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return dict.fromkeys(value)
    return dict(value or {})


def _labels(value: Any) -> dict[str, str]:
    if isinstance(value, list):
        return dict(str(v).partition("=")[::2] for v in value)  # (name, value: "" if none)
    return {str(k): str(v) for k, v in (value or {}).items()}


def _environment(value: Any) -> dict[str, str]:
    if isinstance(value, list):
        return dict(str(v).split("=", 1) for v in value if "=" in str(v))
    return {str(k): "" if v is None else str(v) for k, v in (value or {}).items()}


def _ulimits(value: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, limit in value.items():
        soft, hard = (limit, limit) if isinstance(limit, int) else (limit["soft"], limit["hard"])
        out.append({"Name": name, "Soft": soft, "Hard": hard})
    return out


def _healthcheck(hc: Mapping[str, Any]) -> dict[str, Any]:
    test = hc.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    out: dict[str, Any] = {"test": test}
    for key in ("interval", "timeout", "start_period"):
        if key in hc:
            out[key] = duration_ns(hc[key])
    if "retries" in hc:
        out["retries"] = int(hc["retries"])
    return out


_UNITS = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1}


def duration_ns(text: Any) -> int:
    """A compose duration ("1s", "1m30s", "500ms", or plain seconds) in nanoseconds."""
    if isinstance(text, (int, float)):
        return int(text * 1e9)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text).strip():
        raise ConfigError(f"duration {text!r} is not one compose understands",
                          hint="write it like 1s, 500ms or 1m30s")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))
