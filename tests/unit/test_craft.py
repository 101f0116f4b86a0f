"""Packets made by hand: the request checked here, lab-craft's command line (pure), its answer
read back; lab-craft itself checked in-process for the traffic rule; scapy only where asked."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json

import pytest

from socketlab.act.craft import Craft, craft, craft_argv
from socketlab.errors import ConfigError
from socketlab.lab.assets import COMPOSE_FILE, IMAGE_CONTEXT
from socketlab.lab.composefile import read_topology
from socketlab.lab.config import LabConfig
from socketlab.lab.process import ExecResult
from socketlab.observe.capture import HostCapture
from socketlab.observe.pcap import scapy_packets
from tests.unit.conftest import cli, loaded_after

LAB = ["192.168.33.5", "192.168.33.6"]


def test_a_lone_syn_is_one_json_spec_and_the_labs_addresses():
    argv = craft_argv(Craft("tcp", flags="S"), "192.168.33.5", LAB, port=6666)
    assert argv[:9] == ["lab-craft", "--allow", "192.168.33.5,192.168.33.6", "--count", "1",
                        "--interval", "0", "--answer", "0"]
    assert json.loads(argv[-1]) == {"proto": "tcp", "dst": "192.168.33.5", "dport": 6666, "flags": "S"}


def test_a_df_datagram_and_a_scapy_expression():
    udp = craft_argv(Craft("udp", df=True, size=1400, dport=9), "192.168.33.5", LAB, port=6666)
    assert json.loads(udp[-1]) == {"proto": "udp", "dst": "192.168.33.5", "dport": 9, "size": 1400,
                                   "df": True}
    expr = craft_argv(Craft(scapy="IP(dst='server')/ICMP()"), "server", LAB, port=6666, show=True)
    assert json.loads(expr[-1]) == {"scapy": "IP(dst='server')/ICMP()"}
    assert "--show" in expr


@pytest.mark.parametrize(("fields", "error"), [
    ({"proto": "sctp"}, "unknown protocol"), ({"count": 0}, "count 0"), ({"count": 101}, "count 101"),
    ({"dport": 70000}, "dport 70000"), ({"ttl": 0}, "ttl 0"), ({"flags": "SX"}, "not TCP flags"),
    ({"proto": "udp", "flags": "S"}, "not TCP flags"), ({"answer": 60}, "out of range"),
])
def test_a_request_that_cannot_work_is_refused_here(fields, error):
    with pytest.raises(ConfigError, match=error):
        Craft(**fields)


class Lab:
    config = LabConfig()
    topology = read_topology(COMPOSE_FILE, config.compose_env(), lab_image=config.image)

    def __init__(self, answer: ExecResult) -> None:
        self.answer, self.calls = answer, []

    def exec(self, host, argv, *, timeout=None):
        self.calls.append((host, argv, timeout))
        return self.answer


def test_what_lab_craft_printed_is_what_was_sent_and_answered():
    lab = Lab(ExecResult(0, '{"sent": "IP / TCP a > b S", "hex": "45"}\n'
                            '{"answer": "IP / TCP b > a RA", "hex": "45"}\n', "", 0.2))
    done = craft(lab, "client", Craft(answer=1.0))
    assert (done.sent, done.answers) == (["IP / TCP a > b S"], ["IP / TCP b > a RA"])
    host, argv, timeout = lab.calls[0]
    assert (host, argv[0]) == ("client", "lab-craft")
    assert timeout >= 11  # bounded in the host: the answer's wait and some


def test_a_destination_outside_the_lab_is_refused_before_the_host():
    lab = Lab(ExecResult(0, "", "", 0.1))
    with pytest.raises(ConfigError, match="'10.0.0.1' is not a host of this lab"):
        craft(lab, "client", Craft(to="10.0.0.1"))
    assert lab.calls == []


def test_lab_crafts_refusal_is_the_error():
    lab = Lab(ExecResult(2, "", "WARNING: noise\nlab-craft: destination 10.0.0.1 is not a host\n", 0.1))
    with pytest.raises(ConfigError, match="^destination 10.0.0.1 is not a host$"):
        craft(lab, "client", Craft(scapy="IP(dst='10.0.0.1')/UDP()"))


def _lab_craft():
    path = IMAGE_CONTEXT / "bin" / "lab-craft"
    loader = importlib.machinery.SourceFileLoader("lab_craft", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("lab_craft", loader))
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("spec", [
    {"proto": "udp", "dst": "192.168.33.1"},                       # the bridge's gateway: the Docker host
    {"scapy": "IP(dst='8.8.8.8')/ICMP()"},
    {"scapy": "IP(dst=['192.168.33.5', '192.168.33.9'])/ICMP()"},  # one of several
])
def test_lab_craft_sends_nothing_outside_the_lab(spec):
    craft_module = _lab_craft()
    with pytest.raises(SystemExit) as info:
        craft_module.packets(spec, set(LAB), 1)
    assert info.value.code == 2


def test_lab_craft_builds_the_packets_asked_for():
    craft_module = _lab_craft()
    (syn,) = craft_module.packets({"proto": "tcp", "dst": "192.168.33.5", "dport": 6666, "flags": "S"},
                                  set(LAB), 1)
    assert (syn["TCP"].dport, str(syn["TCP"].flags)) == (6666, "S")
    (big,) = craft_module.packets({"proto": "udp", "dst": "192.168.33.5", "df": True, "size": 1400},
                                  set(LAB), 1)
    assert (len(bytes(big)), str(big["IP"].flags)) == (1400, "DF")
    assert len(craft_module.packets({"proto": "icmp", "dst": "192.168.33.6"}, set(LAB), 3)) == 3
    with pytest.raises(SystemExit):
        craft_module.packets({"scapy": "__import__('os')"}, set(LAB), 1)  # no builtins to reach


def test_a_capture_hands_out_scapy_packets(tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    path = tmp_path / "client.pcap"
    wrpcap(str(path), [Ether() / IP(src="10.9.0.6", dst="10.9.0.5") / TCP(dport=6666, flags="S")])
    (pkt,) = HostCapture("client", path, 1, 1, 0).scapy()
    assert pkt[TCP].flags == "S"
    assert [p[IP].dst for p in scapy_packets(path)] == ["10.9.0.5"]


def test_the_cli_and_the_run_path_import_no_heavy_library():
    loaded = loaded_after("from socketlab.cli.app import build_parser\nbuild_parser()\n"
                          "import socketlab.act.programs, socketlab.act.craft, socketlab.present.terminal, "
                          "socketlab.observe.capture, socketlab.cli.run, socketlab.cli.lab")
    assert "socketlab.observe.capture" in loaded
    heavy = {"scapy", "docker", "matplotlib", "yaml", "http", "email", "requests"}
    assert {m.split(".")[0] for m in loaded} & heavy == set()


@pytest.mark.parametrize("argv", [["craft", "client", "--count", "0"], ["craft", "client", "sctp"],
                                  ["craft", "client", "udp", "--flags", "S"],
                                  ["craft", "client", "--ttl", "300"]])
def test_craft_options_that_cannot_work_are_usage_errors(argv, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code, out, _err = cli(*argv)
    assert (code, out) == (64, "")
