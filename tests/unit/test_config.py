"""LabConfig: defaults, addresses derived from the subnet, SOCKETLAB_* variables, validation."""

from __future__ import annotations

import pytest

from socketlab.errors import ConfigError
from socketlab.lab.config import LAB_IMAGE, LabConfig


def test_defaults_are_the_posts_addresses():
    cfg = LabConfig()

    assert (cfg.project, cfg.subnet) == ("socketlab", "192.168.33.0/24")
    assert (cfg.server_ip, cfg.client_ip) == ("192.168.33.5", "192.168.33.6")
    assert (cfg.port, cfg.proto, cfg.image) == (6666, "tcp", "socketlab/lab:latest")


@pytest.mark.parametrize(
    ("subnet", "server", "client"),
    [
        ("10.20.0.0/16", "10.20.0.5", "10.20.0.6"),
        ("192.168.34.0/24", "192.168.34.5", "192.168.34.6"),
        ("172.30.1.16/28", "172.30.1.21", "172.30.1.22"),
    ],
    ids=["slash16", "slash24", "slash28-not-at-zero"],
)
def test_addresses_are_derived_from_the_subnet(subnet, server, client):
    cfg = LabConfig(subnet=subnet)

    assert (cfg.server_ip, cfg.client_ip) == (server, client)


def test_explicit_addresses_are_kept():
    cfg = LabConfig(server_ip="192.168.33.100", client_ip="192.168.33.200")

    assert (cfg.server_ip, cfg.client_ip) == ("192.168.33.100", "192.168.33.200")


def test_with_a_new_subnet_rederives_the_addresses():
    cfg = LabConfig().with_(subnet="10.1.2.0/24")

    assert (cfg.subnet, cfg.server_ip, cfg.client_ip) == ("10.1.2.0/24", "10.1.2.5", "10.1.2.6")


def test_with_other_changes_keeps_the_addresses():
    cfg = LabConfig(server_ip="192.168.33.50").with_(port=7000)

    assert (cfg.server_ip, cfg.client_ip, cfg.port) == ("192.168.33.50", "192.168.33.6", 7000)


def test_from_env_reads_every_socketlab_variable():
    env = {
        "SOCKETLAB_PROJECT": "lab-2",
        "SOCKETLAB_SUBNET": "10.9.0.0/24",
        "SOCKETLAB_SERVER_IP": "10.9.0.10",
        "SOCKETLAB_CLIENT_IP": "10.9.0.11",
        "SOCKETLAB_PORT": "7777",
        "SOCKETLAB_PROTO": "udp",
        "SOCKETLAB_IMAGE": "my/lab:dev",
        "UNRELATED": "ignored",
    }

    cfg = LabConfig.from_env(env)

    assert cfg == LabConfig(project="lab-2", subnet="10.9.0.0/24", server_ip="10.9.0.10",
                            client_ip="10.9.0.11", port=7777, proto="udp", image="my/lab:dev")


def test_from_env_with_an_empty_environment_gives_the_defaults():
    assert LabConfig.from_env({}) == LabConfig()


def test_from_env_derives_addresses_from_the_subnet_variable():
    cfg = LabConfig.from_env({"SOCKETLAB_SUBNET": "10.7.0.0/24"})

    assert (cfg.server_ip, cfg.client_ip) == ("10.7.0.5", "10.7.0.6")


def test_from_env_overrides_win_and_none_is_ignored():
    env = {"SOCKETLAB_PROJECT": "fromenv", "SOCKETLAB_PORT": "7000"}

    cfg = LabConfig.from_env(env, project="fromarg", port=None, subnet=None)

    assert (cfg.project, cfg.port, cfg.subnet) == ("fromarg", 7000, "192.168.33.0/24")


def test_from_env_rejects_a_port_that_is_not_a_number():
    with pytest.raises(ConfigError, match=r"port 'sixty' is not a number") as info:
        LabConfig.from_env({"SOCKETLAB_PORT": "sixty"})

    assert info.value.hint == "use a port from 1 to 65535"


def test_compose_env_has_exactly_the_variables_compose_reads():
    cfg = LabConfig(subnet="10.3.0.0/24", port=7001, proto="udp")

    assert cfg.compose_env("server") == {
        "SOCKETLAB_MODE": "server",
        "SOCKETLAB_SUBNET": "10.3.0.0/24",
        "SOCKETLAB_SERVER_IP": "10.3.0.5",
        "SOCKETLAB_CLIENT_IP": "10.3.0.6",
        "SOCKETLAB_PORT": "7001",
        "SOCKETLAB_PROTO": "udp",
        "SOCKETLAB_IMAGE": LAB_IMAGE,
        "SOCKETLAB_OFFLOADS": "off",
    }
    assert LabConfig().compose_env()["SOCKETLAB_MODE"] == "idle"
    assert LabConfig(offloads=True).compose_env()["SOCKETLAB_OFFLOADS"] == "on"


def test_every_variable_socketlab_sets_is_one_the_compose_file_reads():
    from socketlab.lab.assets import COMPOSE_FILE

    text = COMPOSE_FILE.read_text()
    for name in LabConfig().compose_env():
        assert "${" + name in text, name


def test_compose_env_round_trips_through_from_env():
    cfg = LabConfig(project="rt", subnet="10.4.0.0/24", server_ip="10.4.0.9", port=8080)

    assert LabConfig.from_env({**cfg.compose_env(), "SOCKETLAB_PROJECT": "rt"}) == cfg


