"""The CI user's path, end to end: the wheel built from this checkout, installed with
pytest-xdist into a new virtual environment outside it, builds its own lab image, runs `demo`,
and runs the example suite four labs at once. PyPI must be reachable (pip fetches the
dependencies); nothing is left on the engine afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugin.conftest import EXAMPLES

pytestmark = pytest.mark.integration
ROOT = EXAMPLES.parent


def run(argv: list, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, \
        f"{argv}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_outside_the_checkout_runs_demo_and_the_example_suite(
        tmp_path, docker_client, lab_image, kv_base):
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV", "PYTHON"))}
    tag = f"socketlab/lab:wheel-{os.getpid()}"  # built by the installed package, removed after
    prefix = f"socketlab-wheel-{os.getpid()}"  # every lab of this test: demo's and the suite's
    env.update(SOCKETLAB_IMAGE=tag, KV_BASE=kv_base, SOCKETLAB_PYTEST_PREFIX=prefix,
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    try:
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT], tmp_path, env)
        run([sys.executable, "-m", "venv", venv], tmp_path, env)
        wheel = next(dist.glob("socketlab-*.whl"))
        run([venv / "bin/pip", "install", "-q", wheel, "pytest-xdist"], tmp_path, env)
        shutil.copytree(EXAMPLES, work / "examples")

        version = run([venv / "bin/socketlab", "--version"], work, env).stdout
        assert version.startswith("socketlab ")
        built = run([venv / "bin/socketlab", "build"], work, env).stderr
        assert f"building {tag}" in built
        assert "/site-packages/socketlab/_assets/images/lab" in built  # not this checkout
        demo = run([venv / "bin/socketlab", "-p", f"{prefix}-demo", "demo",
                    "--subnet", "auto"], work, env).stdout
        assert "TCP is a byte stream" in demo
        assert "UDP keeps datagrams" in demo

        suite = run([venv / "bin/python", "-m", "pytest", "-n", "4", "-p", "no:cacheprovider"],
                    work / "examples", env, timeout=900)
        assert " 8 passed" in suite.stdout, suite.stdout[-3000:]
        left = [c.name for c in docker_client.containers.list(all=True, sparse=True)
                if any(prefix in name for name in c.attrs.get("Names", []))]
        left += [n.name for n in docker_client.networks.list() if prefix in n.name]
        assert left == []
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)
