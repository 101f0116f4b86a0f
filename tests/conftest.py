"""Shared fixtures. Integration tests get a real lab; without Docker they skip, or fail
when SOCKETLAB_REQUIRE_DOCKER=1 (CI), so CI never goes green by skipping."""

from __future__ import annotations

import os

import pytest

# pytester, for the plugin's own tests (tests/plugin): pytest takes `pytest_plugins` only from
# the top-level conftest, so a whole-suite run collects tests/plugin too.
pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def docker_client():
    from socketlab.pytest_plugin import docker_or_skip

    return docker_or_skip()


@pytest.fixture(scope="session")
def lab_image(docker_client):
    """The lab image, built from this checkout (no-op when it already is)."""
    from socketlab.lab.assets import IMAGE_CONTEXT
    from socketlab.lab.config import LabConfig
    from socketlab.lab.images import ensure_lab_image

    return ensure_lab_image(docker_client, LabConfig.from_env().image, IMAGE_CONTEXT,
                            lambda _msg: None)


def project_name(suffix: str = "") -> str:
    return f"socketlab-test-{os.getpid()}{suffix}"


def lab_config(suffix: str = "", **settings):
    """A test lab's settings: its own project name, a free subnet (chosen as it starts), and
    the image SOCKETLAB_IMAGE names (so test runs of several checkouts can run at once)."""
    from socketlab.lab.config import LabConfig

    settings.setdefault("image", LabConfig.from_env().image)
    return LabConfig(project=project_name(suffix), subnet="auto", **settings)


@pytest.fixture(scope="module")
def lab(request, docker_client, lab_image):
    """One lab per test module: up once, always down at the end; on a free subnet, so
    test runs (and other labs) side by side never clash."""
    from socketlab.lab.lab import Lab

    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    with Lab(lab_config(f"-{name}"), client=docker_client) as lab:
        yield lab


@pytest.fixture(scope="session")
def swarm(docker_client, lab_image):
    """A two-node swarm for the swarm tests: the sandbox SOCKETLAB_SANDBOX names (default
    slswarm) when it is up (CI brings it up first), else one of this session's own, removed
    at the end. Either way the lab image of this checkout is on both nodes."""
    from socketlab.errors import SwarmError
    from socketlab.lab.config import LabConfig
    from socketlab.lab.sandbox import Sandbox, find
    from socketlab.lab.swarm import Swarm

    image = LabConfig.from_env().image
    try:
        state = find()
        own = None
    except SwarmError:
        own = Sandbox(f"slt{os.getpid() % 10_000_000}")
    try:
        state = (own or Sandbox(state.name)).up([image], source=docker_client)
        swarm = Swarm([n.url for n in state.nodes], source=f"sandbox {state.name!r}")
        yield swarm
        left = [f"{what} on {node}" for node, client in swarm.clients().items()
                for what in _test_leftovers(client)]
        assert not left, f"the swarm tests left these behind: {left}"
    finally:
        if own is not None:
            own.down()


def _test_leftovers(client) -> list[str]:
    """Containers and networks of this session's test labs on one engine."""
    from socketlab.lab.composefile import LAB_LABEL
    from socketlab.lab.engine_compose import PROJECT_LABEL

    prefix = project_name()
    flt = {"label": LAB_LABEL}
    # sparse: no inspect per container, which fails on one that someone else removes meanwhile
    found = client.containers.list(all=True, sparse=True, filters=flt)
    return ([f"container {c.attrs['Names'][0]}" for c in found
             if (c.attrs.get("Labels") or {}).get(PROJECT_LABEL, "").startswith(prefix)]
            + [f"network {n.name}" for n in client.networks.list(filters=flt)
               if (n.attrs.get("Labels") or {}).get(PROJECT_LABEL, "").startswith(prefix)])


@pytest.fixture(scope="module")
def swarm_lab(request, swarm):
    """One lab on the swarm per test module: server on n1, client on n2."""
    from socketlab.lab.swarm_lab import SwarmLab

    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    with SwarmLab(lab_config(f"-{name}"), swarm=swarm, place={"server": "n1", "client": "n2"}) as lab:
        yield lab


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One folder for a test module's experiment runs."""
    return tmp_path_factory.mktemp("runs")


def assert_artifacts(result) -> None:
    """An experiment's files exist and are not empty."""
    from pathlib import Path

    assert result.evidence.artifacts
    for path in result.evidence.artifacts.values():
        assert Path(path).stat().st_size > 0, path


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind_by_the_session():
    """After every test: no container or network of any test lab is left on the engine."""
    yield
    try:
        from socketlab.lab.docker_api import connect

        client = connect()
    except Exception:  # noqa: BLE001  (no Docker: the integration tests said so already)
        return
    left = _test_leftovers(client)
    assert not left, f"the tests left these behind: {left}"
