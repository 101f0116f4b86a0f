"""The topology: a lab's hosts, its networks, and who sits where. Pure data, no Docker.

    topo = read_topology(COMPOSE_FILE, env)           # socketlab.lab.composefile
    topo.host("server").ip                             # "192.168.33.5"
    topo.by_role("router")                             # the router hosts, in file order
    topo.place({"labnet": "192.168.131.0/24"})        # the same lab on another subnet
    topo.routes()        # {"client": [("192.168.35.0/24", "192.168.33.2")], ...}: (subnet, next hop)

A host has an address on each of its networks, an image, a role (server, client, router, or
plain host) and its instruments: `inline` when it runs the lab image (tcpdump, tc, iptables,
lab-shape, lab-nfq are in it), `sidecar` when it runs an image of its own: a lab-image container
sharing its network namespace then carries the instruments. A network has a subnet, an MTU and
whether Docker keeps it `internal`. Placement moves a network to another subnet keeping each
host's offset in it (.5 stays .5) and gives an address to every host that has none.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from socketlab.errors import ConfigError, UnknownHost

ROLES = ("server", "client", "router", "host")
INLINE, SIDECAR = "inline", "sidecar"
SIDECAR_SUFFIX = "-instruments"  # the sidecar of host X is the service X-instruments
DEFAULT_MTU = 1500
FIRST_FREE_OFFSET = 2  # .1 is the bridge's gateway address (Docker reserves it)


@dataclass(frozen=True)
class Network:
    name: str
    subnet: str | None = None  # None: not placed yet (placement gives it one)
    mtu: int = DEFAULT_MTU
    internal: bool = True

    @property
    def net(self) -> ipaddress.IPv4Network:
        if self.subnet is None:
            raise ConfigError(f"network {self.name!r} has no subnet yet",
                              hint="give it one under ipam.config, or start the lab with subnet auto")
        return ipaddress.IPv4Network(self.subnet)


@dataclass(frozen=True)
class Host:
    name: str
    addresses: tuple[tuple[str, str | None], ...]  # (network, IPv4 or None until placed), file order
    image: str
    role: str = "host"
    instruments: str = INLINE
    mounts: tuple[tuple[str, str], ...] = ()  # (folder on this machine, path in the host), read-only
    unsealed: bool = False  # `up --unsealed HOST`: its file's keys were not held to the allowlist

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(net for net, _ in self.addresses)

    def address(self, network: str | None = None) -> str:
        """The host's address on `network` (its first network if None)."""
        for net, ip in self.addresses:
            if network in (None, net):
                if ip is None:
                    raise ConfigError(f"host {self.name!r} has no address on {net!r} yet")
                return ip
        raise ConfigError(f"host {self.name!r} is not on network {network!r}",
                          hint=f"its networks are {', '.join(self.networks)}")

    @property
    def ip(self) -> str:
        return self.address()

    @property
    def sidecar(self) -> str | None:
        """The service that carries this host's instruments, if not the host itself."""
        return self.name + SIDECAR_SUFFIX if self.instruments == SIDECAR else None

    @property
    def tools(self) -> str:
        """Where tcpdump, tc, iptables and lab-shape run for this host (a service name)."""
        return self.sidecar or self.name


