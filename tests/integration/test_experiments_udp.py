"""C2, C5, C8 in a real lab: the verdicts, and the facts they rest on."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketlab.experiments.base import run_experiment
from socketlab.experiments.udp import BIG_SIZE, C2, C5, C8
from socketlab.lab.lab import Lab
from tests.conftest import assert_artifacts

pytestmark = pytest.mark.integration




def test_c2_client_finishes_without_a_server(lab: Lab, tmp_path: Path) -> None:
    result = run_experiment(C2, lab, tmp_path)
    f = result.evidence.facts
    assert result.verdict.status == "holds", result.verdict.summary
    assert f["sendto_returns"] == [11, 0]  # the message, then the closing empty datagram
    assert (f["client_exit"], f["client_error"]) == (0, None)
    assert "connected" not in f["client_calls"]
    assert f["left_client"] == f["arrived_server"] == [11, 0]
    assert f["icmp_sent_by_server"]
    assert set(f["icmp_received_by_client"]) == {"port unreachable"}
    assert f["icmp_quoting_sent_datagram"] == len(f["icmp_received_by_client"])
    assert all(q.startswith(f"udp {lab.config.client_ip}:")
               and f"-> {lab.config.server_ip}:{lab.config.port} " in q for q in f["icmp_quotes"])
    assert f["counters"]["server"]["Udp.NoPorts"] == 2  # one per datagram
    assert f["counters"]["server"]["Icmp.OutDestUnreachs"] >= 1
    assert f["counters"]["client"]["Icmp.InDestUnreachs"] >= 1
    assert_artifacts(result)


def test_c5_recvfrom_cuts_each_datagram(lab: Lab, tmp_path: Path) -> None:
    result = run_experiment(C5, lab, tmp_path)
    f = result.evidence.facts
    assert result.verdict.status == "holds", result.verdict.summary
    assert f["recvfrom_returns"] == ["hel", "hel", ""]
    assert "lo," not in f["recvfrom_returns"]
    assert f["wire_client"] == f["wire_server"] == [11, 11, 0]
    assert f["server_counters"]["Udp.InDatagrams"] == 3
    assert f["server_counters"]["Udp.InErrors"] == f["server_counters"]["Udp.RcvbufErrors"] == 0
    assert_artifacts(result)


def test_c8_udp_fragments_tcp_segments(lab: Lab, tmp_path: Path) -> None:
    result = run_experiment(C8, lab, tmp_path)
    f = result.evidence.facts
    assert result.verdict.status == "holds", result.verdict.summary
    mtu = f["mtu"]["client"]
    assert mtu == f["mtu"]["server"]
    assert mtu < BIG_SIZE
    pieces = f["udp_fragments"]
    assert len(pieces) == -(-(BIG_SIZE + 8) // ((mtu - 20) // 8 * 8))  # ceil(UDP bytes / room)
    assert [p[2] for p in pieces] == [True] * (len(pieces) - 1) + [False]  # MF but on the last
    assert f["udp_counters"]["client"]["Ip.FragCreates"] == len(pieces)
    assert f["udp_counters"]["server"]["Ip.ReasmOKs"] == 1
    assert f["udp_received"] == [BIG_SIZE]
    mss = min(f["tcp_mss"])
    assert mss == mtu - 40
    assert len(f["tcp_segments"]) > 1
    assert max(f["tcp_segments"]) <= mss
    assert sum(f["tcp_segments"]) == f["tcp_received"] == BIG_SIZE
    assert all(f["tcp_df"])
    assert f["tcp_fragments"] == 0
    assert f["tcp_frag_creates"] == 0
    assert sum(name.endswith("ladder (SVG)") for name in result.evidence.artifacts) == 2
    assert sum(name.endswith("pcap)") for name in result.evidence.artifacts) == 4  # 2 runs x 2 hosts
    assert_artifacts(result)
