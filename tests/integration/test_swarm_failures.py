"""The swarm engine's failure paths, on the sandbox's real nodes: a host placed on a node no
node is labelled as, an endpoint that is no manager, an image a node lacks (copied, with
progress), Ctrl-C while the hosts are being made. Each: one clear line or the lab working,
and nothing of the lab left on any node."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import pytest

from socketlab.act.programs import Options, run_pair
from socketlab.cli.app import ExitCode, main
from socketlab.errors import SwarmError
from socketlab.lab.swarm import Swarm
from socketlab.lab.swarm_lab import SwarmLab
from tests.conftest import lab_config, project_name

pytestmark = [pytest.mark.integration, pytest.mark.swarm]


def on_nodes(swarm: Swarm, project: str) -> list[str]:
    """Every container and network of `project` on every node."""
    flt = {"label": f"com.docker.compose.project={project}"}
    return [f"{what} on {node}" for node, client in swarm.clients().items()
            for what in ([f"container {c.name}" for c in client.containers.list(all=True, filters=flt)]
                         + [f"network {n.name}" for n in client.networks.list(filters=flt)])]


def cli(swarm: Swarm, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"SOCKETLAB_SWARM_NODES": ",".join(swarm.endpoints)}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_a_host_placed_on_an_unlabelled_node_is_refused_and_nothing_is_made(swarm: Swarm) -> None:
    project = project_name("-unlabelled")
    code, out, err = cli(swarm, "--engine", "swarm", "--place", "server=db", "-p", project,
                         "up", "--subnet", "auto")
    assert code == ExitCode.LAB_ERROR, err
    assert "error: no swarm node is named or labelled 'db' (for server)" in err
    assert "--label-add socketlab.node=db" in err
    assert on_nodes(swarm, project) == []


def test_an_endpoint_that_is_no_manager_is_refused(swarm: Swarm) -> None:
    worker = Swarm(swarm.endpoints[1:], source="the worker alone")
    lab = SwarmLab(lab_config("-worker"), swarm=worker)
    with pytest.raises(SwarmError, match="none of the endpoints .* is a swarm manager"):
        lab.up()
    assert on_nodes(swarm, lab.config.project) == []


def test_an_image_a_node_lacks_is_copied_to_it_with_progress(swarm: Swarm, docker_client) -> None:
    base = lab_config().image
    copy = f"socketlab/lab:swarm-copy-{os.getpid()}"
    docker_client.images.get(base).tag(copy)
    said: list[str] = []
    try:
        with SwarmLab(lab_config("-copy", image=copy), swarm=swarm, progress=said.append) as lab:
            assert run_pair(lab, Options(proto="tcp")).ok
    finally:
        for client in (docker_client, *swarm.clients().values()):
            if any(copy in image.tags for image in client.images.list(name="socketlab/lab")):
                client.images.remove(copy)  # the tag only: the image stays under its own name
    assert any(m.startswith(f"copying {copy}") and "to n1, n2" in m for m in said), said
    assert sum("100% loaded" in m for m in said) == 2


def test_ctrl_c_while_the_hosts_are_made_leaves_nothing_on_any_node(swarm: Swarm) -> None:
    project = project_name("-ctrlc")
    argv = [sys.executable, "-m", "socketlab", "--engine", "swarm", "-p", project, "up",
            "--subnet", "auto"]
    env = {**os.environ, "SOCKETLAB_SWARM_NODES": ",".join(swarm.endpoints)}
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env) as proc:
        try:
            for line in proc.stderr:  # interrupt once the overlay and hosts are being made
                if "on swarm (" in line:
                    proc.send_signal(signal.SIGINT)
                    break
            rest = proc.stderr.read()
            code = proc.wait(timeout=120)
            left = on_nodes(swarm, project)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == ExitCode.INTERRUPTED, rest
    assert f"interrupted: lab '{project}' was" in rest
    assert left == []
