"""The swarm engine without a swarm: placement, the compose document as overlays and
containers, the refusals, the VXLAN reading, and the failure paths against fake engines."""

from __future__ import annotations

import pytest
from scapy.all import IP, TCP, UDP, VXLAN, Ether, wrpcap

from socketlab.errors import ConfigError, SwarmError
from socketlab.lab.engine_swarm import AddressReserved, SwarmEngine
from socketlab.lab.swarm import Swarm, SwarmNode, parse_place, place_hosts
from socketlab.lab.swarm_spec import container_specs, duration_ns, network_specs
from socketlab.observe.underlay import read_vxlan, vxlan_view

DOC = {  # what `compose config` prints for docker-compose.yml, shortened
    "networks": {"labnet": {"internal": True, "ipam": {"config": [{"subnet": "192.168.140.0/24"}]},
                            "labels": {"io.socketlab.lab": "1"}}},
    "services": {
        "server": {"image": "socketlab/lab:latest", "init": True, "cap_add": ["NET_ADMIN"],
                   "command": ["lab-host", "server"], "build": {"context": "images/lab"},
                   "environment": {"SOCKETLAB_MODE": "idle", "SOCKETLAB_PORT": "6666"},
                   "labels": {"io.socketlab.lab": "1"},
                   "healthcheck": {"test": ["CMD", "lab-ready"], "interval": "1s",
                                   "timeout": "2s", "retries": 30},
                   "networks": {"labnet": {"ipv4_address": "192.168.140.5"}}},
        "client": {"image": "socketlab/lab:latest", "init": True, "cap_add": ["NET_ADMIN"],
                   "command": ["lab-host", "client"], "depends_on": {"server": {}},
                   "environment": {"SOCKETLAB_MODE": "idle"},
                   "networks": {"labnet": {"ipv4_address": "192.168.140.6"}}},
    },
}


def node(name: str, state: str = "ready", availability: str = "active",
         endpoint: str | None = "unix:///x") -> SwarmNode:
    return SwarmNode(name, f"id-{name}", f"host-{name}", "worker", state, availability,
                     f"10.0.0.{name[-1]}", endpoint)


# -- placement --------------------------------------------------------------------------------
def test_hosts_go_round_robin_over_the_nodes_unless_placed():
    nodes = [node("n1"), node("n2")]

    assert place_hosts(["server", "client"], nodes, {}) == {"server": "n1", "client": "n2"}
    assert place_hosts(["server", "client"], nodes, {"client": "n1"}) == {"server": "n1",
                                                                          "client": "n1"}


def test_unplaced_hosts_go_only_to_nodes_that_can_run_them():
    nodes = [node("n1"), node("n2", state="down"), node("n3", endpoint=None), node("n4")]

    assert place_hosts(["server", "client"], nodes, {}) == {"server": "n1", "client": "n4"}


def test_a_node_is_found_by_its_hostname_too():
    assert place_hosts(["server"], [node("n1")], {"server": "host-n1"}) == {"server": "n1"}


def test_an_unlabelled_node_is_named_with_the_way_to_label_it():
    with pytest.raises(SwarmError, match="no swarm node is named or labelled 'db'") as e:
        place_hosts(["server"], [node("n1")], {"server": "db"})
    assert "--label-add socketlab.node=db" in e.value.hint


@pytest.mark.parametrize(("kwargs", "said"), [({"state": "down"}, "is down"),
                                              ({"availability": "drain"}, "is drain"),
                                              ({"endpoint": None}, "no Docker endpoint")])
def test_a_node_that_cannot_run_a_host_is_refused(kwargs, said):
    with pytest.raises(SwarmError, match=said):
        place_hosts(["server", "client"], [node("n1"), node("n2", **kwargs)], {"client": "n2"})


def test_placing_a_host_the_lab_does_not_have_is_refused():
    with pytest.raises(ConfigError, match="placement names db"):
        place_hosts(["server", "client"], [node("n1")], {"db": "n1"})


def test_place_option_reads_host_equals_node():
    assert parse_place("server=n1, client=n2") == {"server": "n1", "client": "n2"}
    assert parse_place(None) == {}
    with pytest.raises(ConfigError, match="not HOST=NODE"):
        parse_place("server:n1")


# -- the swarm's endpoints --------------------------------------------------------------------
class FakeEngine:
    def __init__(self, swarm: dict) -> None:
        self.swarm = swarm

    def ping(self) -> bool:
        return True

    def info(self) -> dict:
        return {"Swarm": self.swarm}


