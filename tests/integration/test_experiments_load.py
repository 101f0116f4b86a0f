"""C6, C7, C9 and C10 in a real lab: the verdicts this kernel earns, and the facts behind them.
Every flood is bounded (at most 20,000 datagrams); C9's queue is removed whatever happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketlab.experiments import load, sending
from socketlab.experiments.base import Result, run_experiment
from socketlab.lab.lab import Lab
from socketlab.observe.observation import Context

pytestmark = pytest.mark.integration




def run(experiment, lab: Lab, runs: Path) -> Result:
    result = run_experiment(experiment, lab, runs)
    assert result.verdict.claim == experiment.id
    assert result.evidence.observations
    return result


def qdisc_of(lab: Lab) -> str:
    return lab.exec("client", ["tc", "qdisc", "show", "dev", "eth0"], timeout=10).stdout


def test_c6_udp_drops_at_the_socket_tcp_loses_nothing(lab: Lab, runs: Path) -> None:
    result = run(load.C6, lab, runs)
    udp, tcp, sweep = (result.evidence.facts[k] for k in ("udp", "tcp", "sweep"))
    assert result.verdict.status == "holds", result.verdict.summary
    assert udp["sent"] == load.BURST
    assert udp["capture_dropped"] == 0
    assert load.adds_up(udp), result.evidence.observations
    assert udp["dropped_at_socket"] == udp["server_counters"]["Udp.RcvbufErrors"] > 0
    assert udp["lost_between_hosts"] == 0
    assert tcp["bytes_received"] == tcp["bytes_sent"] == load.BURST * load.DATAGRAM
    assert tcp["window_min"] <= load.ONE_SEGMENT  # the window closed, or all but
    assert [p["rcvbuf_set"] for p in sweep] == list(load.SWEEP_RCVBUFS)
    assert all(p["delivered"] + p["rcvbuf_errors"] == p["sent"] for p in sweep)


def test_c7_sndbuf_is_not_the_emsgsize_bound(lab: Lab, runs: Path) -> None:
    result = run(sending.C7, lab, runs)
    f = result.evidence.facts
    assert result.verdict.status == "does not hold", result.verdict.summary
    assert f["sndbuf"] == 2 * sending.C7_SNDBUF  # Linux doubles what it is given
    by_size = {r["size"]: r["result"] for r in f["default"]}
    assert by_size[load.UDP_MAX] == load.UDP_MAX
    assert by_size[load.UDP_MAX + 1] == "EMSGSIZE"
    small = {r["size"]: r["result"] for r in f["small"]}
    assert small[6000] == 6000  # larger than SO_SNDBUF, accepted
    assert small[load.UDP_MAX + 1] == "EMSGSIZE"
    assert f["wire_datagrams"] == f["delivered"] == sum(r["ok"] for r in f["small"] + f["default"])


def test_c9_linux_hides_enobufs_unless_ip_recverr(lab: Lab, runs: Path) -> None:
    result = run(sending.C9, lab, runs)
    f = result.evidence.facts
    plain, told = f["runs"]
    assert result.verdict.status == "holds in part", result.verdict.summary
    assert plain["failed"] == 0
    assert plain["succeeded_not_sent"] == plain["client_counters"]["qdisc.drops"] > 0
    assert told["by_errno"]["ENOBUFS"] == told["client_counters"]["qdisc.drops"] > 0
    assert f["qdisc_removed"]
    assert "tbf" not in qdisc_of(lab)


def test_c9_removes_its_queue_even_when_the_run_fails(lab: Lab, runs: Path, monkeypatch) -> None:
    def broken(ctx, recverr):
        assert "tbf" in qdisc_of(lab)
        raise RuntimeError("the burst broke")

    monkeypatch.setattr(sending, "queue_burst", broken)
    with pytest.raises(RuntimeError, match="the burst broke"):
        sending.run_c9(Context(lab, runs))
    assert "tbf" not in qdisc_of(lab)


def test_c10_the_buffer_discards_but_a_big_datagram_enters_an_empty_queue(lab: Lab,
                                                                          runs: Path) -> None:
    result = run(load.C10, lab, runs)
    burst, big = result.evidence.facts["burst"], result.evidence.facts["big"]
    assert result.verdict.status == "holds in part", result.verdict.summary
    assert load.adds_up(burst)
    assert burst["dropped_at_socket"] == burst["server_counters"]["Udp.RcvbufErrors"] > 0
    assert big["size"] > big["rcvbuf"]
    assert big["delivered"] == 1
    assert big["delivered_bytes"] == big["size"]
    assert big["server_counters"]["Udp.RcvbufErrors"] == big["sent"] - 1
