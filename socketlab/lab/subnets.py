"""Free subnets: a lab's bridge on an address range no other Docker network (nor this host's
own routes) uses, chosen so that labs started at the same moment never pick the same one.

    with claim_subnet(client) as subnet:    # "192.168.131.0/24", held until the block ends
        Lab(LabConfig(project=..., subnet=subnet), client=client).up()

The choice is made under a lock file shared by every process on this machine (pytest-xdist
workers, parallel CI jobs), held until the caller has created its network; a lab on another
machine sharing the engine can still race, and then fails with "Pool overlaps", which the
caller may retry. Only 192.168.x addresses are chosen: the post's own range.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from socketlab.errors import ConfigError

DEFAULT_POOL = "192.168.128.0/17"  # 128 /24s, clear of the post's 192.168.33.0/24 and home LANs
LOCK_FILE = Path(tempfile.gettempdir()) / "socketlab-subnets.lock"


def docker_subnets(client) -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet the engine's networks hold."""
    found = []
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError):
                found.append(ipaddress.IPv4Network(cfg.get("Subnet", ""), strict=False))
    return found


def host_routes(route_file: str = "/proc/net/route") -> list[ipaddress.IPv4Network]:
    """This machine's own IPv4 routes (a bridge on one of them would cut the host off it);
    the default route is left out."""
    routes = []
    with contextlib.suppress(OSError):
        for line in Path(route_file).read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) < 8 or fields[1] == "00000000":
                continue
            dest = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
            mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
            with contextlib.suppress(ValueError):
                routes.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return routes


def pick(taken: Iterable[ipaddress.IPv4Network], pool: str = DEFAULT_POOL,
         prefix: int = 24) -> str:
    """The first /prefix of `pool` that overlaps nothing in `taken` (pure)."""
    return pick_many(taken, 1, pool, prefix)[0]


def pick_many(taken: Iterable[ipaddress.IPv4Network], count: int, pool: str = DEFAULT_POOL,
              prefix: int = 24) -> list[str]:
    """The first `count` /prefix of `pool` that overlap nothing in `taken` (pure)."""
    taken, found = list(taken), []
    for candidate in ipaddress.IPv4Network(pool).subnets(new_prefix=prefix):
        if not any(candidate.overlaps(t) for t in taken):
            found.append(str(candidate))
            if len(found) == count:
                return found
    raise ConfigError(f"no {count} free /{prefix} left in {pool}" if count > 1
                      else f"no free /{prefix} left in {pool}",
                      hint="remove old labs (`socketlab down --all`) or set SOCKETLAB_SUBNET_POOL")


@contextlib.contextmanager
def claim_subnet(client, *, prefix: int = 24, pool: str | None = None,
                 lock_file: Path = LOCK_FILE) -> Iterator[str]:
    """A free subnet, held under the machine-wide lock until the block ends (create the
    lab's network inside it)."""
    with claim_subnets(client, 1, prefix=prefix, pool=pool, lock_file=lock_file) as subnets:
        yield subnets[0]


@contextlib.contextmanager
def claim_subnets(taken, count: int, *, prefix: int = 24, pool: str | None = None,
                  lock_file: Path = LOCK_FILE) -> Iterator[list[str]]:
    """`count` free subnets (one per network of the lab), held as claim_subnet holds one.
    taken: a Docker client, or a function giving the subnets in use (asked under the lock)."""
    pool = pool or os.environ.get("SOCKETLAB_SUBNET_POOL") or DEFAULT_POOL
    with open(lock_file, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            used = taken() if callable(taken) else docker_subnets(taken)
            yield pick_many([*used, *host_routes()], count, pool, prefix)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
