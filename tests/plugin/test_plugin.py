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


UDP_FAULT = '''
from pathlib import Path

SEND = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "[s.sendto(b'ping' + bytes([48 + i]), (sys.argv[1], 5353)) for i in range(2)]")

def test_a_dropped_datagram_is_drawn_lost(lab, capture, fault):
    with capture(lab) as wire, fault(lab, "client", "drop udp dport=5353 nth=1") as f:
        lab.exec("client", ["python3", "-c", SEND, lab.config.server_ip])
    assert len(f.fired) == 1
    assert [d["proto"] for d in wire.fired("drop")] == ["udp"]
    assert wire["server"].count("udp", dport=5353) == 1   # the second datagram arrived
    ladder = Path(wire.files["ladder (text)"]).read_text()
    drawn = [line for line in ladder.splitlines() if "UDP len=5" in line]
    assert len(drawn) == 2, ladder
    assert sum("X" in line for line in drawn) == 1, ladder   # the first one, lost
'''


def test_a_udp_drop_fault_inside_a_capture_is_drawn_on_the_ladder(
        pytester, docker_client, lab_image):
    """Issue 18: this crashed in the ladder (int(None) on the logged datagram's seq), in the
    test's call and again in the whole-test recording's teardown."""
    pytester.makepyfile(test_udp_fault=UDP_FAULT)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.fixture
def not_ours(docker_client):
    """Two lab-labelled networks the reaper must leave alone: one without owner labels (an older
    socketlab's, or made by hand), one owned by a process on another machine. Removed after."""
    import docker.types

    from socketlab.lab.composefile import LAB_LABEL
    from socketlab.lab.engine_compose import PROJECT_LABEL
    from socketlab.lab.owner import Owner
    from socketlab.lab.subnets import claim_subnets

    elsewhere = Owner("another-machine", "its-boot", 1, "1").labels()
    names = {f"socketlab-test-{os.getpid()}-{kind}": labels
             for kind, labels in (("ownerless", {}), ("elsewhere", elsewhere))}
    made = []
    try:
        with claim_subnets(docker_client, len(names)) as subnets:
            for (name, labels), subnet in zip(names.items(), subnets, strict=True):
                ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
                made.append(docker_client.networks.create(
                    name, internal=True, ipam=ipam,
                    labels={LAB_LABEL: "1", PROJECT_LABEL: name, **labels}))
        yield list(names)
    finally:
        for network in made:
            network.remove()


def test_a_killed_runs_lab_is_removed_by_the_next_run_and_named(
        pytester, record_file, docker_client, lab_image, not_ours):
    """SIGKILL (a runner's hard cancel, an OOM kill) leaves the run's lab behind; the next run
    removes it and says so. A live owner's lab (this test's own), a lab without owner labels
    and another machine's are left alone."""
    from socketlab.lab.lab import Lab
    from tests.conftest import lab_config

    pytester.makepyfile(test_slow=SLOW)
    with Lab(lab_config("-live-owner"), client=docker_client) as live:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                                 "test_slow.py"], cwd=pytester.path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not record_file.read_text() and time.monotonic() < deadline \
                    and proc.poll() is None:
                time.sleep(0.2)
            assert record_file.read_text(), "the run's lab never came up"
        finally:
            proc.kill()
            proc.wait()
        killed = records(record_file)[0]["project"]
        assert left_behind(docker_client, [killed])  # SIGKILL: nothing could clean up

        pytester.makepyfile(test_next="def test_nothing():\n    pass\n")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_next.py")
        result.assert_outcomes(passed=1)
        out = result.stdout.str()
        assert f"socketlab: removed stale lab '{killed}' (its owner, process {proc.pid} on " in out
        assert left_behind(docker_client, [killed]) == []
        assert live.leftovers(), "the live owner's lab was touched"
        assert len(left_behind(docker_client, not_ours)) == 2
        assert not any(name in out for name in [live.config.project, *not_ours])


MANY = RECORD + '''
import time
import pytest

@pytest.mark.parametrize("n", range(8))
def test_a_lab_a_while(lab, n):
    record(lab)
    time.sleep(2)
'''
TERM_ROUNDS = int(os.environ.get("SOCKETLAB_TEST_ROUNDS", "4"))  # bounded: one run each, signalled once
TERM_SEED = int(os.environ.get("SOCKETLAB_TEST_SEED", "18"))


