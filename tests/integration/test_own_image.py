"""A host that runs an image of its own (FROM scratch: no shell, no tools): capture, shaping and
a packet-exact fault still work, through the lab-image sidecar that shares its namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketlab.act import shaping
from socketlab.act.programs import Options, run_programs, tcp_client_argv
from socketlab.errors import LabError
from socketlab.lab.lab import Lab
from socketlab.observe.capture import Capture
from socketlab.observe.pcap import read_pcap
from tests.conftest import lab_config

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "own_image"
TOPOLOGY = """\
services:
  server:                      # the user's own image: an echo server, nothing else
    image: {own}
    networks: {{labnet: {{ipv4_address: 192.168.33.5}}}}
  client:
    image: {lab}
    networks: {{labnet: {{ipv4_address: 192.168.33.6}}}}
networks:
  labnet: {{internal: true, ipam: {{config: [{{subnet: 192.168.33.0/24}}]}}}}
"""


@pytest.fixture(scope="module")
def own_lab(docker_client, lab_image, tmp_path_factory):
    """The echo image (built from the lab image's files; cached by the engine after the first
    build), and a lab whose server runs it."""
    tag = "socketlab-test/own-echo:" + lab_image.tag.rsplit(":", 1)[-1]
    docker_client.images.build(path=str(HERE), tag=tag, buildargs={"LAB": lab_image.tag}, rm=True)
    topo = tmp_path_factory.mktemp("own") / "own.yml"
    topo.write_text(TOPOLOGY.format(own=tag, lab=lab_image.tag))
    with Lab(lab_config("-own-image", topology=str(topo)), client=docker_client) as lab:
        yield lab


def echo_once(lab: Lab):
    """The post's TCP client against the echo server (which prints nothing: ready by its port)."""
    client = tcp_client_argv(host=lab.topology.ip("server"), port=6666)
    return run_programs(lab, Options(proto="tcp", server=False), None, client)


def test_the_own_image_has_no_shell_and_its_sidecar_has_the_tools(own_lab):
    server = own_lab.topology.host("server")
    assert (server.instruments, server.tools) == ("sidecar", "server-instruments")
    try:
        no_shell = own_lab.exec("server", ["sh", "-c", "true"]).exit_code
    except LabError:
        no_shell = "refused"
    assert no_shell != 0
    seen = own_lab.exec("server", ["ip", "-4", "-o", "addr", "show", "eth0"], instruments=True)
    assert f"{server.ip}/" in seen.stdout  # the sidecar is in the server's own namespace
    routes = own_lab.exec("server", ["ip", "route"], instruments=True).stdout
    assert "default" not in routes  # and made it a lab host: no way out
    assert [r["name"] for r in own_lab.status()] == ["server", "client"]


def test_capture_in_the_own_image_host_goes_through_the_sidecar(own_lab, tmp_path):
    with Capture(own_lab, ["client", "server"], tmp_path, name="own") as cap:
        run = echo_once(own_lab)
    assert run.client_exit == 0, run
    server_ip = own_lab.topology.ip("server")
    seen = read_pcap(cap.result["server"].pcap)
    echoed = [p for p in seen if p.src == server_ip and p.proto == "tcp" and p.length]
    assert echoed, [(p.src, p.flags, p.length) for p in seen]  # the echo, captured in its host
    assert sum(p.length for p in echoed) == len(b"hello,world")


def test_a_packet_exact_fault_on_the_own_image_host_fires_once(own_lab, tmp_path):
    fault = shaping.parse_fault("drop tcp flags=SA nth=1")
    with shaping.shaped(own_lab, "server", "", faults=[fault]) as record, \
            Capture(own_lab, ["client"], tmp_path, name="fault") as cap:
        run = echo_once(own_lab)
    assert run.client_exit == 0, run
    server_ip = own_lab.topology.ip("server")
    pkts = read_pcap(cap.result["client"].pcap)
    syns = [p for p in pkts if p.flags == "S" and p.dst == server_ip]
    synacks = [p for p in pkts if p.flags == "SA" and p.src == server_ip]
    assert len(syns) == 2  # the first SYN-ACK never left the server: the client sent its SYN again
    assert synacks
    assert all(sa.ts > syns[1].ts for sa in synacks)  # every SYN-ACK it saw came after that
    assert len(record["nfq_faults"]) == 1
    assert record["left"] == []  # cleared in the sidecar: nothing left in the server's namespace