@dataclass(frozen=True)
class Topology:
    hosts: tuple[Host, ...]
    networks: tuple[Network, ...]
    source: str = ""  # where it was read from (a compose file), for messages
    compose: Mapping = field(default_factory=dict, compare=False, repr=False)  # the file, interpolated

    def __post_init__(self) -> None:
        check(self)

    # -- look-ups ----------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise UnknownHost(f"unknown host {name!r}", hint=f"the lab's hosts are {', '.join(self.names)}")

    def network(self, name: str) -> Network:
        for n in self.networks:
            if n.name == name:
                return n
        raise ConfigError(f"unknown network {name!r}",
                          hint=f"the lab's networks are {', '.join(n.name for n in self.networks)}")

    def by_role(self, role: str) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.role == role)

    def role_host(self, role: str) -> Host | None:
        """The one host with this role (the first, if several have it)."""
        found = self.by_role(role)
        return found[0] if found else None

    def ip(self, host: str, network: str | None = None) -> str:
        return self.host(host).address(network)

    def services(self) -> tuple[str, ...]:
        """Every container the lab runs: the hosts, then the sidecars."""
        return self.names + tuple(h.sidecar for h in self.hosts if h.sidecar)

    @property
    def placed(self) -> bool:
        return all(n.subnet for n in self.networks) and all(
            ip for h in self.hosts for _, ip in h.addresses)

    @property
    def routed(self) -> bool:
        """True when packets cross a router between the lab's networks."""
        return bool(self.by_role("router"))

    def mtu_path(self, a: str, b: str) -> list[int]:
        """The MTUs of the links a packet from host a to host b crosses, in order."""
        return [self.network(n).mtu for n in self._path(self.host(a), self.host(b))]

    # -- placement ---------------------------------------------------------------------------
    def place(self, subnets: Mapping[str, str] | None = None) -> Topology:
        """This topology with the given networks moved to new subnets (each host keeps its
        offset: .5 stays .5) and an address for every host that has none (the lowest free
        offset from .2, in file order)."""
        subnets = dict(subnets or {})
        unknown = set(subnets) - {n.name for n in self.networks}
        if unknown:
            raise ConfigError(f"no network {', '.join(sorted(unknown))} in the topology",
                              hint=f"its networks are {', '.join(n.name for n in self.networks)}")
        moved = {n.name: _subnet(subnets[n.name], n.name) for n in self.networks if n.name in subnets}
        for n in self.networks:
            if n.subnet is None and n.name not in moved:
                raise ConfigError(f"network {n.name!r} has no subnet",
                                  hint="give it one under ipam.config, or use subnet auto")
        networks = tuple(replace(n, subnet=str(moved[n.name])) if n.name in moved else n
                         for n in self.networks)
        old = {n.name: n for n in self.networks}
        taken: dict[str, set[int]] = {n.name: set() for n in networks}
        staged = []
        for h in self.hosts:
            addrs = []
            for net, ip in h.addresses:
                if ip is not None and net in moved:
                    offset = int(ipaddress.IPv4Address(ip)) - int(old[net].net.network_address)
                    if offset >= moved[net].num_addresses - 1:
                        raise ConfigError(f"host {h.name!r} ({ip}) has no place in {moved[net]}",
                                          hint=f"give network {net!r} a larger subnet")
                    ip = str(moved[net].network_address + offset)
                if ip is not None:
                    taken[net].add(int(ipaddress.IPv4Address(ip)))
                addrs.append((net, ip))
            staged.append((h, addrs))
        nets = {n.name: n.net for n in networks}
        hosts = []
        for h, addrs in staged:
            filled = []
            for net, ip in addrs:
                if ip is None:
                    ip = _free_address(nets[net], taken[net], net)
                filled.append((net, ip))
            hosts.append(replace(h, addresses=tuple(filled)))
        return replace(self, hosts=tuple(hosts), networks=networks)

    def with_mounts(self, mounts: Iterable[tuple[str, str]]) -> Topology:
        """Every host that runs the lab image gets these folders (read-only)."""
        mounts = tuple(mounts)
        return replace(self, hosts=tuple(replace(h, mounts=mounts) if h.instruments == INLINE else h
                                         for h in self.hosts))

    # -- routes ------------------------------------------------------------------------------
    def routes(self) -> dict[str, list[tuple[str, str]]]:
        """For each host, (subnet, next hop) for every lab network it is not on and can reach
        through the lab's routers (the fewest hops). Hosts keep no default route: a packet for
        any address outside the lab's networks has no route at all."""
        table: dict[str, list[tuple[str, str]]] = {}
        for h in self.hosts:
            rows = []
            for n in self.networks:
                if n.name in h.networks:
                    continue
                hop = self._first_hop(h, n.name)
                if hop is not None:
                    rows.append((n.subnet or "", hop))
            table[h.name] = rows
        return table

    def _first_hop(self, src: Host, dest: str) -> str | None:
        """The address of the first router on the way from src to network dest, or None."""
        # Breadth-first over networks; a router joins the networks it is on.
        frontier: list[tuple[str, str | None]] = [(net, None) for net in src.networks]
        seen = set(src.networks)
        while frontier:
            nxt: list[tuple[str, str | None]] = []
            for net, first in frontier:
                for r in self.by_role("router"):
                    if r.name == src.name or net not in r.networks:
                        continue
                    hop = first or r.address(net)
                    for other in r.networks:
                        if other == dest:
                            return hop
                        if other not in seen:
                            seen.add(other)
                            nxt.append((other, hop))
            frontier = nxt
        return None

    def _path(self, a: Host, b: Host) -> list[str]:
        """The networks crossed from a to b (through routers), fewest hops first."""
        frontier: list[list[str]] = [[net] for net in a.networks]
        seen = set(a.networks)
        while frontier:
            nxt = []
            for path in frontier:
                if path[-1] in b.networks:
                    return path
                for r in self.by_role("router"):
                    if path[-1] in r.networks:
                        for other in r.networks:
                            if other not in seen:
                                seen.add(other)
                                nxt.append([*path, other])
            frontier = nxt
        raise ConfigError(f"no path from {a.name} to {b.name} in the lab",
                          hint="put them on one network, or join their networks with a router")


