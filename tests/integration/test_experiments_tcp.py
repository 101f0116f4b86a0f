"""C1, C3 and C4 run for real in a lab of their own: the verdict and the facts behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketlab.experiments.base import run_experiment
from socketlab.experiments.tcp import C1, C3, C4
from socketlab.lab.lab import Lab
from tests.conftest import assert_artifacts

pytestmark = pytest.mark.integration






def test_c1_connect_refused_by_rst(lab: Lab, runs: Path) -> None:
    result = run_experiment(C1, lab, runs)
    f = result.evidence.facts
    assert result.verdict.status == "holds", result.verdict.summary
    assert f["error"]["op"] == "connect"
    assert f["error"]["errno"] == "ECONNREFUSED"
    assert f["client_exit"] == 1
    assert not f["connected"]
    server = f"{lab.config.server_ip}:{lab.config.port}"
    for host in ("client", "server"):
        wire = f["wire"][host]
        assert wire["syn"]["flags"] == "S"
        assert wire["syn"]["dst"] == server
        assert "R" in wire["rst"]["flags"]
        assert wire["rst"]["src"] == server
        assert wire["rst"]["ack"] == (wire["syn"]["seq"] + 1) % 2**32
    assert f["counters"]["server"].get("Tcp.OutRsts", 0) >= 1
    assert f["counters"]["client"].get("Tcp.AttemptFails", 0) >= 1
    assert any("ECONNREFUSED" in line for line in result.evidence.observations)
    assert_artifacts(result)


def test_c3_handshake_then_queued_then_accept(lab: Lab, runs: Path) -> None:
    result = run_experiment(C3, lab, runs)
    f = result.evidence.facts
    assert result.verdict.status == "holds", result.verdict.summary
    hs = f["handshake"]
    assert [hs[n]["flags"] for n in ("syn", "synack", "ack")] == ["S", "SA", "A"]
    assert [(hs[n]["rel_seq"], hs[n]["rel_ack"]) for n in ("syn", "synack", "ack")] == [
        (0, 0), (0, 1), (1, 1)]
    assert hs["synack"]["ack"] == (hs["syn"]["seq"] + 1) % 2**32
    assert hs["ack"]["ack"] == (hs["synack"]["seq"] + 1) % 2**32
    assert hs["syn"]["mss"]
    assert hs["synack"]["mss"]
    assert hs["syn"]["ts"] <= hs["synack"]["ts"] <= hs["ack"]["ts"]
    assert f["syn_to_synack_us"] >= 0
    assert f["synack_to_ack_us"] >= 0
    # The kernel had the connection (ESTABLISHED; CLOSE-WAIT once the post's client has sent
    # and closed, a state only reached from ESTABLISHED) in the accept queue before accept().
    assert f["conn_state"] in ("ESTAB", "CLOSE-WAIT")
    assert f["listener_recv_q"] == 1
    assert f["ss_t"] < f["accepted_t"]
    assert f["accepted_t"] > hs["ack"]["ts"]
    assert f["connected_t"] < f["accepted_t"]
    assert "SYN_RECEIVED" in result.verdict.summary
    assert_artifacts(result)


def test_c4_byte_stream_read_in_pieces(lab: Lab, runs: Path) -> None:
    result = run_experiment(C4, lab, runs)
    f = result.evidence.facts
    assert result.verdict.status == "holds", result.verdict.summary
    assert f["received"] == f["sent"] == "hello,world"
    assert f["recv_pieces"] == ["hel", "lo,", "wor", "ld", ""]
    assert f["wire_bytes"] == "hello,world"
    assert_artifacts(result)
