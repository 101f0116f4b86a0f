"""LabConfig: the lab's settings (name, subnet, port, protocol, image, topology file),
validated before anything runs.

The same settings reach `docker-compose.yml` as SOCKETLAB_* environment variables, so a
plain `docker compose up` and `socketlab up` build the same topology. `topology` names another
compose file (socketlab.lab.topology reads it); the server and client addresses here are
the bundled file's variables, and for another file the ones it gives its server and client.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from socketlab.errors import ConfigError
from socketlab.lab.bounds import host_path, system_folder
from socketlab.lab.topology import lab_subnet

DEFAULT_SUBNET = "192.168.33.0/24"
AUTO = "auto"  # subnet="auto": a free one, chosen when the lab starts (socketlab.lab.subnets)
DEFAULT_PORT = 6666
DEFAULT_PROJECT = "socketlab"
DEFAULT_MOUNT = "/work"  # where --mount puts a folder in the hosts when no path is given
LAB_IMAGE = "socketlab/lab:latest"
SERVER_HOST_NUMBER = 5  # 192.168.33.5 in the post
CLIENT_HOST_NUMBER = 6
PROTOCOLS = ("tcp", "udp")
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class LabConfig:
    """Everything that tells one lab from another. Addresses default from the subnet."""

    project: str = DEFAULT_PROJECT
    subnet: str = DEFAULT_SUBNET
    server_ip: str = ""
    client_ip: str = ""
    port: int = DEFAULT_PORT
    proto: str = "tcp"
    image: str = LAB_IMAGE
    offloads: bool = False  # the hosts' segmentation/checksum offloads (off: textbook captures)
    topology: str = ""  # a compose file of the user's; "" is the bundled docker-compose.yml
    mounts: tuple[str, ...] = ()  # "LOCAL[:DEST]": a folder of this machine, read-only in every
    #                               host that runs the lab image (at DEST, default /work)
    unsealed: tuple[str, ...] = ()  # hosts `up --unsealed HOST` lets through the allowlist:
    #                                 the command line's loud opt-in, never the file's
    ttl: float = 0.0  # seconds the lab may live, after which any socketlab removes it (0: no limit)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mounts", tuple(self.mounts))
        object.__setattr__(self, "unsealed", tuple(self.unsealed))
        if not self.ttl >= 0:
            raise ConfigError(f"time to live {self.ttl!r} is negative",
                              hint="give seconds, e.g. 3600 (0: no limit)")
        self.folders()  # a bad mount is refused here
        if self.subnet == AUTO:
            self._validate_unresolved()
            return
        if self.topology:  # the file's own addresses rule (the topology checks them)
            _network(self.subnet)
            self._validate_names()
            for role, ip in (("server", self.server_ip), ("client", self.client_ip)):
                if ip:
                    _check_host_address(role, ip, None)
            return
        net = _network(self.subnet)
        if not self.server_ip:
            object.__setattr__(self, "server_ip", str(net.network_address + SERVER_HOST_NUMBER))
        if not self.client_ip:
            object.__setattr__(self, "client_ip", str(net.network_address + CLIENT_HOST_NUMBER))
        self._validate(net)

    def _validate(self, net: ipaddress.IPv4Network) -> None:
        self._validate_names()
        for role, ip in (("server", self.server_ip), ("client", self.client_ip)):
            _check_host_address(role, ip, net)
        if self.server_ip == self.client_ip:
            raise ConfigError(f"server and client both have the address {self.server_ip}",
                              hint="give them different addresses")

    def _validate_unresolved(self) -> None:
        if (self.server_ip or self.client_ip) and not self.topology:
            raise ConfigError("addresses cannot be given with subnet auto",
                              hint="give a subnet with them, or neither")
        self._validate_names()

    def _validate_names(self) -> None:
        if not _PROJECT_RE.match(self.project):
            raise ConfigError(
                f"project name {self.project!r} is not valid",
                hint="use lowercase letters, digits, '-' and '_', starting with a letter or digit",
            )
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range", hint="use a port from 1 to 65535")
        if self.proto not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.proto!r}", hint="use tcp or udp")

    def folders(self) -> tuple[tuple[str, str], ...]:
        """The mounts as (absolute folder here, path in the hosts)."""
        found = []
        for spec in self.mounts:
            local, _, dest = spec.partition(":")
            folder = Path(local).expanduser().resolve()
            if not folder.is_dir():
                raise ConfigError(f"mount {spec!r}: {local} is not a folder",
                                  hint="give a folder of this machine, e.g. --mount ./myprog:/work")
            if system_folder(str(folder)):
                raise ConfigError(f"mount {spec!r}: {folder} is {system_folder(str(folder))}",
                                  hint="mount a folder of your own, e.g. --mount ./myprog:/work")
            dest = dest or DEFAULT_MOUNT
            problem = host_path(dest)
            if problem:
                raise ConfigError(f"mount {spec!r}: {problem}",
                                  hint="give an absolute path such as /work")
            found.append((str(folder), dest))
        return tuple(found)

    @property
    def resolved(self) -> bool:
        """False while the subnet is still "auto" (no addresses yet)."""
        return self.subnet != AUTO

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> LabConfig:
        """Settings from SOCKETLAB_* variables (as compose reads them), then `overrides`."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "project": env.get("SOCKETLAB_PROJECT", DEFAULT_PROJECT),
            "subnet": env.get("SOCKETLAB_SUBNET", DEFAULT_SUBNET),
            "server_ip": env.get("SOCKETLAB_SERVER_IP", ""),
            "client_ip": env.get("SOCKETLAB_CLIENT_IP", ""),
            "port": _port(env.get("SOCKETLAB_PORT", str(DEFAULT_PORT))),
            "proto": env.get("SOCKETLAB_PROTO", "tcp"),
            "image": env.get("SOCKETLAB_IMAGE", LAB_IMAGE),
            "offloads": _on_off(env.get("SOCKETLAB_OFFLOADS", "off")),
            "topology": env.get("SOCKETLAB_TOPOLOGY", ""),
            "ttl": _seconds(env.get("SOCKETLAB_TTL", "0")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        # Right: values' keys are LabConfig's fields, each value of that field's type (parsed
        # above, or given by the caller under the field's name); mypy cannot follow **values.
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def isolated(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> LabConfig:
        """A lab of its own (what `Lab()` with no arguments starts): a project name no other
        lab has and a free subnet chosen as it starts, whatever SOCKETLAB_PROJECT/SUBNET say;
        the rest (image, port, offloads) from SOCKETLAB_* as usual, then `overrides`."""
        values: dict[str, object] = {"project": unique_project(), "subnet": AUTO,
                                     "server_ip": "", "client_ip": ""}
        return cls.from_env(environ, **{**values, **overrides})

    def with_(self, **changes: object) -> LabConfig:
        """A copy with some settings changed (addresses re-derived if the subnet changes)."""
        if "subnet" in changes:
            changes.setdefault("server_ip", "")
            changes.setdefault("client_ip", "")
        return replace(self, **changes)  # type: ignore[arg-type]  # as in from_env: fields by name

    def compose_env(self, mode: str = "idle") -> dict[str, str]:
        """The variables docker-compose.yml reads for this lab."""
        if not self.resolved:
            raise ConfigError("the lab's subnet is not chosen yet (auto)",
                              hint="start the lab first: Lab.up() picks a free subnet")
        return {
            "SOCKETLAB_MODE": mode,
            "SOCKETLAB_SUBNET": self.subnet,
            "SOCKETLAB_SERVER_IP": self.server_ip,
            "SOCKETLAB_CLIENT_IP": self.client_ip,
            "SOCKETLAB_PORT": str(self.port),
            "SOCKETLAB_PROTO": self.proto,
            "SOCKETLAB_IMAGE": self.image,
            "SOCKETLAB_OFFLOADS": "on" if self.offloads else "off",
        }


def unique_project(prefix: str = DEFAULT_PROJECT) -> str:
    """A compose project name no other lab on the engine has: this process and a random part."""
    import secrets  # here: only a lab of its own needs a name made up

    return f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"


def _network(subnet: str) -> ipaddress.IPv4Network:
    return lab_subnet(subnet)


def _check_host_address(role: str, ip: str, net: ipaddress.IPv4Network | None) -> None:
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        raise ConfigError(f"{role} address {ip!r} is not an IPv4 address",
                          hint=f"give an address inside {net}" if net else "give an IPv4 address") from None
    if net is None:
        return
    reserved = {net.network_address, net.broadcast_address, net.network_address + 1}
    if addr not in net or addr in reserved:
        raise ConfigError(
            f"{role} address {ip} is not usable in subnet {net}",
            hint=f"give an address inside {net}, not its first two or its broadcast address "
                 "(the bridge's gateway takes the first host address)",
        )


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise ConfigError(f"SOCKETLAB_OFFLOADS={text!r} is neither on nor off", hint="use on or off")
    return text == "on"


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"SOCKETLAB_TTL={text!r} is not a number of seconds",
                          hint="give seconds, e.g. 3600 (0: no limit)") from None


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"port {text!r} is not a number", hint="use a port from 1 to 65535") from None
