"""The lab across two swarm nodes (the sandbox): the post's exchange from one node to the other,
a shaped link, a packet-exact fault, capture on both hosts and on the underlay (VXLAN), the
claims C4, C5 and C8 with their verdicts, and nothing left on any node afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketlab.act import shaping
from socketlab.act.programs import Options, run_pair
from socketlab.experiments import shaped, tcp, udp
from socketlab.experiments.base import run_experiment, run_meta
from socketlab.experiments.udp import link_mtu
from socketlab.lab.swarm_lab import SwarmLab
from socketlab.observe import analysis as an
from socketlab.observe.observation import Context, observe
from socketlab.observe.underlay import VXLAN_PORT, UnderlayCapture, read_vxlan, underlay_files
from tests.conftest import assert_artifacts

pytestmark = [pytest.mark.integration, pytest.mark.swarm]

OVERLAY_MTU = 1450  # VXLAN's 50 bytes out of the underlay's 1500


def test_the_hosts_run_on_different_nodes(swarm_lab: SwarmLab) -> None:
    assert swarm_lab.placement() == {"server": "n1", "client": "n2"}
    rows = {r["name"]: r for r in swarm_lab.status()}
    assert (rows["server"]["node"], rows["client"]["node"]) == ("n1", "n2")
    assert {r["state"] for r in rows.values()} == {"running"}
    nodes = {n.name: n.endpoint for n in swarm_lab.swarm.nodes()}
    for host, node in swarm_lab.placement().items():  # each host through its node's endpoint
        assert swarm_lab.container(host).client.api.base_url != ""
        assert swarm_lab.swarm.client(node).containers.get(swarm_lab.container(host).id)
        assert nodes[node]


def test_the_posts_tcp_exchange_crosses_the_overlay(swarm_lab: SwarmLab) -> None:
    run = run_pair(swarm_lab, Options(proto="tcp"))
    assert run.ok, run
    assert [e.fields["data"] for e in run.server_events if e.name == "recv"] == \
        ["hel", "lo,", "wor", "ld", ""]
    accepted = next(e for e in run.server_events if e.name == "accepted")
    assert accepted.fields["peer"].startswith(swarm_lab.config.client_ip + ":")


def test_the_overlay_link_is_1450_bytes(swarm_lab: SwarmLab) -> None:
    assert link_mtu(swarm_lab, "client") == link_mtu(swarm_lab, "server") == OVERLAY_MTU


def test_a_shaped_link_delays_the_handshake(swarm_lab: SwarmLab, runs: Path) -> None:
    ctx = Context(swarm_lab, runs)
    try:
        done = shaping.shape(swarm_lab, "client", "delay 150ms")
        assert done.backend
        obs = observe(ctx, lambda: run_pair(swarm_lab, Options(proto="tcp")), name="shaped")
    finally:
        shaping.clear(swarm_lab, "client")
    assert obs.result.ok
    flow = an.tcp_flow(obs.packets["server"], (swarm_lab.config.server_ip, swarm_lab.config.port))
    # The server saw the client's SYN; the client's ACK of the SYN-ACK left the client's
    # shaper at least 150 ms after the SYN-ACK arrived there (a lower bound only).
    syn_ack, ack = flow.handshake.synack, flow.handshake.ack
    assert ack.ts - syn_ack.ts >= 0.150
    assert "not shaped" in shaping.show(swarm_lab, "client")


def test_a_packet_exact_fault_drops_the_first_syn_ack(swarm_lab: SwarmLab, runs: Path) -> None:
    result = run_experiment(shaped.S2, swarm_lab, runs)
    [fired] = result.evidence.facts["fired"]
    assert (fired["flags"], fired["ordinal"]) == ("SA", 1)
    assert result.verdict.status in ("holds", "holds in part"), result.verdict.summary
    assert result.evidence.facts["received"] == "hello,world"
    for host in ("client", "server"):
        assert "not shaped" in shaping.show(swarm_lab, host)


def test_capture_on_both_hosts_and_on_the_underlay(swarm_lab: SwarmLab, runs: Path) -> None:
    ctx = Context(swarm_lab, runs)
    with UnderlayCapture(swarm_lab, runs, name="vxlan") as under:
        obs = observe(ctx, lambda: run_pair(swarm_lab, Options(proto="tcp")), name="hosts")
    cfg, port = swarm_lab.config, swarm_lab.config.port
    at_server = [p for p in obs.packets["server"] if p.proto == "tcp" and port in (p.sport, p.dport)]
    at_client = [p for p in obs.packets["client"] if p.proto == "tcp" and port in (p.sport, p.dport)]
    assert len(at_server) == len(at_client) >= 8  # handshake, data, ack, both FINs
    nodes = {n.name: n.address for n in swarm_lab.swarm.nodes()}
    for tap in under.result.hosts.values():
        frames = [f for f in read_vxlan(tap.pcap) if f.inner is not None and f.inner.proto == "tcp"
                  and port in (f.inner.sport, f.inner.dport)]
        # Every frame between the hosts crossed the underlay once, inside UDP to 4789 between
        # the two nodes' own addresses, all with the overlay's one VNI.
        assert len(frames) == len(at_server)
        assert {f.outer.dport for f in frames} == {VXLAN_PORT}
        assert {(f.outer.src, f.outer.dst) for f in frames} == {
            (nodes["n2"], nodes["n1"]), (nodes["n1"], nodes["n2"])}
        assert len({f.vni for f in frames}) == 1
        assert {(f.inner.src, f.inner.dst) for f in frames} == {
            (cfg.client_ip, cfg.server_ip), (cfg.server_ip, cfg.client_ip)}
        data = [f.inner for f in frames if f.inner.length]
        assert [p.payload for p in data] == [b"hello,world"]
        assert all(f.outer.ip_len == f.inner.ip_len + 50 for f in frames)  # 20 + 8 + 8 + 14
    files = underlay_files(ctx, under.result)
    assert "server on n1, client on n2" in Path(files["underlay (text)"]).read_text()


@pytest.mark.parametrize("experiment", [tcp.C4, udp.C5, udp.C8], ids=lambda e: e.id)
def test_claims_hold_across_nodes(swarm_lab: SwarmLab, runs: Path, experiment) -> None:
    result = run_experiment(experiment, swarm_lab, runs)
    assert result.verdict.status == "holds", result.verdict.summary
    assert_artifacts(result)
    if experiment is udp.C8:  # the verdict reads the link it measured: 1450, not 1500
        f = result.evidence.facts
        assert f["mtu"] == {"client": OVERLAY_MTU, "server": OVERLAY_MTU}
        assert f"over a {OVERLAY_MTU}-byte MTU" in result.verdict.summary
        assert [p[0] for p in f["udp_fragments"]][:2] == [0, (OVERLAY_MTU - 20) // 8 * 8]
        assert min(m for m in f["tcp_mss"] if m) == OVERLAY_MTU - 40
        # the ladder draws what both captures show: every byte arrived (the server read all
        # 8000), so no segment is lost and none resent, even where the overlay's receive
        # offload merged segments before the server's tap (then a note says so)
        assert f["tcp_received"] == f["size"]
        ladder = Path(result.evidence.artifacts["tcp-big ladder (text)"]).read_text()
        assert "►X" not in ladder, ladder
        assert "[retx]" not in ladder, ladder
        merged = [n for n in f["tcp_segments_at_server"] if n > max(f["tcp_segments"])]
        assert (f"coalesced in {merged[0]} B" in ladder if merged else "coalesced" not in ladder), ladder


def test_the_run_says_which_node_ran_which_host(swarm_lab: SwarmLab) -> None:
    meta = run_meta(swarm_lab)
    assert meta["nodes"] == "server on n1, client on n2"
    assert meta["engine"].startswith("swarm (sandbox ")


def test_the_pytest_plugin_puts_a_lab_on_the_swarm(swarm, lab_factory, fault, capture,
                                                   monkeypatch) -> None:
    monkeypatch.setenv("SOCKETLAB_SWARM_NODES", ",".join(swarm.endpoints))
    with lab_factory(engine="swarm", place={"server": "n2", "client": "n1"}) as lab:
        assert lab.placement() == {"server": "n2", "client": "n1"}
        with fault(lab, "server", "drop tcp flags=SA nth=1") as f, capture(lab) as wire:
            run = run_pair(lab, Options(proto="tcp"))
    assert run.ok
    assert len(f.fired) == 1                          # exactly that SYN-ACK, on node n2
    assert len(wire["client"].select("tcp", flags="S")) == 2  # so the client on n1 sent it again
