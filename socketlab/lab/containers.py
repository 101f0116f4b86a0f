"""Docker's containers as the compose engine uses them: a host read from the engine's list,
a container's address and environment, archives in and out, removal, every lab removed.
(Moved out of engine_compose so that module shows the engine; the swarm engine uses these too.)
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from socketlab.lab.composefile import (
    INSTRUMENTS_LABEL,
    LAB_LABEL,
    NETWORKS_LABEL,
    ROLE_LABEL,
    SIDECAR_LABEL,
    UNSEALED_LABEL,
)
from socketlab.lab.topology import INLINE, Host, Network

if TYPE_CHECKING:
    import tarfile

    import docker

SERVICE_LABEL = "com.docker.compose.service"


def running_host(container: Mapping, networks: Mapping[str, Network]) -> Host:
    """A host as the engine's container list shows it."""
    by_name = {}
    for settings in container["NetworkSettings"]["Networks"].values():
        net = networks.get(settings.get("NetworkID"))
        if net is not None:
            by_name[net.name] = settings.get("IPAddress") or \
                (settings.get("IPAMConfig") or {}).get("IPv4Address")
    labels = container["Labels"]
    order = [n for n in labels.get(NETWORKS_LABEL, "").split(",") if n in by_name]
    order += [n for n in by_name if n not in order]
    return Host(labels.get(SERVICE_LABEL, container["Names"][0].lstrip("/")),
                tuple((n, by_name[n]) for n in order), container["Image"],
                labels.get(ROLE_LABEL, "host"), labels.get(INSTRUMENTS_LABEL, INLINE),
                unsealed=labels.get(UNSEALED_LABEL) == "1")


def configured_address(attrs: Mapping) -> str:
    """A container's address on its first network: the one it has, else the one it is given."""
    order = (attrs.get("Config", {}).get("Labels") or {}).get(NETWORKS_LABEL, "").split(",")
    nets = attrs["NetworkSettings"]["Networks"]
    first = sorted(nets.items(), key=lambda kv: next(
        (i for i, n in enumerate(order) if n and kv[0].endswith("_" + n)), len(order)))
    for _name, settings in first:
        given = (settings.get("IPAMConfig") or {}).get("IPv4Address")
        if settings.get("IPAddress") or given:
            return str(settings.get("IPAddress") or given)
    return "-"


def container_env(config: Mapping) -> dict[str, str]:
    """A container's environment, from its inspected Config."""
    return dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)


def archive_of(src: Path, dest: str) -> bytes:
    """A file or a folder of this machine as a tar whose one path is `dest` (owned by root,
    modes kept), for Docker's archive API."""
    import tarfile  # here, as in extract_file: a command that copies nothing never loads it

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        tar.add(str(src), arcname=dest.strip("/"), filter=_owned_by_root)
    return data.getvalue()


def extract_file(stream: Iterable[bytes], dest: Path) -> bool:
    """The one file of Docker's archive stream written to `dest`; False if it held none."""
    import tarfile

    with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(stream)), mode="r|") as tar:
        member = next(iter(tar), None)
        data = tar.extractfile(member) if member is not None else None
        if data is None:
            return False
        with open(dest, "wb") as out:
            while chunk := data.read(1 << 20):
                out.write(chunk)
    return True


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (the Docker SDK's archive stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # buf: a writable buffer (memoryview, bytearray)
        while not self._rest:
            self._rest = next(self._chunks, b"")
            if not self._rest:
                return 0
        n = min(len(buf), len(self._rest))
        buf[:n], self._rest = self._rest[:n], self._rest[n:]
        return n


T = TypeVar("T")


def in_parallel(action: Callable[[T], object], items: Iterable[T]) -> None:
    """Apply `action` to every item at once (threads: the work is waiting on the engine)."""
    from concurrent.futures import ThreadPoolExecutor  # here: a run on a running lab needs none

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(action, item) for item in items]:
            future.result()


def sdk_errors():
    """The Docker SDK's errors, imported with the SDK (never on the fast path)."""
    import docker.errors

    return docker.errors


def remove_container(container) -> None:
    try:
        container.remove(force=True)
    except sdk_errors().NotFound:
        pass
    except sdk_errors().APIError as e:
        if e.status_code != 409:  # 409: another `down` is removing it already
            raise


def settled(look: Callable[[], list[str]], timeout: float = 10.0) -> list[str]:
    """What `look` still finds once removals by others (a parallel `down`) have finished."""
    deadline = time.monotonic() + timeout
    while (left := look()) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the engine for removals in progress
    return left


def remove_all_labs(client: docker.DockerClient) -> list[str]:
    """Every container and network that any socketlab lab left behind (by label)."""
    removed = []
    found = client.containers.list(all=True, filters={"label": LAB_LABEL}, ignore_removed=True)
    sidecars = [c for c in found if SIDECAR_LABEL in c.labels]
    for container in sidecars + [c for c in found if c not in sidecars]:
        remove_container(container)
        removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": LAB_LABEL}):
        with contextlib.suppress(sdk_errors().NotFound):
            network.remove()
        removed.append(f"network {network.name}")
    return removed

