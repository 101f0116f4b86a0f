"""The key-value service across real hosts, under real network trouble.

Each test gets a lab of its own (its own project name, a free subnet: run them with
`pytest -n 4`), torn down whatever happens; on a failure its pcaps and ladders are kept in
socketlab-artifacts/ and named in the report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from socketlab.lab.assets import TOPOLOGIES

HERE = Path(__file__).parent


@pytest.mark.socketlab(topology="kv/compose.yml")
def test_set_then_get(lab, kv, capture):
    with capture(lab) as wire:
        assert kv(lab, "set", "colour", "blue").stdout == "OK\n"
        assert kv(lab, "get", "colour").stdout == "blue\n"
    assert [h.established for h in wire.handshakes] == [True, True]  # a connection per request
    assert wire.retransmissions == ()


@pytest.mark.socketlab(topology="kv/compose.yml")
def test_every_value_survives_ten_percent_loss(lab, kv, shape):
    with shape(lab, "client", "loss 10% seed 7") as lost, shape(lab, "server", "loss 10% seed 8"):
        # each try waits 0.5 s for a connect: a busy CI machine can stall the shaper longer
        # than six of them, so the fill may try each request up to twenty times
        done = kv(lab, "--attempts", "20", "fill", "30", "200")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "filled n=30 size=200 wrong=0"
    assert lost.summary["dropped"] > 0  # the shaper did drop the client's packets


@pytest.mark.socketlab(topology="kv/compose.yml")
def test_a_dropped_syn_ack_costs_exactly_one_retry(lab, kv, fault, capture):
    with fault(lab, "server", "drop tcp flags=SA nth=1") as dropped, capture(lab) as wire:
        done = kv(lab, "set", "colour", "blue")
    assert len(dropped.fired) == 1
    assert done.stdout.splitlines() == ["attempt n=1 op=connect error=timeout", "OK"]
    assert [h.established for h in wire.handshakes] == [False, True]


@pytest.mark.socketlab(topology=str(TOPOLOGIES / "router.yml"))
def test_a_big_value_crosses_a_narrower_link(lab, kv, capture):
    """client - r1 - (MTU 1000) - r2 - server: Path MTU discovery, on the wire."""
    for host in ("client", "server"):
        lab.put(host, HERE / "kv", "/app")
    server = lab.start("server", ["python3", "/app/kv_server.py", "--port", "7000"], timeout=120)
    assert server.wait_for(lambda line: line.startswith("listening"), 10)
    big = "x" * 3000
    with capture(lab, ["client", "server"]) as wire:
        assert kv(lab, "set", "big", big).stdout == "OK\n"
        assert kv(lab, "get", "big").stdout == big + "\n"
    # the client's first 1448-byte segments did not fit: r1 said so (ICMP, next-hop MTU 1000)
    assert 1000 in [e.pkt.icmp_mtu for e in wire["client"].icmp]
    for host, peer in (("client", "server"), ("server", "client")):
        arrived = [s.length for s in wire[host].segments if s.pkt.src == lab.topology.ip(peer)]
        assert max(arrived) <= 1000 - 40, host  # whatever crossed, fitted the narrow link
