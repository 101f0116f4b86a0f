"""Shared fixtures. Integration tests get a real lab; without Docker they skip, or fail
when SOCKETLAB_REQUIRE_DOCKER=1 (CI), so CI never goes green by skipping."""

from __future__ import annotations

import os

import pytest


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
        from socketlab.lab.lab import LAB_LABEL, PROJECT_LABEL

        client = connect()
    except Exception:  # noqa: BLE001  (no Docker: the integration tests said so already)
        return
    prefix = project_name()
    # sparse: no inspect per container, which fails on one that someone else removes meanwhile
    found = client.containers.list(all=True, sparse=True, filters={"label": LAB_LABEL})
    left = [f"container {c.attrs['Names'][0]}" for c in found
            if (c.attrs.get("Labels") or {}).get(PROJECT_LABEL, "").startswith(prefix)]
    left += [f"network {n.name}" for n in client.networks.list(filters={"label": LAB_LABEL})
             if (n.attrs.get("Labels") or {}).get(PROJECT_LABEL, "").startswith(prefix)]
    assert not left, f"the tests left these behind: {left}"
