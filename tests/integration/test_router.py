"""topologies/router.yml: four hosts on three networks, two routers, a 1000-byte link in the
middle; the post's exchange across it, the traffic rule kept, and P1 (PMTU discovery)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from socketlab.act.programs import Options, run_pair
from socketlab.experiments.base import run_experiment
from socketlab.experiments.pmtu import EXPERIMENTS
from socketlab.lab.assets import TOPOLOGIES
from socketlab.lab.composefile import NO_HOST_ADDRESS_OPT
from socketlab.lab.lab import Lab
from tests.conftest import assert_artifacts, lab_config, project_name
from tests.integration.test_lab import leftovers

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]  # the checkout: the README's commands run from there


@pytest.fixture(scope="module")
def router_lab(docker_client, lab_image):
    with Lab(lab_config("-router", topology=str(TOPOLOGIES / "router.yml")),
             client=docker_client) as lab:
        yield lab


def test_four_hosts_on_three_networks_and_routes_only_through_the_routers(router_lab):
    topo = router_lab.topology
    rows = router_lab.status()
    assert [(r["name"], r["address"], r["state"]) for r in rows] == [
        (h.name, h.ip, "running") for h in topo.hosts]
    lan1, wan, lan2 = (n.subnet for n in topo.networks)
    routes = router_lab.exec("client", ["ip", "route"]).stdout
    assert "default" not in routes
    assert f"{lan2} via {topo.ip('r1', 'lan1')}" in routes
    assert router_lab.exec("r1", ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"
    wan_link = router_lab.exec("r1", ["ip", "-o", "addr", "show", "to", wan]).stdout.split()[1]
    assert " mtu 1000 " in router_lab.exec("r1", ["ip", "-o", "link", "show", wan_link]).stdout
    assert lan1 != wan != lan2


def test_the_posts_exchange_crosses_both_routers_with_its_addresses_unchanged(router_lab):
    run = run_pair(router_lab, Options(proto="tcp"))
    assert run.ok, run
    accepted = next(e for e in run.server_events if e.name == "accepted")
    assert accepted.fields["peer"].startswith(router_lab.topology.ip("client") + ":")  # no NAT
    assert [e.fields["data"] for e in run.server_events if e.name == "recv"] == \
        ["hel", "lo,", "wor", "ld", ""]


def test_a_routed_lab_has_no_way_out(router_lab, docker_client):
    """Its networks are not `internal` (routing across internal bridges is dropped), so: no
    address for this machine on them, and no host knows a route out (a lookup sends nothing)."""
    for net in docker_client.networks.list(
            filters={"label": f"com.docker.compose.project={router_lab.config.project}"}):
        assert net.attrs["Options"].get(NO_HOST_ADDRESS_OPT) == "true", net.name
    for host in router_lab.topology.names:
        out = router_lab.exec(host, ["ip", "route", "get", "203.0.113.1"])
        assert out.exit_code != 0
        assert "unreachable" in out.stderr.lower()


def test_p1_path_mtu_discovery_holds_on_the_wire(router_lab, runs):
    (p1,) = EXPERIMENTS
    result = run_experiment(p1, router_lab, runs)
    facts, verdict = result.evidence.facts, result.verdict
    assert verdict.status == "holds", verdict.summary
    parts, narrow = facts["parts"], facts["path"]["narrow"]
    assert narrow == 1000
    assert {(i["src"], i["mtu"]) for i in parts["tcp"]["icmp"]} == {(facts["path"]["router_ip"], 1000)}
    assert parts["tcp"]["data_before_icmp"] > narrow >= parts["tcp"]["data_after_icmp"]
    assert parts["do"]["sends"] == ["sent", "EMSGSIZE", "EMSGSIZE"]
    assert parts["dont"]["router"]["Ip.FragCreates"] >= 2
    if parts["want"]["router"]["Ip.ReasmOKs"]:  # r1 gathered the client's fragments, cut them again
        assert f"{facts['path']['router']} reassembled the client's" in verdict.summary
    assert_artifacts(result)
    # the packet P1 is about is on its ladders: r1's ICMP, drawn from the path to the client
    for stem in ("p1-do", "p1-want", "p1-tcp"):
        text = Path(result.evidence.artifacts[f"{stem} ladder (text)"]).read_text()
        assert f"from r1 {facts['path']['router_ip']}: ICMP fragmentation needed mtu=1000" in text, text


# -- the README's router block, as a user types it: up, run, P1 on that lab, down ---------------
def cli(project: str, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """socketlab as a subprocess, from the checkout, with no lab address settings of the caller's
    (the lab's own, read from its containers, are what counts)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SOCKETLAB_SUBNET", "SOCKETLAB_SERVER_IP", "SOCKETLAB_CLIENT_IP",
                        "SOCKETLAB_TOPOLOGY")}
    return subprocess.run([sys.executable, "-m", "socketlab", "-p", project, *argv], cwd=ROOT,
                          env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
                          timeout=timeout)


def test_the_router_block_runs_p1_on_the_lab_it_started_and_leaves_it_up(docker_client, lab_image,
                                                                          tmp_path):
    project, runs = project_name("-router-block"), tmp_path / "runs"
    try:
        up = cli(project, "up", "--topology", "topologies/router.yml", "--subnet", "auto")
        assert up.returncode == 0, up.stderr
        run = cli(project, "run", "tcp")
        assert run.returncode == 0, run.stderr
        assert "nothing lost" in run.stdout
        p1 = cli(project, "experiment", "P1", "--out", str(runs))
        assert p1.returncode == 0, p1.stderr
        assert f"lab {project!r} is already running" in p1.stderr  # used as it is ...
        assert "P1" in p1.stdout
        assert "holds" in p1.stdout
        (run_dir,) = runs.iterdir()
        assert (run_dir / "verdicts.json").is_file()
        assert not (run_dir / ".incomplete").exists()
        assert leftovers(docker_client, project), "P1 removed the user's lab"  # ... and left up
    finally:
        down = cli(project, "down")
    assert down.returncode == 0, down.stderr
    assert leftovers(docker_client, project) == []


def test_p1_on_a_running_lab_of_another_topology_is_refused_before_any_run_folder(
        docker_client, lab_image, tmp_path):
    project, runs = project_name("-router-refused"), tmp_path / "runs"
    try:
        assert cli(project, "up", "--subnet", "auto").returncode == 0
        p1 = cli(project, "experiment", "P1", "--out", str(runs))
        assert p1.returncode == 2, p1.stderr
        assert (f"error: lab {project!r} is already running with other settings (topology "
                f"docker-compose.yml, not {TOPOLOGIES / 'router.yml'})") in p1.stderr
        assert not runs.exists()  # no run folder, not even an empty one
        assert len(leftovers(docker_client, project)) == 3  # the user's lab, untouched
    finally:
        cli(project, "down")
    assert leftovers(docker_client, project) == []
