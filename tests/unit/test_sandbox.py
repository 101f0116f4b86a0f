"""The swarm sandbox's plan, state and refusals, without making anything (no root, no Docker)."""

from __future__ import annotations

import io
import ipaddress
from pathlib import Path

import pytest

from socketlab.cli.app import ExitCode, main
from socketlab.errors import ConfigError, SwarmError
from socketlab.lab import sandbox_host
from socketlab.lab.sandbox import Sandbox, State, check_name, find, plan
from socketlab.lab.sandbox_host import dockerd_argv


def test_plan_puts_two_nodes_on_the_ends_of_one_veth():
    n1, n2 = plan("slswarm", Path("/var/lib/x"), "10.77.3.0/24")

    assert (n1.netns, n2.netns) == ("slswarm-n1", "slswarm-n2")
    assert (n1.veth, n2.veth) == ("slswarm-1", "slswarm-2")
    assert (n1.address, n2.address) == ("10.77.3.1", "10.77.3.2")
    assert n1.url == "unix:///var/lib/x/slswarm/n1/docker.sock"
    bips = [ipaddress.IPv4Network(n.bip, strict=False) for n in (n1, n2)]
    assert not bips[0].overlaps(bips[1])
    assert not any(b.overlaps(ipaddress.IPv4Network("10.77.3.0/24")) for b in bips)
    assert all(len(n.veth) <= 15 for n in plan("abcdefghij", Path("/x"), "10.77.0.0/24"))


def test_dockerd_starts_in_the_nodes_namespace_with_its_own_everything():
    node = plan("sb", Path("/srv"), "10.77.0.0/24")[1]

    argv = dockerd_argv(node, Path("/srv/sb/daemon.json"), "overlay2")

    assert argv[:3] == ["nsenter", "--net=/run/netns/sb-n2", "dockerd"]  # not `ip netns exec`
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert flags == {"--config-file": "/srv/sb/daemon.json", "--data-root": "/srv/sb/n2/data",
                     "--exec-root": "/srv/sb/n2/exec", "--pidfile": "/srv/sb/n2/docker.pid",
                     "-H": "unix:///srv/sb/n2/docker.sock", "--storage-driver": "overlay2",
                     "--bip": node.bip}


def test_state_survives_its_file():
    state = State("sb", "10.77.0.0/24", plan("sb", Path("/srv"), "10.77.0.0/24"), "vfs",
                  ["socketlab/lab:latest"], 9.5)

    assert State.from_json(state.to_json()) == state
    assert state.manager.name == "n1"


@pytest.mark.parametrize("name", ["", "Swarm", "1abc", "a-b", "abcdefghijk"])
def test_a_name_that_cannot_name_a_veth_is_refused(name):
    with pytest.raises(ConfigError, match="sandbox name"):
        check_name(name)


def test_find_says_how_to_start_one_when_none_is_up(tmp_path):
    with pytest.raises(SwarmError, match="no swarm sandbox 'sb' is up") as e:
        find("sb", tmp_path)
    assert "socketlab sandbox up" in e.value.hint


def test_find_reads_a_damaged_state_as_an_error(tmp_path):
    (tmp_path / "sb").mkdir()
    (tmp_path / "sb" / "state.json").write_text("{not json")

    with pytest.raises(SwarmError, match="damaged"):
        find("sb", tmp_path)


def test_nothing_is_left_of_a_sandbox_that_never_was(tmp_path):
    assert Sandbox("neverwas", root=tmp_path).leftovers() == []


def test_up_needs_root(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox_host.os, "geteuid", lambda: 1000)

    with pytest.raises(SwarmError, match="needs root"):
        Sandbox("sb", root=tmp_path).up(["img"])
    assert not (tmp_path / "sb").exists()  # refused before anything was made


def test_unknown_storage_driver_is_refused_before_anything_is_made(tmp_path):
    with pytest.raises(ConfigError, match="storage driver"):
        Sandbox("sb", root=tmp_path).up(["img"], storage="zfs")
    assert not (tmp_path / "sb").exists()


def test_cli_status_without_a_sandbox_is_one_error_and_a_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("SOCKETLAB_SANDBOX_DIR", str(tmp_path))
    out, err = io.StringIO(), io.StringIO()

    code = main(["sandbox", "status", "--name", "sb"], out=out, err=err)

    assert code == ExitCode.LAB_ERROR
    assert out.getvalue() == ""
    assert err.getvalue().splitlines()[0].startswith("error: no swarm sandbox 'sb' is up")
    assert err.getvalue().splitlines()[1].startswith("hint: start one with `socketlab sandbox up`")


def test_cli_down_of_no_sandbox_says_there_was_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("SOCKETLAB_SANDBOX_DIR", str(tmp_path))
    out = io.StringIO()

    code = main(["sandbox", "down", "--name", "sb"], out=out, err=io.StringIO())

    assert code == ExitCode.OK
    assert out.getvalue().strip() == "no sandbox 'sb' was there; nothing to remove"
