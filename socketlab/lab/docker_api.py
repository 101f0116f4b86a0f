"""The Docker engine's client: one connection that has answered a ping, or a clear error.

Everything in socketlab that speaks to an engine gets its client here.
"""

from __future__ import annotations

import docker
import docker.errors

from socketlab.errors import DockerUnavailable


def connect() -> docker.DockerClient:
    """A Docker client that has answered a ping, or DockerUnavailable saying why not."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException as e:
        raise _unavailable(e) from None


def _unavailable(e: Exception) -> DockerUnavailable:
    text = str(e)
    if "Permission denied" in text or "PermissionError" in text:
        return DockerUnavailable(
            "no permission to use the Docker engine's socket",
            hint="add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in "
                 "again) or run as root",
        )
    if "FileNotFoundError" in text or "No such file" in text or "Connection refused" in text:
        return DockerUnavailable("the Docker engine is not running (nothing answers on its socket)")
    return DockerUnavailable(f"cannot reach the Docker engine: {text}")
