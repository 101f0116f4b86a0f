"""The topology model and the compose files it is read from: the two shipped files, placement,
routes, rendering, and the one-line errors of broken files."""

from __future__ import annotations

import ipaddress

import pytest
import yaml

from socketlab.errors import ConfigError, UnknownHost
from socketlab.lab.assets import COMPOSE_FILE, ROOT
from socketlab.lab.composefile import (
    NO_HOST_ADDRESS_OPT,
    interpolate,
    parse,
    read_topology,
    render,
    routes_env,
    sidecar_spec,
)
from socketlab.lab.config import LabConfig
from socketlab.lab.subnets import pick_many

LAB = "socketlab/lab:test"
ROUTER_FILE = ROOT / "topologies" / "router.yml"
ROUTER_ENV = {"SOCKETLAB_IMAGE": LAB}  # its hosts run the lab image (NET_ADMIN is theirs)
ON_N = "services:\n  a: {image: x, networks: [n]}\nnetworks:\n"


def bundled(**settings):
    cfg = LabConfig(image=LAB, **settings)
    return read_topology(COMPOSE_FILE, cfg.compose_env(), lab_image=LAB)


def from_text(text: str, env=None):
    return parse(yaml.safe_load(text), env or {}, lab_image=LAB, source="t.yml")


def test_the_bundled_file_is_the_posts_two_hosts():
    topo = bundled()
    assert topo.names == ("server", "client")
    assert [(h.role, h.ip, h.instruments, h.image) for h in topo.hosts] == [
        ("server", "192.168.33.5", "inline", LAB), ("client", "192.168.33.6", "inline", LAB)]
    (net,) = topo.networks
    assert (net.name, net.subnet, net.mtu, net.internal) == ("labnet", "192.168.33.0/24", 1500, True)
    assert topo.routes() == {"server": [], "client": []}
    assert not topo.routed


def test_the_bundled_file_follows_the_lab_settings():
    topo = bundled(subnet="10.7.0.0/24", server_ip="10.7.0.9")
    assert topo.network("labnet").subnet == "10.7.0.0/24"
    assert (topo.ip("server"), topo.ip("client")) == ("10.7.0.9", "10.7.0.6")


def test_the_router_file_is_a_path_with_a_narrow_middle_link():
    topo = read_topology(ROUTER_FILE, ROUTER_ENV, lab_image=LAB)
    assert topo.names == ("client", "r1", "r2", "server")
    assert [h.role for h in topo.hosts] == ["client", "router", "router", "server"]
    assert topo.mtu_path("client", "server") == [1500, 1000, 1500]
    assert topo.ip("r1", "wan") == "192.168.34.2"
    assert topo.routed


def test_routes_go_through_the_nearest_router():
    topo = read_topology(ROUTER_FILE, ROUTER_ENV, lab_image=LAB)
    routes = topo.routes()
    assert routes["client"] == [("192.168.34.0/24", "192.168.33.2"), ("192.168.35.0/24", "192.168.33.2")]
    assert routes["r1"] == [("192.168.35.0/24", "192.168.34.3")]
    assert routes["server"] == [("192.168.33.0/24", "192.168.35.3"), ("192.168.34.0/24", "192.168.35.3")]


def test_the_router_files_spelled_out_routes_are_the_computed_ones():
    """The file carries its routes for plain compose; they must not drift from the topology."""
    topo = read_topology(ROUTER_FILE, ROUTER_ENV, lab_image=LAB)
    for host in topo.names:
        assert topo.compose["services"][host]["environment"]["SOCKETLAB_ROUTES"] == \
            routes_env(topo.routes()[host])


