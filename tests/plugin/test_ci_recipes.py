"""The CI recipes (ci/github-actions.yml, ci/gitlab-ci.yml) as a team pastes them: both run the
same shell commands, and those commands run here, in a fresh folder with a fresh virtual
environment (what setup-python gives), against this engine: socketlab installed from the wheel
of this checkout, the lab image built then saved for the cache, stale labs reaped, the redis
example suite run under `-n 4`, JUnit written, nothing left. What cannot run here: GitHub's
actions (checkout, cache, upload) and GitLab's Docker-in-Docker service (no registry to pull
docker:dind from); their settings are checked as written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

from tests.plugin.conftest import EXAMPLES

pytestmark = pytest.mark.integration
ROOT = EXAMPLES.parent
RECIPES = ROOT / "ci"


def github() -> dict:
    return yaml.safe_load((RECIPES / "github-actions.yml").read_text())["jobs"]["socketlab"]


def gitlab() -> dict:
    return yaml.safe_load((RECIPES / "gitlab-ci.yml").read_text())["network-tests"]


def commands(lines: list[str]) -> list[str]:
    """Shell lines, one command each, comments and blank lines left out."""
    out = []
    for block in lines:
        for line in block.splitlines():
            line = line.split("  # ")[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def test_both_recipes_run_the_same_commands_and_keep_the_artifacts_on_failure():
    gh, gl = github(), gitlab()
    gh_lines = commands([s["run"] for s in gh["steps"] if "run" in s])
    assert gh_lines == commands(gl["script"])
    upload = next(s for s in gh["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["if"] == "failure()"
    assert upload["with"]["path"].split() == ["junit.xml", "socketlab-artifacts/"]
    assert gl["artifacts"]["when"] == "on_failure"
    assert gl["artifacts"]["paths"] == ["junit.xml", "socketlab-artifacts/"]
    cached = next(s for s in gh["steps"] if "cache" in s.get("uses", ""))["with"]["path"]
    assert cached == ".socketlab-cache"
    assert gl["cache"]["paths"] == [".socketlab-cache/"]
    assert gh["env"]["CI"] == gl["variables"]["CI"] == "true"


def test_the_recipes_commands_run_here(tmp_path, docker_client, lab_image):
    work, venv, dist = tmp_path / "work", tmp_path / "venv", tmp_path / "dist"
    tests = work / "tests"  # the team's own tests: the redis example
    tests.mkdir(parents=True)
    for name in ("conftest.py", "pytest.ini", "test_redis.py"):
        shutil.copy(EXAMPLES / name, tests / name)
    shutil.copytree(EXAMPLES / "redis", tests / "redis")
    tag, prefix = f"socketlab/lab:recipe-{os.getpid()}", f"socketlab-recipe-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV"))}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                    str(ROOT)], check=True, env=env, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env.update({k: str(v) for k, v in github()["env"].items()})
    env.update(SOCKETLAB_SPEC=str(next(dist.glob("socketlab-*.whl"))), SOCKETLAB_IMAGE=tag,
               SOCKETLAB_PYTEST_PREFIX=prefix, PATH=f"{venv}/bin:{env['PATH']}",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    script = "set -euo pipefail\n" + "\n".join(commands(gitlab()["script"]))
    try:
        done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True,
                              text=True, timeout=1500)
        assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        assert (work / ".socketlab-cache" / "lab.tar").stat().st_size > 50e6  # the image, saved
        suite = ET.parse(work / "junit.xml").getroot().find("testsuite")
        assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "0", "0")
        assert not (work / "socketlab-artifacts").exists()  # nothing failed: nothing kept
        left = [c.name for c in docker_client.containers.list(all=True, ignore_removed=True)
                if c.name.startswith(prefix)]
        left += [n.name for n in docker_client.networks.list() if n.name.startswith(prefix)]
        assert left == []
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)
