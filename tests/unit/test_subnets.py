"""Free subnets: the pure choice, this host's routes read, and LabConfig's "auto"."""

from __future__ import annotations

import ipaddress

import pytest

from socketlab.errors import ConfigError
from socketlab.lab.config import LabConfig
from socketlab.lab.subnets import host_routes, pick

N = ipaddress.IPv4Network


def test_pick_skips_every_subnet_that_overlaps_one_taken():
    taken = [N("192.168.128.0/24"), N("192.168.129.0/24")]
    assert pick(taken) == "192.168.130.0/24"


def test_pick_skips_a_larger_network_that_holds_the_candidates():
    assert pick([N("192.168.128.0/20")]) == "192.168.144.0/24"


def test_pick_with_a_full_pool_says_what_to_do():
    with pytest.raises(ConfigError, match="no free /24 left in 192.168.128.0/23") as e:
        pick([N("192.168.128.0/23")], pool="192.168.128.0/23")
    assert "socketlab down --all" in e.value.hint


def test_host_routes_are_read_from_proc_net_route_without_the_default(tmp_path):
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t0080A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")  # 192.168.128.0/24
    assert host_routes(str(table)) == [N("192.168.128.0/24")]
    assert pick(host_routes(str(table))) == "192.168.129.0/24"


def test_a_missing_route_table_means_no_routes(tmp_path):
    assert host_routes(str(tmp_path / "absent")) == []


def test_auto_subnet_has_no_addresses_until_the_lab_starts():
    cfg = LabConfig(subnet="auto")
    assert not cfg.resolved
    assert (cfg.server_ip, cfg.client_ip) == ("", "")
    with pytest.raises(ConfigError, match="not chosen yet"):
        cfg.compose_env()
    chosen = cfg.with_(subnet="192.168.140.0/24")
    assert chosen.resolved
    assert chosen.server_ip == "192.168.140.5"


def test_auto_subnet_refuses_addresses_given_with_it():
    with pytest.raises(ConfigError, match="cannot be given with subnet auto"):
        LabConfig(subnet="auto", server_ip="192.168.140.5")


def test_auto_subnet_still_checks_the_name():
    with pytest.raises(ConfigError, match="project name"):
        LabConfig(project="Bad Name", subnet="auto")
