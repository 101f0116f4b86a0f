"""topologies/router.yml: four hosts on three networks, two routers, a 1000-byte link in the
middle; the post's exchange across it, the traffic rule kept, and P1 (PMTU discovery)."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketlab.act.programs import Options, run_pair
from socketlab.experiments.base import run_experiment
from socketlab.experiments.pmtu import EXPERIMENTS
from socketlab.lab.assets import TOPOLOGIES
from socketlab.lab.composefile import NO_HOST_ADDRESS_OPT
from socketlab.lab.lab import Lab
from tests.conftest import assert_artifacts, lab_config

pytestmark = pytest.mark.integration


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