def test_placement_moves_networks_and_keeps_each_hosts_offset():
    topo = read_topology(ROUTER_FILE, ROUTER_ENV, lab_image=LAB)
    subnets = pick_many([], 3)
    moved = topo.place(dict(zip(["lan1", "wan", "lan2"], subnets, strict=True)))
    assert [n.subnet for n in moved.networks] == subnets
    assert moved.ip("client") == str(ipaddress.IPv4Network(subnets[0]).network_address + 6)
    assert moved.ip("r2", "lan2") == str(ipaddress.IPv4Network(subnets[2]).network_address + 3)
    assert moved.routes()["client"][0] == (subnets[1], moved.ip("r1", "lan1"))
    assert topo.ip("client") == "192.168.33.6"  # the original is unchanged


def test_placement_gives_hosts_without_addresses_the_lowest_free_ones():
    topo = from_text("""
services:
  a: {image: x, networks: [n]}
  b: {image: x, networks: {n: {ipv4_address: 10.0.0.2}}}
  c: {image: x, networks: [n]}
networks:
  n: {ipam: {config: [{subnet: 10.0.0.0/24}]}}
""")
    assert not topo.placed
    placed = topo.place()
    assert [h.ip for h in placed.hosts] == ["10.0.0.3", "10.0.0.2", "10.0.0.4"]


def test_a_file_without_networks_puts_every_host_on_the_default_one():
    topo = from_text("services:\n  a: {image: x}\n  b: {image: x}\n")
    assert [n.name for n in topo.networks] == ["default"]
    placed = topo.place({"default": "192.168.140.0/24"})
    assert [h.ip for h in placed.hosts] == ["192.168.140.2", "192.168.140.3"]
    with pytest.raises(ConfigError, match="network 'default' has no subnet"):
        topo.place()


def test_an_own_image_gets_a_sidecar_and_the_lab_image_does_not():
    topo = from_text("""
services:
  server: {image: my/service:1, networks: [n]}
  client: {image: socketlab/lab:test, networks: [n]}
  tool: {image: socketlab/lab:test, networks: [n], labels: {io.socketlab.instruments: sidecar}}
networks:
  n: {ipam: {config: [{subnet: 10.0.0.0/24}]}}
""")
    assert [(h.instruments, h.tools) for h in topo.hosts] == [
        ("sidecar", "server-instruments"), ("inline", "client"), ("sidecar", "tool-instruments")]
    assert topo.services() == ("server", "client", "tool", "server-instruments", "tool-instruments")


def test_roles_come_from_the_label_the_name_or_forwarding():
    topo = from_text("""
services:
  server: {image: x, networks: [a]}
  gw: {image: x, networks: [a, b], sysctls: [net.ipv4.ip_forward=1]}
  web: {image: x, networks: [b], labels: [io.socketlab.role=server]}
  box: {image: x, networks: [b]}
networks:
  a: {ipam: {config: [{subnet: 10.0.0.0/24}]}}
  b: {ipam: {config: [{subnet: 10.0.1.0/24}]}}
""")
    assert [h.role for h in topo.hosts] == ["server", "router", "server", "host"]
    assert topo.role_host("server").name == "server"
    assert [h.name for h in topo.by_role("server")] == ["server", "web"]


def test_interpolation_is_composes():
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("${A}-${B:-d}-${EMPTY:-e}-${EMPTY-f}-$A-$$A", env) == "1-d-e--1-$A"
    assert interpolate({"k": ["${A}", 3]}, env) == {"k": ["1", 3]}
    with pytest.raises(ConfigError, match="variable NEEDED is not set: give it"):
        interpolate("${NEEDED:?give it}", env, "t.yml")


