"""A compose file as a topology, and a topology back as the compose file an engine runs.

    topo = read_topology(Path("topologies/router.yml"), env, lab_image="socketlab/lab:latest")
    doc = render(topo.place(...), lab_image=..., settings={...})   # a dict, for yaml.safe_dump

Reading interpolates `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}` and `$$`
as compose does (from the file's `.env`, then the environment, then the lab's settings), then
takes each service as a host. Its role is the label `io.socketlab.role`, else its name when that
is server, client or router, else `router` when it sets net.ipv4.ip_forward, else `host`. Its
instruments are the label `io.socketlab.instruments`, else inline for the lab image and sidecar
for any other. The file is read with bounds and resolved whole first (socketlab.lab.topofile),
and then it must pass the allowlist (socketlab.lab.allowlist): anything a host could be widened
with (privileges, mounts of this machine, raised bounds, host networking, published ports) is
refused in one line naming the host and the key.

Rendering writes what the lab adds: each network's subnet and each host's address (placed), the
lab's labels, routes (SOCKETLAB_ROUTES, applied by lab-host), forwarding on routers. A host with
an image of its own gets a sidecar (sidecar_spec): the engine makes it in that host's network
namespace itself (Compose v1 puts a `network_mode: service:X` container whose X is not running
yet on Docker's default bridge, which has a way out).

A routed lab's networks cannot be `internal` (Docker's internal bridges drop every packet
addressed outside their own subnet, so nothing crosses a router): they get a bridge with no
address on this machine instead (`inhibit_ipv4`), so there is no gateway to leave through,
and the hosts keep no default route.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from socketlab.errors import ConfigError
from socketlab.lab.allowlist import check_document
from socketlab.lab.bounds import HOST_LIMITS
from socketlab.lab.topofile import dotenv, interpolate, read_document, shown
from socketlab.lab.topology import (
    DEFAULT_MTU,
    INLINE,
    ROLES,
    SIDECAR,
    Host,
    Network,
    Topology,
    routes_env,
)

LAB_LABEL = "io.socketlab.lab"
ROLE_LABEL = "io.socketlab.role"
INSTRUMENTS_LABEL = "io.socketlab.instruments"
SIDECAR_LABEL = "io.socketlab.instruments-for"  # on a sidecar: the host it serves
INDEX_LABEL = "io.socketlab.index"  # a host's place in the file (hosts are listed in that order)
NETWORKS_LABEL = "io.socketlab.networks"  # a host's networks, in the file's order
UNSEALED_LABEL = "io.socketlab.unsealed"  # a host `up --unsealed HOST` let through unchecked
MTU_OPT = "com.docker.network.driver.mtu"
NO_HOST_ADDRESS_OPT = "com.docker.network.bridge.inhibit_ipv4"


# -- reading ----------------------------------------------------------------------------------
def read_topology(path: Path, env: Mapping[str, str], *, lab_image: str,
                  mounts: Iterable[str | Path] = (), unsealed: Iterable[str] = ()) -> Topology:
    """The topology a compose file describes, its variables filled from `.env` beside it,
    the environment and `env` (in that order, later ones winning): read with bounds, resolved
    whole (includes, extends), then checked against the allowlist (socketlab.lab.allowlist).
    `mounts`: the folders --mount names (a file may bind them); `unsealed`: --unsealed hosts."""
    values = {**dotenv(path.parent / ".env"), **os.environ, **env}
    doc = read_document(path, values)
    return _parse_resolved(doc, lab_image=lab_image, source=str(path),
                           folder=Path(path).resolve().parent, mounts=mounts, unsealed=unsealed,
                           where=shown(path))


def parse(data: Any, env: Mapping[str, str], *, lab_image: str, source: str = "",
          folder: Path | None = None, mounts: Iterable[str | Path] = (),
          unsealed: Iterable[str] = ()) -> Topology:
    """A topology from a compose file's parsed YAML (variables filled from `env`; nothing of
    another file is followed: read_topology resolves includes and extends)."""
    if isinstance(data, Mapping):
        data = interpolate({k: v for k, v in data.items() if not str(k).startswith("x-")}, env,
                           source or "the compose file")
    return _parse_resolved(data, lab_image=lab_image, source=source,
                           folder=folder or (Path(source).resolve().parent if source else Path.cwd()),
                           mounts=mounts, unsealed=unsealed)


def _parse_resolved(doc: Any, *, lab_image: str, source: str, folder: Path,
                    mounts: Iterable[str | Path], unsealed: Iterable[str],
                    where: str = "") -> Topology:
    where = where or source or "the compose file"
    if not isinstance(doc, Mapping) or not isinstance(doc.get("services"), Mapping) \
            or not doc["services"]:
        raise ConfigError(f"{where} has no services", hint="a topology is a compose file with services:")
    unsealed = tuple(unsealed)
    check_document(doc, source=where, folder=folder, mounts=mounts, lab_image=lab_image,
                   unsealed=unsealed)
    doc = dict(doc)
    declared = doc.get("networks") or {}
    if not isinstance(declared, Mapping):
        raise ConfigError(f"{where}: networks: must be a mapping of names")
    networks = {str(name): _network(str(name), spec or {}, where) for name, spec in declared.items()}
    hosts = []
    for name, spec in doc["services"].items():
        host = _host(str(name), spec or {}, lab_image, where)
        if host.name in unsealed:
            host = replace(host, unsealed=True)
        for net, _ in host.addresses:
            if net == "default" and net not in networks:
                networks[net] = Network("default")
        hosts.append(host)
    used = {net for h in hosts for net in h.networks}
    return Topology(tuple(hosts), tuple(n for n in networks.values() if n.name in used),
                    source=source, compose=doc)


def _network(name: str, spec: Mapping, where: str) -> Network:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: network {name!r} must be a mapping")
    if spec.get("external"):
        raise ConfigError(f"{where}: network {name!r} is external",
                          hint="a lab makes its own networks: remove external:")
    if spec.get("driver", "bridge") != "bridge":
        raise ConfigError(f"{where}: network {name!r} uses the driver {spec['driver']!r}",
                          hint="a lab network is a bridge (the engine chooses how to run it)")
    subnets = [c.get("subnet") for c in ((spec.get("ipam") or {}).get("config") or [])
               if isinstance(c, Mapping) and c.get("subnet")]
    opts = spec.get("driver_opts") or {}
    try:
        mtu = int(opts.get(MTU_OPT, DEFAULT_MTU))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: network {name!r}: MTU {opts.get(MTU_OPT)!r} is not a number",
                          hint="give driver_opts com.docker.network.driver.mtu a number, e.g. 1000") from None
    return Network(name, str(subnets[0]) if subnets else None, mtu, bool(spec.get("internal", False)))


def _host(name: str, spec: Mapping, lab_image: str, where: str) -> Host:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: service {name!r} must be a mapping")
    image = spec.get("image")
    if not image:
        raise ConfigError(f"{where}: host {name!r} has no image",
                          hint="name its image (image: ...), also when compose builds it")
    labels = _mapping(spec.get("labels"))
    sysctls = _mapping(spec.get("sysctls"))
    forwards = str(sysctls.get("net.ipv4.ip_forward", "0")) == "1"
    role = labels.get(ROLE_LABEL) or (name if name in ROLES[:3] else "router" if forwards else "host")
    instruments = labels.get(INSTRUMENTS_LABEL) or (INLINE if image == lab_image else SIDECAR)
    nets = spec.get("networks")
    if nets is None:
        addresses: list[tuple[str, str | None]] = [("default", None)]
    elif isinstance(nets, list):
        addresses = [(str(n), None) for n in nets]
    elif isinstance(nets, Mapping):
        addresses = [(str(n), (cfg or {}).get("ipv4_address") if isinstance(cfg, Mapping) else None)
                     for n, cfg in nets.items()]
    else:
        raise ConfigError(f"{where}: host {name!r}: networks: must be a list or a mapping")
    return Host(name, tuple(addresses), str(image), str(role), str(instruments))


def _mapping(value: Any) -> dict[str, str]:
    """Compose's two spellings of labels, environment and sysctls: a mapping or KEY=VALUE list."""
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list):
        return dict(str(item).partition("=")[::2] for item in value)
    return {}


