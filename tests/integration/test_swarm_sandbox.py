"""The swarm sandbox for real: `up` makes a two-node swarm (a manager and a worker, labelled,
the image on both), `down` leaves nothing (processes, mounts, namespaces, veths, folder), and
an `up` interrupted half-way leaves nothing either."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from socketlab.lab.config import LabConfig
from socketlab.lab.sandbox import NODE_LABEL, Sandbox, node_client, node_status

pytestmark = [pytest.mark.integration, pytest.mark.swarm]


def name(suffix: str) -> str:
    return f"st{os.getpid() % 100_000}{suffix}"


def mounts_below(folder: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(folder) + "/")]


def assert_nothing_left(sandbox: Sandbox, nodes) -> None:
    assert sandbox.leftovers() == []
    for node in nodes:
        assert not Path(f"/run/netns/{node.netns}").exists()
        assert not Path(f"/sys/class/net/{node.veth}").exists()
    assert not sandbox.dir.exists()
    assert mounts_below(sandbox.dir) == []


def test_up_makes_a_two_node_swarm_and_down_leaves_nothing(docker_client, lab_image) -> None:
    image = LabConfig.from_env().image
    messages: list[str] = []
    sandbox = Sandbox(name("a"), progress=messages.append)
    try:
        state = sandbox.up([image], source=docker_client)
        rows = {r["node"]: r for r in node_status(state)}
        assert (rows["n1"]["role"], rows["n2"]["role"]) == ("manager", "worker")
        manager = node_client(state.manager.url)
        nodes = manager.nodes.list()
        assert sorted(n.attrs["Spec"]["Labels"][NODE_LABEL] for n in nodes) == ["n1", "n2"]
        assert {n.attrs["Status"]["State"] for n in nodes} == {"ready"}
        assert {n.attrs["Status"]["Addr"] for n in nodes} == {n.address for n in state.nodes}
        want = docker_client.images.get(image).id
        for node in state.nodes:
            assert node_client(node.url).images.get(image).id == want
        assert any("100% loaded" in m for m in messages)  # the copy told its progress
        assert state.storage in ("overlay2", "vfs")
        assert Sandbox(sandbox.name).up([image]).underlay == state.underlay  # up again: no-op
    finally:
        removed = sandbox.down()
    assert any(r.startswith("namespace ") for r in removed)
    assert_nothing_left(sandbox, state.nodes)
    assert sandbox.down() == []  # twice is fine


def test_an_interrupted_up_leaves_nothing(lab_image) -> None:
    sandbox = Sandbox(name("b"))
    image = LabConfig.from_env().image
    argv = [sys.executable, "-m", "socketlab", "sandbox", "up", "--name", sandbox.name,
            "--image", image]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as proc:
        try:
            for line in proc.stderr:  # interrupt while the daemons start
                if "starting dockerd" in line:
                    proc.send_signal(signal.SIGINT)
                    break
            rest = proc.stderr.read()
            code = proc.wait(timeout=120)
            left = sandbox.leftovers()  # what the interrupted `up` left, looked at first
        finally:
            if proc.poll() is None:
                proc.kill()
            sandbox.down()  # then, whatever happened, nothing of the test's sandbox stays
    assert code == 130, rest
    assert "interrupted" in rest
    assert left == []
