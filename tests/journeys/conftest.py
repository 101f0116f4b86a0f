"""The paths users take, through the CLI as subprocesses on a real engine, each from nothing to
clean-up. A journey gets a name, a pytest prefix and free subnets of its own (the environment
does the isolation), runs in a folder of its own, and ends by checking the engine holds nothing
of it, whatever happened."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.plugin.conftest import kv_base  # noqa: F401  (the CI journey's image base: a fixture)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Journey:
    """One user's session: `run("up")` is `socketlab up` typed in their folder."""

    project: str
    cwd: Path
    env: dict[str, str]
    said: list[str] = field(default_factory=list)  # every command and its output, for failures

    def run(self, *argv: str, code: int | None = 0, timeout: float = 600,
            stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "socketlab", *argv], cwd=self.cwd,
                              env=self.env, input=stdin, capture_output=True, text=True,
                              timeout=timeout, stdin=None if stdin is not None else subprocess.DEVNULL)
        self.said.append(f"$ socketlab {' '.join(argv)}  (exit {done.returncode})\n"
                         f"{done.stdout[-4000:]}{done.stderr[-4000:]}")
        if code is not None:
            assert done.returncode == code, "\n".join(self.said[-3:])
        return done


def leftovers(docker_client, project: str) -> list[str]:
    label = f"com.docker.compose.project={project}"
    left = [c.name for c in docker_client.containers.list(all=True, filters={"label": label})]
    left += [n.name for n in docker_client.networks.list(filters={"label": label})]
    return left


@pytest.fixture
def journey(request, tmp_path, docker_client, lab_image):
    name = request.node.name.removeprefix("test_").split("_")[0]
    project = f"journey{os.getpid()}-{name}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "SOCKETLAB_", "COMPOSE_")) or k == "SOCKETLAB_IMAGE"}
    env.update(SOCKETLAB_PROJECT=project, SOCKETLAB_SUBNET="auto",
               SOCKETLAB_PYTEST_PREFIX=f"{project}-pytest", COLUMNS="100", NO_COLOR="1")
    user = Journey(project, tmp_path, env)
    try:
        yield user
    finally:
        user.run("down", code=None, timeout=120)
        left = leftovers(docker_client, project)
        assert not left, f"the journey left these behind: {left}"