# -- rendering --------------------------------------------------------------------------------
def render(topo: Topology, *, lab_image: str, settings: Mapping[str, str] | None = None,
           labels: Mapping[str, str] | None = None) -> dict:
    """The compose file that runs `topo` (placed) as a lab; `settings` (SOCKETLAB_* variables)
    reach every lab-image container that does not set them itself; `labels` (its owner's,
    socketlab.lab.owner) go on every network and container besides the lab's own."""
    labels = dict(labels or {})
    if not topo.placed:
        raise ConfigError("the topology is not placed yet", hint="place it: Topology.place()")
    settings = dict(settings or {})
    doc = copy.deepcopy(dict(topo.compose))
    doc.pop("version", None)
    routes = topo.routes()
    doc["networks"] = {n.name: _render_network(n, (doc.get("networks") or {}).get(n.name) or {},
                                               topo.routed, labels) for n in topo.networks}
    services = {}
    for index, h in enumerate(topo.hosts):
        spec = dict(doc["services"][h.name] or {})
        spec["networks"] = {net: {"ipv4_address": ip} for net, ip in h.addresses}
        spec["labels"] = {**_mapping(spec.get("labels")), LAB_LABEL: "1", ROLE_LABEL: h.role,
                          INSTRUMENTS_LABEL: h.instruments, INDEX_LABEL: str(index),
                          NETWORKS_LABEL: ",".join(h.networks),
                          **({UNSEALED_LABEL: "1"} if h.unsealed else {}), **labels}
        _sealed(spec)
        if h.role == "router":
            spec["sysctls"] = {**_mapping(spec.get("sysctls")), "net.ipv4.ip_forward": "1"}
        if h.instruments == INLINE:  # the lab image: its tools need NET_ADMIN, tini stops it at once
            spec["cap_add"] = sorted({*(spec.get("cap_add") or []), "NET_ADMIN"})
            spec.setdefault("init", True)
            spec["environment"] = {**settings, "SOCKETLAB_MODE": "idle",
                                   **_mapping(spec.get("environment")),
                                   "SOCKETLAB_ROUTES": routes_env(routes[h.name])}
            spec["command"] = _behind_lab_host(h.role, spec.get("command"))
        elif not h.unsealed:  # an image of its own runs as it says, root as a rule: a packet
            # socket (NET_RAW) would send frames around the seal its sidecar holds in iptables
            spec["cap_drop"] = sorted({*(spec.get("cap_drop") or []), "NET_RAW"})
        if h.mounts:
            spec["volumes"] = [*(spec.get("volumes") or []),
                               *(f"{local}:{dest}:ro" for local, dest in h.mounts)]
        services[h.name] = spec
    doc["services"] = services
    return _escape(doc)


