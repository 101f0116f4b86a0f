"""socketlab's pytest plugin, run the way a user runs it: a suite in a fresh folder (pytester),
real labs. A passing test keeps nothing; a failing one keeps its pcaps and ladders and names
them in the JUnit report and the terminal summary; workers in parallel never share a subnet;
nothing is left on the engine, also after SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.plugin.conftest import EXAMPLES

pytestmark = pytest.mark.integration

RECORD = '''
import json, os
def record(lab):
    with open(os.environ["SOCKETLAB_TEST_RECORD"], "a") as f:
        f.write(json.dumps({"project": lab.config.project, "subnet": lab.config.subnet}) + "\\n")
'''

PASSING_AND_FAILING = RECORD + '''
from socketlab import Options, run_pair

def test_passes(lab, capture, counters):
    record(lab)
    with capture(lab) as wire:
        run = run_pair(lab, Options(proto="tcp"))
    assert run.ok
    assert [h.established for h in wire.handshakes] == [True]
    assert counters(lab, "server")["Tcp.PassiveOpens"] >= 1

def test_fails_on_purpose(lab, fault, capture):
    record(lab)
    with fault(lab, "server", "drop tcp flags=SA nth=1") as f, capture(lab) as wire:
        run_pair(lab, Options(proto="tcp"))
    assert len(f.fired) == 1
    assert wire.count("tcp", flags="S") == 2
    assert wire.count("tcp", flags="S") == 3, "deliberately wrong"
'''


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def left_behind(docker_client, projects: list[str]) -> list[str]:
    from socketlab.lab.engine_compose import PROJECT_LABEL

    left = []
    for project in projects:
        flt = {"label": f"{PROJECT_LABEL}={project}"}
        left += [c.name for c in docker_client.containers.list(all=True, filters=flt, ignore_removed=True)]
        left += [n.name for n in docker_client.networks.list(filters=flt)]
    return left


@pytest.fixture
def record_file(pytester, monkeypatch) -> Path:
    path = pytester.path / "labs.jsonl"
    path.touch()
    monkeypatch.setenv("SOCKETLAB_TEST_RECORD", str(path))
    return path


def test_a_failing_test_keeps_its_pcaps_and_ladders_and_names_them(
        pytester, record_file, docker_client, lab_image):
    pytester.makepyfile(test_suite=PASSING_AND_FAILING)
    result = pytester.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)

    artifacts = pytester.path / "socketlab-artifacts"
    assert not list(artifacts.glob("*test_passes*"))  # a passing test keeps nothing
    kept = sorted(p for p in artifacts.rglob("*") if p.is_file())
    names = {p.name for p in kept}
    assert {"client.pcap", "server.pcap", "ladder.txt", "ladder.svg"} <= names
    assert all(p.stat().st_size > 0 for p in kept)
    ladder = next(p for p in kept if p.name == "ladder.txt" and "capture-1" in str(p))
    assert "[retx] SYN" in ladder.read_text()  # the SYN sent again after the dropped SYN-ACK

    case = ET.parse(pytester.path / "junit.xml").find(".//testcase[@name='test_fails_on_purpose']")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert {Path(v) for v in props.values()} == set(kept)
    assert all(name.startswith("socketlab ") for name in props)

    out = result.stdout.str()
    assert "socketlab: what crossed the wire in failing tests" in out
    assert str(ladder) in out
    assert "SYN,ACK" in out  # the ladder's text is in the summary
    assert left_behind(docker_client, [r["project"] for r in records(record_file)]) == []


PARALLEL = RECORD + '''
import os, time
import pytest
from socketlab import Options, run_pair

@pytest.mark.parametrize("n", range(3))
@pytest.mark.socketlab(record=False)
def test_a_lab_of_its_own(lab, n):
    record(lab)
    deadline = time.monotonic() + 120  # all three labs up at once, or this fails
    while len(open(os.environ["SOCKETLAB_TEST_RECORD"]).readlines()) < 3:
        assert time.monotonic() < deadline, "the other workers' labs never came up"
        time.sleep(0.2)
    assert run_pair(lab, Options(proto="udp", message=f"lab {n}")).ok
'''


def test_parallel_workers_get_labs_on_different_subnets(
        pytester, record_file, docker_client, lab_image):
    pytester.makepyfile(test_parallel=PARALLEL)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "3")
    result.assert_outcomes(passed=3)
    labs = records(record_file)
    assert len({lab["project"] for lab in labs}) == 3
    assert len({lab["subnet"] for lab in labs}) == 3
    assert "socketlab-artifacts" not in os.listdir(pytester.path)  # passing tests keep nothing
    assert left_behind(docker_client, [lab["project"] for lab in labs]) == []


SLOW = RECORD + '''
import time

def test_waits(lab):
    record(lab)
    time.sleep(120)
'''


def test_sigterm_in_the_middle_of_a_test_leaves_nothing(
        pytester, record_file, docker_client, lab_image):
    pytester.makepyfile(test_slow=SLOW)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
                            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not record_file.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert record_file.read_text(), proc.communicate()[0].decode()
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, out
    assert left_behind(docker_client, [r["project"] for r in records(record_file)]) == [], out


BROKEN_EXAMPLE = '''
import pytest

@pytest.mark.socketlab(topology="kv/compose.yml")
def test_get_returns_what_was_set(lab, kv):
    assert kv(lab, "set", "colour", "blue").stdout == "OK\\n"
    assert kv(lab, "get", "colour").stdout == "red\\n", "deliberately wrong"
'''


def test_a_failing_example_test_keeps_its_pcaps_and_ladder(
        pytester, monkeypatch, docker_client, lab_image, kv_base):
    """examples/ as a CI engineer copies it, plus one test that fails on purpose."""
    shutil.copytree(EXAMPLES, pytester.path, dirs_exist_ok=True)
    monkeypatch.setenv("KV_BASE", kv_base)
    pytester.makepyfile(test_broken=BROKEN_EXAMPLE)
    result = pytester.runpytest("-p", "no:cacheprovider", "test_broken.py", "--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    kept = sorted(p for p in (pytester.path / "socketlab-artifacts").rglob("*") if p.is_file())
    assert {p.name for p in kept} == {"client.pcap", "server.pcap", "ladder.txt", "ladder.svg"}
    ladder = next(p for p in kept if p.name == "ladder.txt").read_text()
    assert '"GET colour.' in ladder  # the request is on the wire, in the ladder
    case = ET.parse(pytester.path / "junit.xml").find(".//testcase")
    assert {Path(p.get("value")) for p in case.iter("property")} == set(kept)
    assert "socketlab: what crossed the wire in failing tests" in result.stdout.str()