def check(topo: Topology) -> None:
    """Every rule a topology must keep, each broken one a one-line ConfigError."""
    where = f" in {topo.source}" if topo.source else ""
    if not topo.hosts:
        raise ConfigError(f"no hosts{where}", hint="a lab needs at least one service")
    names = [h.name for h in topo.hosts]
    nets = {n.name: n for n in topo.networks}
    services = set(names)
    for h in topo.hosts:
        if names.count(h.name) > 1:
            raise ConfigError(f"host {h.name!r} is defined twice{where}")
        if h.sidecar and h.sidecar in services:
            raise ConfigError(f"host {h.name!r} needs a sidecar named {h.sidecar!r}, and a host has "
                              f"that name{where}", hint="rename that host")
        if h.role not in ROLES:
            raise ConfigError(f"host {h.name!r} has an unknown role {h.role!r}{where}",
                              hint=f"use one of {', '.join(ROLES)}")
        if h.instruments not in (INLINE, SIDECAR):
            raise ConfigError(f"host {h.name!r}: instruments {h.instruments!r}{where}",
                              hint=f"use {INLINE} (the lab image) or {SIDECAR} (any image)")
        if not h.addresses:
            raise ConfigError(f"host {h.name!r} is on no network{where}",
                              hint="put it on one of the lab's networks")
        if h.role == "router" and len(h.addresses) < 2:
            raise ConfigError(f"router {h.name!r} is on one network only{where}",
                              hint="a router joins two or more networks")
        for net, _ in h.addresses:
            if net not in nets:
                raise ConfigError(f"host {h.name!r} is on network {net!r}, which is not declared{where}",
                                  hint="declare it under the top-level networks:")
    for n in topo.networks:
        if not 68 <= n.mtu <= 65535:
            raise ConfigError(f"network {n.name!r}: MTU {n.mtu} is out of range{where}",
                              hint="use an MTU from 68 to 65535")
        if n.subnet is not None:
            _subnet(n.subnet, n.name)
    placed = [n for n in topo.networks if n.subnet]
    for i, a in enumerate(placed):
        for b in placed[i + 1:]:
            if a.net.overlaps(b.net):
                raise ConfigError(f"networks {a.name!r} ({a.subnet}) and {b.name!r} ({b.subnet}) "
                                  f"overlap{where}", hint="give each network its own subnet")
    _check_addresses(topo, nets, where)


def _check_addresses(topo: Topology, nets: Mapping[str, Network], where: str) -> None:
    used: dict[tuple[str, str], str] = {}
    for h in topo.hosts:
        for net, ip in h.addresses:
            if ip is None:
                continue
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError:
                raise ConfigError(f"host {h.name!r}: {ip!r} is not an IPv4 address{where}") from None
            subnet = nets[net].subnet
            if subnet is None:
                continue  # placement moves it
            sn = ipaddress.IPv4Network(subnet)
            if addr not in sn or addr in (sn.network_address, sn.broadcast_address, sn.network_address + 1):
                raise ConfigError(
                    f"host {h.name!r}: address {ip} is not usable in {net!r} ({subnet}){where}",
                    hint=f"give an address inside {subnet}, not its first two or its broadcast "
                         "address (the bridge's gateway takes the first host address)")
            if (net, ip) in used:
                raise ConfigError(f"hosts {used[(net, ip)]!r} and {h.name!r} both have {ip} on "
                                  f"{net!r}{where}", hint="give each host its own address")
            used[(net, ip)] = h.name


def _subnet(text: str, name: str) -> ipaddress.IPv4Network:
    return lab_subnet(text, f"network {name!r}: ")


def lab_subnet(text: str, what: str = "") -> ipaddress.IPv4Network:
    """A subnet a lab network can use (a /29 or larger: network, gateway .1, the hosts from .5
    and broadcast), or a ConfigError saying why not (a topology's own addresses are checked
    against it later)."""
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as e:
        raise ConfigError(f"{what}subnet {text!r} is not valid: {e}",
                          hint="give an IPv4 network such as 192.168.34.0/24") from None
    if net.prefixlen > 29:
        raise ConfigError(f"{what}subnet {text} is too small for the lab",
                          hint="use a /29 or larger (the hosts take .5 and .6), such as "
                               "192.168.34.0/24")
    return net


def _free_address(net: ipaddress.IPv4Network, taken: set[int], name: str) -> str:
    for offset in range(FIRST_FREE_OFFSET, net.num_addresses - 1):
        candidate = int(net.network_address) + offset
        if candidate not in taken:
            taken.add(candidate)
            return str(ipaddress.IPv4Address(candidate))
    raise ConfigError(f"network {name!r} ({net}) has no free address left",
                      hint="give it a larger subnet")


def routes_env(rows: Iterable[tuple[str, str]]) -> str:
    """The routes as SOCKETLAB_ROUTES gives them to lab-host: "SUBNET via HOP;..."."""
    return ";".join(f"{subnet} via {hop}" for subnet, hop in rows)
