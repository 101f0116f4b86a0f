"""A scratch host: one container of the lab image with no network at all, to ask the image and
the kernel something when no lab runs (`socketlab doctor` asks lab-shape which backend serves
which parameter). Made, used, removed:

    with scratch_host("socketlab/lab:latest", project="doctor") as host:
        host.exec(["lab-shape", "backends"])     # an ExecResult, as Lab.exec gives

It has no network (`--network none`: whatever runs there touches its own loopback only), NET_ADMIN
for lab-shape's probes, and the lab's labels (project `<project>`, service `scratch`), so `ls`
shows it while it exists and `down` removes it if this process could not. It also ends by itself:
its only process sleeps `budget` seconds, then the container is gone (auto-remove).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from socketlab.errors import ImageError
from socketlab.lab import signals
from socketlab.lab.composefile import LAB_LABEL
from socketlab.lab.containers import SERVICE_LABEL, remove_container, sdk_errors
from socketlab.lab.docker_api import connect
from socketlab.lab.docker_http import DockerHTTP
from socketlab.lab.engine_compose import PROJECT_LABEL
from socketlab.lab.process import ExecResult, bounded

if TYPE_CHECKING:
    import docker

SERVICE = "scratch"


class ScratchHost:
    """A running scratch container: exec into it as into a lab's host (same Engine API path)."""

    def __init__(self, container_id: str, http: DockerHTTP) -> None:
        self.id, self._http = container_id, http

    def exec(self, argv: Sequence[str], *, timeout: float | None = 60) -> ExecResult:
        start = time.monotonic()
        code, out, err = self._http.exec_run(self.id, bounded(argv, timeout))
        return ExecResult(code, out.decode(errors="replace"), err.decode(errors="replace"),
                          time.monotonic() - start)


@contextmanager
def scratch_host(image: str, *, project: str, budget: float = 120,
                 client: docker.DockerClient | None = None) -> Iterator[ScratchHost]:
    """A scratch container of `image` for the block, removed on the way out (also on a signal:
    its creation and removal run whole). ImageError if the image is missing."""
    client = client or connect()
    try:
        client.images.get(image)
    except sdk_errors().ImageNotFound:
        raise ImageError(f"the lab image {image} is missing") from None
    container = None
    try:
        with signals.deferred():  # made whole: a signal here is raised once it exists, then removed
            container = client.containers.run(
                image, ["sleep", f"{budget:g}"], detach=True, auto_remove=True, init=True,
                network_mode="none", cap_add=["NET_ADMIN"], mem_limit="512m", memswap_limit="512m",
                pids_limit=256, security_opt=["no-new-privileges"],
                labels={LAB_LABEL: "1", PROJECT_LABEL: project, SERVICE_LABEL: SERVICE})
        yield ScratchHost(container.id or "", DockerHTTP.from_env())
    finally:
        if container is not None:
            with signals.deferred():
                remove_container(container)