def test_sigterm_to_the_main_process_alone_under_xdist_leaves_nothing(
        pytester, record_file, docker_client, lab_image):
    """How CI runners cancel: SIGTERM to pytest's main process only, at a random moment, while
    four workers start, run and remove labs. The workers end their tests and remove their labs
    (the main process passes the signal on and waits for them); nothing is left, nor made later."""
    import random

    from socketlab.lab.composefile import LAB_LABEL
    from socketlab.lab.engine_compose import PROJECT_LABEL

    def ours(prefix: str) -> list[str]:
        flt = {"label": LAB_LABEL}
        found = [(c.labels.get(PROJECT_LABEL, ""), f"container {c.name}")
                 for c in docker_client.containers.list(all=True, filters=flt, ignore_removed=True)]
        found += [((n.attrs.get("Labels") or {}).get(PROJECT_LABEL, ""), f"network {n.name}")
                  for n in docker_client.networks.list(filters=flt)]
        return [what for project, what in found if project.startswith(prefix)]

    pytester.makepyfile(test_many=MANY)
    rng = random.Random(TERM_SEED)
    for n in range(TERM_ROUNDS):
        prefix = f"socketlab-test-{os.getpid()}-term{n}"
        delay = rng.uniform(2.0, 14.0)
        seen = f"seed {TERM_SEED}, round {n}, SIGTERM after {delay:.2f} s"
        env = {**os.environ, "SOCKETLAB_PYTEST_PREFIX": prefix}
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n",
                                 "4", "test_many.py"], cwd=pytester.path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            time.sleep(delay)
            proc.send_signal(signal.SIGTERM)
            out = proc.communicate(timeout=180)[0].decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert ours(prefix) == [], f"{seen}: left behind\n{out}"
        time.sleep(5)  # a worker the signal never reached would go on starting labs
        assert ours(prefix) == [], f"{seen}: made after the run ended\n{out}"


SHARED = RECORD + '''
import json, os
import pytest
from socketlab.act.shaping import shape

pytestmark = pytest.mark.socketlab(reuse="module", record=False)

def conntrack(lab, host):
    return int(lab.exec(host, ["cat", "/proc/sys/net/netfilter/nf_conntrack_count"]).stdout)

def test_one_leaves_a_mess(lab):
    record(lab)
    lab.start("server", ["sleep", "300"], timeout=300)
    assert lab.exec("client", ["ping", "-c", "2", "-i", "0.2", lab.config.server_ip]).exit_code == 0
    shape(lab, "client", "delay 40ms")
    assert conntrack(lab, "client") > 0
    assert lab.config.server_ip in lab.exec("client", ["ip", "neigh", "show"]).stdout

def test_two_finds_it_clean(lab):
    record(lab)
    assert lab.exec("server", ["pgrep", "-f", "sleep 300"]).exit_code == 1   # ended
    assert "not shaped" in lab.exec("client", ["lab-shape", "show"]).stdout
    assert "delay" not in lab.exec("client", ["tc", "qdisc", "show", "dev", "eth0"]).stdout
    assert conntrack(lab, "client") == 0
    assert lab.config.server_ip not in lab.exec("client", ["ip", "neigh", "show"]).stdout

@pytest.mark.socketlab(reuse="module", record=False, offloads=True)
def test_other_settings_get_a_lab_of_their_own(lab):
    record(lab)
'''


def test_tests_sharing_a_lab_find_it_reset_between_them(
        pytester, record_file, docker_client, lab_image):
    """reuse="module": one lab for both tests with the same settings; the second finds the
    first's program ended, its shaping cleared, conntrack and the neighbour cache empty."""
    pytester.makepyfile(test_shared=SHARED)
    result = pytester.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml")
    result.assert_outcomes(passed=3)
    labs = [r["project"] for r in records(record_file)]
    assert labs[0] == labs[1] != labs[2]
    resets = [p.get("value") for p in ET.parse(pytester.path / "junit.xml").iter("property")
              if p.get("name") == "socketlab-reset-seconds"]
    assert len(resets) == 1  # before the second test only; the others had new labs
    assert left_behind(docker_client, labs) == []


def test_the_redis_example_passes_sharing_one_lab(pytester, docker_client, lab_image):
    """examples/test_redis.py as a CI engineer copies it: Debian's redis-server in an image of
    its own (built by the plugin from the example's compose file), one lab for the module,
    readiness waits, loss and a fault; every test passes and every reset is recorded."""
    shutil.copytree(EXAMPLES, pytester.path, dirs_exist_ok=True)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_redis.py",
                                           "--junitxml=junit.xml", timeout=900)
    result.assert_outcomes(passed=4)
    resets = [p for p in ET.parse(pytester.path / "junit.xml").iter("property")
              if p.get("name") == "socketlab-reset-seconds"]
    assert len(resets) == 3  # one lab: made for the first test, reset before the three others