def _behind_lab_host(role: str, command: Any) -> list[str]:
    """A lab-image host always starts with lab-host (sealed, routed, offloads off); a command
    of the file's own then runs after it, as the program user (`lab-host ROLE -- CMD...`)."""
    if command is None:
        return ["lab-host", role]
    argv = ["sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
    if argv[:1] == ["lab-host"]:
        return argv
    return ["lab-host", role, "--", *argv]


def _render_network(n: Network, spec: Mapping, routed: bool, labels: Mapping[str, str]) -> dict:
    out = dict(spec)
    out["ipam"] = {**(out.get("ipam") or {}), "config": [{"subnet": n.subnet}]}
    out["labels"] = {**_mapping(out.get("labels")), LAB_LABEL: "1", **labels}
    opts = _mapping(out.get("driver_opts"))
    if n.mtu != DEFAULT_MTU:
        opts[MTU_OPT] = str(n.mtu)
    out["internal"] = not routed  # whatever the file says: a lab network has no way out
    if routed:  # see the module's notes: no address on this machine, so no way out
        opts[NO_HOST_ADDRESS_OPT] = "true"
    if opts:
        out["driver_opts"] = opts
    return out


# Every host is bounded, whatever its file says (socketlab.lab.bounds: a file may lower the
# bounds, never raise them): memory with no swap, processes, no new privileges; and its
# programs may bind any port as the unprivileged user lab-program runs them as.
UNPRIVILEGED_PORTS = {"net.ipv4.ip_unprivileged_port_start": "0"}


def _sealed(spec: dict) -> dict:
    """A service with the lab's bounds (limits its file sets itself stand)."""
    for key, value in HOST_LIMITS.items():
        spec.setdefault(key, value)
    spec["memswap_limit"] = spec["mem_limit"]  # no swap: memory and swap together, one bound
    spec["security_opt"] = sorted({*spec.get("security_opt", []), "no-new-privileges:true"})
    if spec.get("network_mode", "").startswith("service:"):
        return spec  # a sidecar shares its host's namespace: the host sets the sysctls
    spec["sysctls"] = {**UNPRIVILEGED_PORTS, **_mapping(spec.get("sysctls"))}
    return spec


def sidecar_spec(topo: Topology, host: str, *, lab_image: str,
                 settings: Mapping[str, str] | None = None,
                 labels: Mapping[str, str] | None = None) -> dict:
    """The lab-image container that carries a host's instruments, to run in that host's own
    network namespace: it also makes the namespace a lab host's (routes, no default route,
    offloads). Compose's words; `network_mode` names the host's service."""
    h = topo.host(host)
    return _sealed({
        "image": lab_image,
        "init": True,
        "cap_add": ["NET_ADMIN"],
        "network_mode": f"service:{h.name}",
        "command": ["lab-host", "instruments"],
        "labels": {LAB_LABEL: "1", SIDECAR_LABEL: h.name, **(labels or {})},
        "environment": {**(settings or {}), "SOCKETLAB_MODE": "idle",
                        "SOCKETLAB_ROUTES": routes_env(topo.routes()[h.name])},
    })


def _escape(value: Any) -> Any:
    """`$` as `$$`: the rendered file is already interpolated, compose must not do it again."""
    return _strings(value, lambda text: text.replace("$", "$$"))


def unescape(value: Any) -> Any:
    """A rendered file's `$$` as `$` again, for an engine that runs it without compose."""
    return _strings(value, lambda text: text.replace("$$", "$"))


def _strings(value: Any, change: Callable[[str], str]) -> Any:
    """Every string in a nested document of mappings and lists, changed."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {k: _strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v, change) for v in value]
    return value


def dump(doc: Mapping) -> str:
    import yaml

    return yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False)
