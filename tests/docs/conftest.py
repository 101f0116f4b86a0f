"""The documentation's examples run against a real engine: each page in a fresh copy of the
checkout, with a lab name, subnet and pytest prefix of its own (the environment does the
isolation; the commands stay as the page writes them)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.pages import ROOT

EXECUTED: list[tuple[str, int, int, float]] = []  # page, blocks run, commands run, seconds
# Each page's lab gets a /24 of its own: 192.168.(200 + the page's index).0/24, so pages run side
# by side (xdist) never pick the same one; what a page starts with `auto` (exercise start
# --jobs, the API's Lab()) takes from POOL, above them. The rest of the suite's `auto` labs take
# the lowest free /24 of 192.168.128.0/17, well below both.
FIRST_PAGE_NET = 200
POOL = "192.168.224.0/19"
_PLAIN_COMPOSE = "$ docker-compose "
_IGNORED = (".git", ".venv", "runs", "exercises", "__pycache__", "site", "socketlab-artifacts",
            ".pytest_cache", ".ruff_cache", ".mypy_cache", "*.egg-info", "dist")


# What the pages only read is linked, not copied: the lab's files then have the paths of the
# checkout the venv's socketlab belongs to (a running lab of topologies/router.yml is the one
# `experiment P1` finds, as for a reader in their own clone).
_LINKED = ("socketlab", "images", "topologies", "docker-compose.yml")


def fresh_checkout(work: Path) -> Path:
    """A copy of the checkout to run a page in: its outputs (runs/, exercises/, dist/ ...) land
    there, never in the checkout."""
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(*_LINKED, *_IGNORED), symlinks=True)
    for name in _LINKED:
        (work / name).symlink_to(ROOT / name)
    return work


def page_subnet(docker_client, index: int) -> ipaddress.IPv4Network:
    """The page's own /24, checked free now (a lab left by an earlier run would be named)."""
    from socketlab.lab.subnets import docker_subnets, host_routes

    subnet = ipaddress.IPv4Network(f"192.168.{FIRST_PAGE_NET + index}.0/24")
    taken = [n for n in [*docker_subnets(docker_client), *host_routes()] if n.overlaps(subnet)]
    assert not taken, f"{subnet}, this page's subnet, is in use ({taken}): a lab left behind?"
    return subnet


@pytest.fixture
def page_env(tmp_path, docker_client, lab_image, request):
    """A copy of the checkout to run a page in, and the environment that isolates it."""
    work = fresh_checkout(tmp_path / "checkout")
    index = request.node.callspec.indices["page"]
    tag = f"doc{os.getpid()}x{index}"
    subnet = page_subnet(docker_client, index)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "SOCKETLAB_", "COMPOSE_")) or k == "SOCKETLAB_IMAGE"}
    env.update(
        SOCKETLAB_PROJECT=tag, COMPOSE_PROJECT_NAME=tag, SOCKETLAB_PYTEST_PREFIX=f"{tag}-pytest",
        SOCKETLAB_SUBNET=str(subnet), SOCKETLAB_SUBNET_POOL=POOL,
        SOCKETLAB_VENV=str(Path(sys.executable).parents[1]),  # the checkout's own venv, not a new one
        DOCS_TEST_COPY=str(work),  # not socketlab's: where the page runs, for as_a_reader_sees_it
        COLUMNS="80", NO_COLOR="1", TERM="dumb", PYTHONDONTWRITEBYTECODE="1",
    )
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    if _PLAIN_COMPOSE in request.node.callspec.params["page"].read_text():
        # Plain Compose cannot derive the hosts' addresses from the subnet as socketlab does:
        # a page that runs it gets them too (elsewhere they would be settings asked for).
        env.update(SOCKETLAB_SERVER_IP=str(subnet[5]), SOCKETLAB_CLIENT_IP=str(subnet[6]))
    try:
        yield work, env
    finally:
        clean(tag, env, work, docker_client)


def clean(tag: str, env: dict, work: Path, docker_client) -> None:
    """Whatever a page left (it should have said `down` itself), removed, then checked."""
    subprocess.run([sys.executable, "-m", "socketlab", "down"], cwd=work, env=env,
                   capture_output=True, timeout=120)
    label = f"com.docker.compose.project={tag}"
    left = [c.name for c in docker_client.containers.list(all=True, filters={"label": label})]
    left += [n.name for n in docker_client.networks.list(filters={"label": label})]
    assert not left, f"the page left these behind: {left}"


def pytest_terminal_summary(terminalreporter):
    if EXECUTED:
        blocks = sum(b for _, b, _, _ in EXECUTED)
        cmds = sum(c for _, _, c, _ in EXECUTED)
        secs = sum(s for *_, s in EXECUTED)
        terminalreporter.write_sep("=", "socketlab docs: the examples run")
        for page, b, c, s in EXECUTED:
            terminalreporter.write_line(f"{page}: {b} blocks, {c} commands, {s:.1f} s")
        terminalreporter.write_line(f"in all: {blocks} blocks ({cmds} commands) in {len(EXECUTED)} "
                                    f"pages, {secs:.0f} s")