@pytest.mark.parametrize(
    ("kwargs", "message", "bad_value"),
    [
        ({"subnet": "not-a-subnet"}, "subnet 'not-a-subnet' is not valid", "not-a-subnet"),
        ({"subnet": "192.168.33.5/24"}, "subnet '192.168.33.5/24' is not valid",
         "192.168.33.5/24"),
        ({"subnet": "fd00::/64"}, "subnet 'fd00::/64' is not valid", "fd00::/64"),
        ({"subnet": "10.0.0.0/29", "server_ip": "10.0.0.7"}, "server address 10.0.0.7 is not usable",
         "10.0.0.7"),
        ({"subnet": "10.0.0.0/30"}, "subnet 10.0.0.0/30 is too small for the lab", "10.0.0.0/30"),
        ({"server_ip": "10.0.0.5"}, "server address 10.0.0.5 is not usable in subnet "
         "192.168.33.0/24", "10.0.0.5"),
        ({"client_ip": "192.168.33.1"}, "client address 192.168.33.1 is not usable",
         "192.168.33.1"),
        ({"server_ip": "192.168.33.0"}, "server address 192.168.33.0 is not usable",
         "192.168.33.0"),
        ({"client_ip": "192.168.33.255"}, "client address 192.168.33.255 is not usable",
         "192.168.33.255"),
        ({"server_ip": "192.168.33.300"}, "server address '192.168.33.300' is not an IPv4 address",
         "192.168.33.300"),
        ({"client_ip": "192.168.33.5"}, "server and client both have the address 192.168.33.5",
         "192.168.33.5"),
        ({"port": 0}, "port 0 is out of range", "0"),
        ({"port": 65536}, "port 65536 is out of range", "65536"),
        ({"proto": "sctp"}, "unknown protocol 'sctp'", "sctp"),
        ({"project": "Socketlab"}, "project name 'Socketlab' is not valid", "Socketlab"),
        ({"project": "-lab"}, "project name '-lab' is not valid", "-lab"),
        ({"project": "my lab"}, "project name 'my lab' is not valid", "my lab"),
        ({"project": ""}, "project name '' is not valid", "''"),
    ],
    ids=["subnet-garbage", "subnet-host-bits", "subnet-ipv6", "slash29-broadcast", "subnet-slash30",
         "server-outside", "client-gateway", "server-network", "client-broadcast",
         "server-not-ipv4", "same-address", "port-zero", "port-too-big", "proto-sctp",
         "project-uppercase", "project-leading-dash", "project-space", "project-empty"],
)
def test_invalid_settings_raise_config_error_with_value_and_hint(kwargs, message, bad_value):
    with pytest.raises(ConfigError) as info:
        LabConfig(**kwargs)

    assert str(info.value).startswith(message)
    assert bad_value in str(info.value)
    assert info.value.hint.strip()


def test_slash29_is_the_smallest_accepted_subnet_and_holds_5_and_6():
    cfg = LabConfig(subnet="10.0.0.0/29")

    assert (cfg.server_ip, cfg.client_ip) == ("10.0.0.5", "10.0.0.6")


@pytest.mark.parametrize(
    ("subnet", "hint_part"),
    [("10.0.0.0/30", "/29 or larger"), ("garbage", "192.168.34.0/24")],
    ids=["too-small", "not-a-network"],
)
def test_subnet_errors_hint_at_a_working_subnet(subnet, hint_part):
    with pytest.raises(ConfigError) as info:
        LabConfig(subnet=subnet)

    assert hint_part in info.value.hint


def test_address_error_hint_names_the_subnet():
    with pytest.raises(ConfigError) as info:
        LabConfig(server_ip="10.0.0.5")

    assert "inside 192.168.33.0/24" in info.value.hint


def test_config_is_frozen():
    cfg = LabConfig()

    with pytest.raises(AttributeError):
        cfg.port = 1  # type: ignore[misc]


def test_with_a_topology_file_the_addresses_are_the_files():
    """For another compose file the server and client addresses are the file's own (the
    topology checks them against its networks), so they need not lie in the lab's subnet."""
    cfg = LabConfig(topology="topologies/router.yml", server_ip="192.168.35.5")
    assert (cfg.server_ip, cfg.client_ip) == ("192.168.35.5", "")
    with pytest.raises(ConfigError, match="server address '192.168.35' is not an IPv4 address"):
        LabConfig(topology="topologies/router.yml", server_ip="192.168.35")


@pytest.mark.parametrize(("spec", "refused"), [
    ("/", "is this machine's root"),
    ("/etc", "is a system path"),
    ("/var", "is a system path"),  # it holds /var/run and /var/lib/docker
    (".:/usr/sbin", "would cover the host's own system or the lab's tools"),
    (".:/lab/bin", "would cover the host's own system or the lab's tools"),
    (".:/", "would cover the host's own system"),
])
def test_a_mount_of_a_system_folder_or_over_the_hosts_system_is_refused(spec, refused):
    with pytest.raises(ConfigError, match=refused):
        LabConfig(mounts=(spec,))


def test_a_mount_of_a_folder_of_ones_own_is_taken(tmp_path):
    assert LabConfig(mounts=(f"{tmp_path}:/work/mine",)).folders() == ((str(tmp_path), "/work/mine"),)
