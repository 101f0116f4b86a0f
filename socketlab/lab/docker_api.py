"""The Docker SDK's client: one connection that has answered a ping, or a clear error.

Everything in socketlab that speaks to an engine through the SDK gets its client here; the
fast path (look-ups and exec in a running lab) speaks the Engine API itself (docker_http).
The SDK is imported on first use: it costs about 0.1-0.3 s (through `requests`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from socketlab.lab.docker_http import unavailable

if TYPE_CHECKING:
    import docker


def connect() -> docker.DockerClient:
    """A Docker client that has answered a ping, or DockerUnavailable saying why not."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException as e:
        raise unavailable(e) from None