def test_a_worker_alone_is_not_a_manager():
    worker = FakeEngine({"LocalNodeState": "active", "ControlAvailable": False, "NodeID": "w"})
    swarm = Swarm(["tcp://w:2375"], connect=lambda _url: worker)

    with pytest.raises(SwarmError, match="none of the endpoints .* is a swarm manager") as e:
        _ = swarm.manager
    assert "docker node ls" in e.value.hint


def test_an_engine_outside_any_swarm_says_how_to_make_one():
    alone = FakeEngine({"LocalNodeState": "inactive"})
    swarm = Swarm(["tcp://a:2375"], connect=lambda _url: alone)

    with pytest.raises(SwarmError, match="is not part of a swarm") as e:
        _ = swarm.manager
    assert "swarm init" in e.value.hint


def test_an_endpoint_that_does_not_answer_is_one_error():
    def refuse(url):
        raise OSError("connection refused")

    with pytest.raises(SwarmError, match="tcp://gone:2375 does not answer"):
        _ = Swarm(["tcp://gone:2375"], connect=refuse).manager


def test_swarm_settings_name_the_nodes_or_find_the_sandbox(tmp_path):
    given = Swarm.from_settings({"SOCKETLAB_SWARM_NODES": "tcp://a:2376, tcp://b:2376"})
    assert given.endpoints == ["tcp://a:2376", "tcp://b:2376"]
    with pytest.raises(SwarmError, match="no swarm sandbox 'slswarm' is up"):
        Swarm.from_settings({"SOCKETLAB_SANDBOX_DIR": str(tmp_path)})


# -- the compose document as overlays and containers ------------------------------------------
def test_each_network_becomes_an_attachable_overlay_with_its_subnet():
    [net] = network_specs(DOC, "lab1")

    assert net["name"] == "lab1_labnet"
    assert (net["driver"], net["attachable"], net["internal"]) == ("overlay", True, True)
    assert net["ipam"]["Config"] == [{"Subnet": "192.168.140.0/24"}]
    assert net["labels"]["com.docker.compose.project"] == "lab1"
    assert net["labels"]["io.socketlab.lab"] == "1"


def test_each_service_becomes_a_container_on_its_node_with_its_address():
    server, client = container_specs(DOC, "lab1", {"server": "n1", "client": "n2"})

    assert (server.node, client.node) == ("n1", "n2")
    assert server.networks == [("lab1_labnet", "192.168.140.5")]
    assert client.networks == [("lab1_labnet", "192.168.140.6")]
    create = server.create
    assert create["name"] == "lab1-server"
    assert (create["image"], create["init"], create["cap_add"]) == ("socketlab/lab:latest", True,
                                                                    ["NET_ADMIN"])
    assert create["labels"]["com.docker.compose.service"] == "server"  # how the Lab finds it
    assert create["labels"]["io.socketlab.node"] == "n1"
    assert create["healthcheck"] == {"test": ["CMD", "lab-ready"], "interval": 1_000_000_000,
                                     "timeout": 2_000_000_000, "retries": 30}
    assert "build" not in create
    assert "depends_on" not in client.create


def test_a_sidecar_goes_to_its_hosts_node_and_shares_its_namespace():
    doc = {"services": {**DOC["services"],
                        "server-instruments": {"image": "socketlab/lab:latest",
                                               "network_mode": "service:server"}}}

    specs = container_specs(doc, "lab1", {"server": "n1", "client": "n2"})

    sidecar = specs[-1]
    assert (sidecar.service, sidecar.node, sidecar.share_with) == ("server-instruments", "n1",
                                                                   "server")
    assert sidecar.networks == []


def test_a_host_on_two_networks_is_refused_before_anything_is_made():
    """A router joins two overlays; the engine cannot attach the second before it starts."""
    doc = {"networks": {**DOC["networks"], "wan": {"internal": True}},
           "services": {**DOC["services"],
                        "r1": {"image": "socketlab/lab:latest",
                               "networks": {"labnet": {"ipv4_address": "192.168.140.2"},
                                            "wan": None}}}}

    with pytest.raises(ConfigError, match=r"service 'r1' is on 2 networks \(labnet, wan\)") as e:
        container_specs(doc, "lab1", {"server": "n1", "client": "n2", "r1": "n1"})
    assert "without --engine swarm" in e.value.hint