def test_rendering_writes_addresses_labels_routes_and_forwarding():
    topo = read_topology(ROUTER_FILE, ROUTER_ENV, lab_image=LAB)
    doc = render(topo, lab_image=LAB, settings={"SOCKETLAB_PORT": "7000"})
    r1 = doc["services"]["r1"]
    assert r1["networks"] == {"lan1": {"ipv4_address": "192.168.33.2"},
                              "wan": {"ipv4_address": "192.168.34.2"}}
    assert r1["labels"]["io.socketlab.role"] == "router"
    assert r1["sysctls"]["net.ipv4.ip_forward"] == "1"
    assert doc["services"]["client"]["environment"]["SOCKETLAB_ROUTES"] == \
        "192.168.34.0/24 via 192.168.33.2;192.168.35.0/24 via 192.168.33.2"
    wan = doc["networks"]["wan"]
    assert wan["driver_opts"] == {NO_HOST_ADDRESS_OPT: "true", "com.docker.network.driver.mtu": "1000"}
    assert wan["internal"] is False
    assert wan["labels"]["io.socketlab.lab"] == "1"


def test_a_lab_image_host_with_a_command_of_its_own_starts_behind_lab_host():
    """Set up (sealed, routed) first, then the file's command, as the program user."""
    topo = from_text(f"""
services:
  a: {{image: {LAB}, command: ["python3", "/work/srv.py"], networks: [n]}}
  b: {{image: {LAB}, command: "echo hi", networks: [n]}}
  c: {{image: {LAB}, networks: [n]}}
  d: {{image: {LAB}, command: [lab-host, client], networks: [n]}}
networks:
  n: {{ipam: {{config: [{{subnet: 10.0.0.0/24}}]}}}}
""")
    doc = render(topo.place(), lab_image=LAB)
    assert [doc["services"][h]["command"] for h in "abcd"] == [
        ["lab-host", "host", "--", "python3", "/work/srv.py"],
        ["lab-host", "host", "--", "sh", "-c", "echo hi"],
        ["lab-host", "host"], ["lab-host", "client"]]


def test_rendering_a_single_network_lab_keeps_it_internal():
    doc = render(bundled(), lab_image=LAB, settings={})
    assert doc["networks"]["labnet"]["internal"] is True
    assert NO_HOST_ADDRESS_OPT not in doc["networks"]["labnet"].get("driver_opts", {})


def test_rendering_adds_a_sidecar_in_the_hosts_namespace():
    topo = from_text("""
services:
  app: {image: my/app, networks: {n: {ipv4_address: 10.0.0.5}}, command: ["/app", "--port=$$PORT"]}
networks:
  n: {ipam: {config: [{subnet: 10.0.0.0/24}]}}
""")
    doc = render(topo, lab_image=LAB, settings={"SOCKETLAB_OFFLOADS": "off"})
    assert "app-instruments" not in doc["services"]  # the engine makes it (see sidecar_spec)
    side = sidecar_spec(topo, "app", lab_image=LAB, settings={"SOCKETLAB_OFFLOADS": "off"})
    assert (side["network_mode"], side["image"], side["cap_add"]) == ("service:app", LAB, ["NET_ADMIN"])
    assert side["environment"]["SOCKETLAB_OFFLOADS"] == "off"
    assert side["labels"]["io.socketlab.instruments-for"] == "app"
    assert "environment" not in doc["services"]["app"]  # the own image is left as it is
    assert doc["services"]["app"]["command"] == ["/app", "--port=$$PORT"]  # escaped again
    assert doc["services"]["app"]["cap_drop"] == ["NET_RAW"]  # no packet socket around the seal
    assert "cap_add" not in doc["services"]["app"]


