"""Capture on both hosts, with a real lab: the post's exchanges seen from each side, a bounded
UDP burst captured whole, and no tcpdump (nor pcap) left in a host whatever happened."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.all import rdpcap

from socketlab.act import instruments
from socketlab.act.programs import Options, run_pair
from socketlab.errors import CaptureError
from socketlab.lab.lab import Lab
from socketlab.observe import analysis as an
from socketlab.observe import capture as capmod
from socketlab.observe.capture import Capture
from socketlab.observe.events import parse_output
from socketlab.observe.offloads import restore_offloads, set_offloads

HOSTS = ("server", "client")  # the post's two hosts (the default topology)
pytestmark = pytest.mark.integration

BURST = 50_000



def _tcpdumps(lab: Lab) -> dict[str, str]:
    """The tcpdump processes still running in each host (pgrep's output; '' if none)."""
    return {h: lab.exec(h, ["pgrep", "-a", "tcpdump"], timeout=10).stdout.strip() for h in HOSTS}


def _leftover_pcaps(lab: Lab) -> dict[str, str]:
    cmd = ["sh", "-c", "ls /tmp/socketlab-*.pcap 2>/dev/null || true"]
    return {h: lab.exec(h, cmd, timeout=10).stdout.strip() for h in HOSTS}


@pytest.fixture(scope="module")
def tcp_capture(lab: Lab, tmp_path_factory: pytest.TempPathFactory):
    with Capture(lab, HOSTS, tmp_path_factory.mktemp("runs"), name="tcp") as cap:
        run = run_pair(lab, Options(proto="tcp"))
    assert run.ok, run
    return cap.result


@pytest.fixture(scope="module")
def udp_capture(lab: Lab, tmp_path_factory: pytest.TempPathFactory):
    with Capture(lab, HOSTS, tmp_path_factory.mktemp("runs"), name="udp") as cap:
        run = run_pair(lab, Options(proto="udp"))
    assert run.ok, run
    return cap.result, run


@pytest.mark.parametrize("host", HOSTS)
def test_tcp_handshake_and_data_in_both_captures(lab: Lab, tcp_capture, host: str) -> None:
    cfg = lab.config
    hc = tcp_capture[host]
    assert hc.pcap == tcp_capture.run_dir / f"{host}.pcap"
    pkts = an.read_pcap(hc.pcap)
    hs = an.handshake(pkts, (cfg.server_ip, cfg.port))
    assert hs is not None
    assert (hs.syn.src, hs.syn.flags) == (cfg.client_ip, "S")
    assert hs.synack is not None
    assert hs.synack.flags == "SA"
    assert hs.ack is not None
    assert hs.ack.flags == "A"
    flow = an.tcp_flow(pkts, (cfg.server_ip, cfg.port))
    sent = [s for s in flow.data if s.from_client]
    assert [s.pkt.payload for s in sent] == [b"hello,world"]
    assert (hc.dropped, hc.if_dropped) == (0, 0)
    assert hc.captured == hc.received == len(pkts)
    assert hc.caught_up


def test_tcp_capture_switched_offloads_off_and_back(tcp_capture) -> None:
    for rep in tcp_capture.offloads:
        assert rep.after["tcp-segmentation-offload"] is False, rep.describe()
        assert rep.after["tx-checksumming"] is False, rep.describe()
    for before, back in zip(tcp_capture.offloads, tcp_capture.restored, strict=True):
        assert back.after == before.before, back.describe()


@pytest.mark.parametrize("host", HOSTS)
def test_udp_datagram_whole_on_the_wire_though_server_read_three(udp_capture, lab: Lab,
                                                                 host: str) -> None:
    result, run = udp_capture
    reads = [e.fields["data"] for e in run.server_events if e.name == "recvfrom"]
    assert reads[0] == "hel"  # recvfrom(3): the rest of the datagram is gone for the program
    dgrams = an.udp_datagrams(an.read_pcap(result[host].pcap), lab.config.port)
    hello = [d for d in dgrams if d.pkt.src == lab.config.client_ip and d.length == 11]
    assert [d.payload for d in hello] == [b"hello,world"]
    assert result[host].dropped == 0
    assert result[host].complete


def test_pcaps_readable_by_scapy(tcp_capture, udp_capture) -> None:
    for result in (tcp_capture, udp_capture[0]):
        for hc in result.hosts.values():
            frames = rdpcap(str(hc.pcap))
            assert len(frames) == hc.captured > 0


def test_nothing_left_in_the_hosts_after_captures(lab: Lab, tcp_capture, udp_capture) -> None:
    assert _tcpdumps(lab) == {"server": "", "client": ""}
    assert _leftover_pcaps(lab) == {"server": "", "client": ""}


def _traffic_that_fails(lab: Lab, cap: Capture, seen: dict[str, str]) -> None:
    with cap:
        seen.update(_tcpdumps(lab))
        raise RuntimeError("boom")


def test_failure_in_the_traffic_stops_every_tcpdump(lab: Lab, tmp_path: Path) -> None:
    cap = Capture(lab, HOSTS, tmp_path, name="boom")
    during: dict[str, str] = {}
    with pytest.raises(RuntimeError, match="boom"):
        _traffic_that_fails(lab, cap, during)
    assert all(during.values()), during  # both were running during the traffic
    assert _tcpdumps(lab) == {"server": "", "client": ""}
    assert all(hc.pcap.exists() for hc in cap.result.hosts.values())  # the evidence is kept


def test_failure_to_start_one_host_stops_the_other(lab: Lab, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real = capmod._Tcpdump.wait_ready

    def fail_on_client(self, timeout: float) -> None:
        real(self, timeout)
        if self.host == "client":
            raise CaptureError("client refused to start (test)")

    monkeypatch.setattr(capmod._Tcpdump, "wait_ready", fail_on_client)
    with pytest.raises(CaptureError, match="test"), Capture(lab, HOSTS, tmp_path):
        pytest.fail("the body must not run")
    assert _tcpdumps(lab) == {"server": "", "client": ""}
    assert _leftover_pcaps(lab) == {"server": "", "client": ""}
    assert list(tmp_path.iterdir()) == []


def test_bad_filter_is_an_error_and_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="did not start"):
        Capture(lab, HOSTS, tmp_path, bpf="port and and").start()
    assert _tcpdumps(lab) == {"server": "", "client": ""}


def test_offloads_off_and_back_on(lab: Lab) -> None:
    off = set_offloads(lab, HOSTS, enabled=False)
    try:
        for rep in off:
            assert not any(rep.after.values()), rep.describe()
    finally:
        back = restore_offloads(lab, off)
    for before, rep in zip(off, back, strict=True):
        assert rep.after == before.before, rep.describe()


def test_udp_burst_captured_whole_on_the_client(lab: Lab, tmp_path: Path) -> None:
    cfg = lab.config
    # a bound socket on the server (so no ICMP port unreachable), reading until 1 s of quiet
    sink = lab.start("server", instruments.argv("udp_sink", cfg.port, most=30.0), timeout=35)
    assert sink.wait_for(lambda ln: ln.startswith("listening"), 10)
    with Capture(lab, ["client"], tmp_path, name="burst") as cap:  # BURST small datagrams, at once
        sender = lab.exec("client", instruments.argv("udp_blast", cfg.server_ip, cfg.port, count=BURST,
                                                     size=16, most=10.0), timeout=20)
    sink.wait(35)
    assert instruments.summary(parse_output(sender.stdout))["sent"] == BURST, sender.stdout
    hc = cap.result["client"]
    burst = [p for p in an.read_pcap(hc.pcap) if p.proto == "udp" and p.dport == cfg.port
             and p.src == cfg.client_ip]
    measured = (f"{sender.stdout.strip()}; server {sink.stdout_lines[-1]}; tcpdump captured="
                f"{hc.captured} received={hc.received} dropped={hc.dropped}")
    assert (len(burst), hc.dropped, hc.if_dropped) == (BURST, 0, 0), measured
    assert hc.caught_up, measured


def test_a_tcpdump_slowed_down_still_gives_its_whole_capture(lab: Lab, tmp_path: Path,
                                                             docker_client) -> None:
    """What load does to a capture, made certain: the server's tcpdump is stopped (SIGSTOP)
    for 6 s, so its answer to SIGUSR1 comes late (the old 5 s wait failed the capture with
    "no matching output after 5 s"). The capture waits for it and is whole."""
    import threading

    cap = Capture(lab, HOSTS, tmp_path, name="slow").start()
    pid = cap._dumps["server"].pid

    def signal(sig: str) -> int:  # where tcpdump runs: the server's instruments
        return lab.exec("server", ["kill", sig, pid], timeout=10, instruments=True).exit_code

    wake = threading.Timer(6.0, lambda: signal("-CONT"))
    try:
        assert run_pair(lab, Options(proto="tcp")).ok
        assert signal("-STOP") == 0
        wake.start()
        result = cap.stop()
    finally:
        wake.cancel()
        signal("-CONT")
        if cap._dumps:
            cap._abort()
    assert result["server"].captured == result["server"].received > 0
    assert result["server"].caught_up
    assert _tcpdumps(lab) == {"server": "", "client": ""}
