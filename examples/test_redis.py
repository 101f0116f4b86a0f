"""redis (Debian's redis-server, a program nobody here wrote) across real hosts.

The tests of this module share one lab (reuse="module"): it is made once, and put back to a
known state before each later test (programs the test started ended, shaping and faults
cleared, conntrack and ARP caches flushed). redis's own data is the service's, not the
network's: the `redis` fixture empties it before each test. Before each test socketlab waits
until redis says it is ready and its port accepts from the client host.
"""

from __future__ import annotations

import pytest

from socketlab import LogLine, PortOpen

pytestmark = pytest.mark.socketlab(
    topology="redis/compose.yml", reuse="module",
    ready=[LogLine("server", r"Ready to accept connections"),
           PortOpen("server", 6379, from_host="client")])


@pytest.fixture
def redis(lab):
    """`redis("SET", "k", "v")`: redis-cli in the client host, against the server; stdout."""
    def cli(*words: str, timeout: float = 30) -> str:
        done = lab.exec("client", ["redis-cli", "-h", lab.topology.ip("server"), *words],
                        timeout=timeout)
        assert done.exit_code == 0, done.stderr
        return done.stdout.strip()
    assert cli("FLUSHALL") == "OK"
    return cli


def test_set_then_get(redis, capture, lab):
    with capture(lab) as wire:
        assert redis("SET", "colour", "blue") == "OK"
        assert redis("GET", "colour") == "blue"
    assert [h.established for h in wire.handshakes] == [True, True]  # redis-cli: one each
    assert wire.retransmissions == ()


def test_a_hundred_increments_under_loss_all_count(redis, shape, lab):
    """One connection, 100 INCRs, 5 % of the packets lost each way: TCP resends, none lost."""
    with shape(lab, "client", "loss 5% seed 7") as lost, shape(lab, "server", "loss 5% seed 8"):
        redis("-r", "100", "INCR", "hits", timeout=120)
    assert lost.summary["dropped"] > 0  # the shaper did drop some of the client's packets
    assert redis("GET", "hits") == "100"


def test_a_dropped_syn_ack_costs_exactly_one_retry(redis, fault, capture, lab):
    with fault(lab, "server", "drop tcp flags=SA nth=1") as dropped, capture(lab) as wire:
        assert redis("PING") == "PONG"
    assert len(dropped.fired) == 1
    assert wire.count("tcp", flags="S") == 2  # the client's SYN, sent again after 1 s
    assert [h.established for h in wire.handshakes] == [True]


def test_each_test_finds_no_shaping_left(lab):
    """The loss of the test before is gone: the reset cleared it."""
    assert "not shaped" in lab.exec("client", ["lab-shape", "show"], instruments=True).stdout