@pytest.mark.parametrize(("text", "message"), [
    ("services: {}", "t.yml has no services"),
    ("just text", "t.yml has no services"),
    ("services:\n  a: {image: x, network_mode: host}", "host 'a': network_mode: the host would leave"),
    ("services:\n  a: {image: x, ports: ['80:80']}", "host 'a': ports: publishes a port"),
    ("services:\n  a: {image: x, privileged: true}", "host 'a': privileged: false only"),
    ("services:\n  a: {build: .}", "host 'a' has no image"),
    (ON_N + "  n: {external: true}", "network 'n': external: a network the lab did not make"),
    ("services:\n  a: {image: x, networks: [n]}\nnetworks:\n  n: {driver: overlay}",
     "network 'n': driver: driver 'overlay': a lab network is a bridge"),
    ("services:\n  a: {image: x, networks: [m]}\nnetworks:\n  n: {}", "network 'm', which is not declared"),
    ("services:\n  a: {image: x, networks: [n]}\nnetworks:\n  n: {ipam: {config: [{subnet: 10.0.0.0/30}]}}",
     "subnet 10.0.0.0/30 is too small"),
    ("services:\n  a: {image: x, networks: [n]}\nnetworks:\n  n: {ipam: {config: [{subnet: 10.0.0.1/24}]}}",
     "subnet '10.0.0.1/24' is not valid"),
    ("services:\n  a: {image: x, networks: {n: {ipv4_address: 10.0.1.5}}}\n"
     "networks:\n  n: {ipam: {config: [{subnet: 10.0.0.0/24}]}}", "address 10.0.1.5 is not usable in 'n'"),
    ("services:\n  a: {image: x, networks: {n: {ipv4_address: 10.0.0.1}}}\n"
     "networks:\n  n: {ipam: {config: [{subnet: 10.0.0.0/24}]}}", "address 10.0.0.1 is not usable"),
    ("services:\n  a: {image: x, networks: {n: {ipv4_address: 10.0.0.5}}}\n"
     "  b: {image: x, networks: {n: {ipv4_address: 10.0.0.5}}}\n"
     "networks:\n  n: {ipam: {config: [{subnet: 10.0.0.0/24}]}}", "hosts 'a' and 'b' both have 10.0.0.5"),
    ("services:\n  a: {image: x, networks: [n, m]}\nnetworks:\n"
     "  n: {ipam: {config: [{subnet: 10.0.0.0/24}]}}\n  m: {ipam: {config: [{subnet: 10.0.0.0/23}]}}",
     "overlap"),
    ("services:\n  r: {image: x, labels: {io.socketlab.role: router}}", "router 'r' is on one network only"),
    ("services:\n  a: {image: x, labels: {io.socketlab.role: boss}}", "unknown role 'boss'"),
    ("services:\n  a: {image: x}\n  a-instruments: {image: x}", "needs a sidecar named 'a-instruments'"),
    (ON_N + "  n: {driver_opts: {com.docker.network.driver.mtu: big}}",
     "MTU 'big' is not a number"),
    (ON_N + "  n: {driver_opts: {com.docker.network.driver.mtu: 40}}",
     "MTU 40 is out of range"),
])
def test_broken_files_are_refused_in_one_line(text, message):
    with pytest.raises(ConfigError) as info:
        from_text(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_yaml_and_missing_files_say_where(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  a: [\n")
    with pytest.raises(ConfigError, match=r"bad.yml is not valid YAML at line \d"):
        read_topology(bad, {}, lab_image=LAB)
    with pytest.raises(ConfigError, match="cannot read the topology .*nothing.yml"):
        read_topology(tmp_path / "nothing.yml", {}, lab_image=LAB)


def test_the_dotenv_file_beside_the_topology_fills_its_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("NET", raising=False)
    (tmp_path / ".env").write_text("# the lab's net\nNET=10.3.0.0/24\n")
    (tmp_path / "t.yml").write_text(
        "services:\n  a: {image: x, networks: [n]}\nnetworks:\n  n: {ipam: {config: [{subnet: $NET}]}}\n")
    assert read_topology(tmp_path / "t.yml", {}, lab_image=LAB).network("n").subnet == "10.3.0.0/24"


def test_unknown_hosts_and_networks_name_the_real_ones():
    topo = bundled()
    with pytest.raises(UnknownHost, match="unknown host 'router'") as info:
        topo.host("router")
    assert info.value.hint == "the lab's hosts are server, client"
    with pytest.raises(ConfigError, match="not on network 'wan'"):
        topo.ip("server", "wan")
    with pytest.raises(ConfigError, match="no network wan in the topology"):
        topo.place({"wan": "10.0.0.0/24"})