@pytest.mark.parametrize(("key", "value", "said"), [
    ("volumes", ["./data:/data"], "volumes"), ("ports", ["80:80"], "published ports"),
    ("privileged", True, "privileged"), ("network_mode", "host", "network_mode 'host'"),
    ("dns", ["1.1.1.1"], "sets `dns`")])
def test_what_cannot_cross_to_another_machine_is_refused(key, value, said):
    doc = {"services": {"server": {**DOC["services"]["server"], key: value}}}

    with pytest.raises(ConfigError, match=said):
        container_specs(doc, "lab1", {"server": "n1"})


def test_a_service_with_no_node_is_refused():
    with pytest.raises(ConfigError, match="'client' has no node"):
        container_specs(DOC, "lab1", {"server": "n1"})


@pytest.mark.parametrize(("text", "ns"), [("1s", 10**9), ("500ms", 5 * 10**8),
                                          ("1m30s", 90 * 10**9), (2, 2 * 10**9)])
def test_compose_durations(text, ns):
    assert duration_ns(text) == ns


def test_a_duration_compose_would_not_read_is_refused():
    with pytest.raises(ConfigError, match="duration"):
        duration_ns("1 second")


# -- VXLAN on the underlay --------------------------------------------------------------------
def test_vxlan_packets_are_read_outer_vni_and_inner_frame(tmp_path):
    inner = Ether() / IP(src="192.168.140.6", dst="192.168.140.5") / TCP(sport=40000, dport=6666,
                                                                         flags="S")
    data = Ether() / IP(src="192.168.140.6", dst="192.168.140.5") / TCP(
        sport=40000, dport=6666, flags="PA") / b"hello,world"
    pkts = [Ether() / IP(src="10.77.0.2", dst="10.77.0.1") / UDP(sport=50000, dport=4789)
            / VXLAN(vni=4099, flags=0x08) / frame for frame in (inner, data)]
    pkts.append(Ether() / IP(src="10.77.0.2", dst="10.77.0.1") / UDP(sport=7946, dport=7946) / b"x")
    path = str(tmp_path / "underlay.pcap")
    wrpcap(path, pkts)

    frames = read_vxlan(path)

    assert [f.vni for f in frames] == [4099, 4099]  # the gossip datagram is not VXLAN
    assert [(f.outer.src, f.outer.dst, f.outer.dport) for f in frames] == \
        [("10.77.0.2", "10.77.0.1", 4789)] * 2
    assert [f.inner.flags for f in frames] == ["S", "PA"]
    assert frames[1].inner.payload == b"hello,world"
    view = vxlan_view(frames, {"192.168.140.6": "client", "192.168.140.5": "server"})
    assert "10.77.0.2:50000 > 10.77.0.1:4789" in view
    assert "client:40000 > server:6666 TCP [PA] 11 bytes" in view


# -- an address the overlay keeps reserved ------------------------------------------------------
class RetryingEngine(SwarmEngine):
    """The engine with its Docker steps recorded: the first attach finds its address taken."""

    def __init__(self, swarm) -> None:
        self.said: list[str] = []
        self.steps: list[str] = []
        super().__init__("lab1", swarm=swarm, progress=self.said.append)

    def _copy_images(self, specs) -> None:
        self.steps.append("images")

    def _create_on_nodes(self, doc, specs) -> None:
        self.steps.append("create")
        if self.steps.count("create") == 1:
            raise AddressReserved("node n2 could not attach client at its address (Address "
                                  "already in use)")

    def remove(self) -> list[str]:
        self.steps.append("remove")
        return []


def test_an_address_kept_reserved_gets_one_more_try_on_a_fresh_overlay():
    class Nodes:
        source = "test"

        def nodes(self):
            return [node("n1"), node("n2")]

    from socketlab.lab.assets import COMPOSE_FILE
    from socketlab.lab.composefile import read_topology
    from socketlab.lab.config import LabConfig

    settings = LabConfig(subnet="192.168.140.0/24").compose_env()
    topology = read_topology(COMPOSE_FILE, settings, lab_image="socketlab/lab:latest")
    engine = RetryingEngine(Nodes())

    engine.create(topology, settings, lab_image="socketlab/lab:latest")

    assert engine.steps == ["images", "create", "remove", "create"]
    assert any("trying once more on a fresh one" in m for m in engine.said)
