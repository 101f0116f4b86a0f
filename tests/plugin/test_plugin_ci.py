"""The plugin as CI engineers meet it (issue 18): a UDP fault drawn on the ladder, stale labs
reaped after a SIGKILL (never anyone else's), SIGTERM to the main process alone under xdist,
labs shared by a module's tests and reset between them, recording a shared lab once, and the
redis example. Real labs, suites run by pytester."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from tests.plugin.conftest import EXAMPLES
from tests.plugin.test_plugin import RECORD, SLOW, left_behind, record_file, records

pytestmark = pytest.mark.integration
__all__ = ["record_file"]  # a fixture, used by name


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
    removes it and says so. A live owner's lab (this test's own), a lab `socketlab up` left
    running on purpose, a lab without owner labels and another machine's are left alone."""
    from tests.conftest import lab_config

    pytester.makepyfile(test_slow=SLOW)
    kept = lab_config("-kept-up").project  # `socketlab up`: meant to outlive its command
    cli = [sys.executable, "-m", "socketlab", "-p", kept]
    subprocess.run([*cli, "up", "--subnet", "auto"], check=True, capture_output=True, timeout=300)
    try:
        _killed_run_reaped(pytester, record_file, docker_client, not_ours, kept)
    finally:
        subprocess.run([*cli, "down"], capture_output=True, timeout=300, check=False)


def _killed_run_reaped(pytester, record_file, docker_client, not_ours, kept) -> None:
    from socketlab.lab.lab import Lab
    from tests.conftest import lab_config

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
        assert len(left_behind(docker_client, [kept])) == 3  # 2 containers, its network
        assert not any(name in out for name in [live.config.project, kept, *not_ours])


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


SHARED_RECORDED = '''
import pytest

pytestmark = pytest.mark.socketlab(reuse="module")

def test_passes_with_traffic(lab):
    assert lab.exec("client", ["ping", "-c", "1", lab.config.server_ip]).exit_code == 0

def test_fails_after_its_own_traffic(lab):
    lab.exec("client", ["ping", "-c", "2", "-i", "0.2", "-s", "99", lab.config.server_ip])
    assert False, "deliberately"
'''


def test_a_shared_lab_records_once_and_a_failing_test_keeps_only_its_share(
        pytester, docker_client, lab_image):
    """A reused lab's capture runs for the module; a passing test keeps nothing, a failing one
    its own window of it: its pings (99-byte payload), not the test before's."""
    from socketlab.observe.pcap import read_pcap

    pytester.makepyfile(test_shared_rec=SHARED_RECORDED)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    artifacts = pytester.path / "socketlab-artifacts"
    assert not list(artifacts.glob("*test_passes_with_traffic*"))
    kept = sorted(p.name for p in artifacts.rglob("*") if p.is_file())
    assert kept == ["client.pcap", "ladder.svg", "ladder.txt", "server.pcap"]
    echoes = [p for p in read_pcap(next(artifacts.rglob("server.pcap"))) if p.proto == "icmp"]
    assert len(echoes) == 4  # two requests, two replies: this test's only
    assert {p.ip_len for p in echoes} == {20 + 8 + 99}
