"""A CI engineer's path: the wheel built from the checkout, installed in a fresh virtual
environment outside it, their own service in an image of its own (the kv example), the plugin
with four labs at once, and a failing test's pcaps and ladders kept and named (terminal, JUnit).
The wheel-and-demo part is tests/plugin/test_wheel.py's; this journey goes on to the failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.journeys.conftest import ROOT

pytestmark = pytest.mark.integration

# A test whose author expected no retry: the fault makes the client retry once, so it fails,
# and what crossed the wire must be kept to show why.
FAILING = '''
import pytest

@pytest.mark.socketlab(topology="kv/compose.yml")
def test_expects_no_retry(lab, kv, fault):
    with fault(lab, "server", "drop tcp flags=SA nth=1"):
        done = kv(lab, "set", "colour", "blue")
    assert done.stdout.splitlines() == ["OK"]
'''


def step(argv: list, cwd, env, timeout: float = 900, code: int | None = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if code is not None:
        assert done.returncode == code, \
            f"{argv}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-3000:]}"
    return done


def test_ci_engineer_wheel_own_image_xdist_and_a_failures_artifacts(journey, docker_client, kv_base):
    env = dict(journey.env, KV_BASE=kv_base, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("SOCKETLAB_SUBNET")  # the plugin's labs choose free subnets themselves
    dist, venv, work = journey.cwd / "dist", journey.cwd / "venv", journey.cwd / "work"
    step([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, ROOT], journey.cwd, env)
    step([sys.executable, "-m", "venv", venv], journey.cwd, env)
    wheel = next(dist.glob("socketlab-*.whl"))
    step([venv / "bin/pip", "install", "-q", wheel, "pytest-xdist"], journey.cwd, env)
    shutil.copytree(ROOT / "examples", work, ignore=shutil.ignore_patterns("__pycache__", "own-programs"))
    (work / "test_expects_no_retry.py").write_text(FAILING)

    where = step([venv / "bin/python", "-c", "import socketlab; print(socketlab.__file__)"], work, env)
    assert str(ROOT) not in where.stdout  # the installed wheel, not this checkout

    suite = step([venv / "bin/python", "-m", "pytest", "-n", "4", "-p", "no:cacheprovider",
                  "--junitxml=junit.xml"], work, env, code=1)
    out = suite.stdout
    examples = sum(Path(f).read_text().count("\ndef test_") for f in (ROOT / "examples").glob("test_*.py"))
    assert f"1 failed, {examples} passed" in out, out[-3000:]  # the example suite whole, ours failed
    assert "socketlab: what crossed the wire in failing tests" in out
    kept = sorted(p.name for p in (work / "socketlab-artifacts").rglob("*") if p.is_file())
    for wanted in ("client.pcap", "server.pcap"):
        assert wanted in kept, kept
    for suffix in (".svg", ".txt"):  # the ladder, drawn and as text
        assert any(name.endswith(suffix) for name in kept), kept
    ladders = "".join(p.read_text() for p in (work / "socketlab-artifacts").rglob("*.txt"))
    assert "SYN,ACK" in ladders, ladders[-2000:]  # what crossed the wire, drawn
    failed = [case for case in ET.parse(work / "junit.xml").getroot().iter("testcase")
              if case.find("failure") is not None]
    assert [case.get("name") for case in failed] == ["test_expects_no_retry"]
    props = [p.get("name") for p in failed[0].iter("property")]
    assert any(name.startswith("socketlab") for name in props), props
    prefix = env["SOCKETLAB_PYTEST_PREFIX"]
    left = [c.name for c in docker_client.containers.list(all=True) if prefix in c.name]
    left += [n.name for n in docker_client.networks.list() if prefix in n.name]
    assert left == [], left
