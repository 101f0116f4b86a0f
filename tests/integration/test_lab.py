"""The lab for real: the post's exchanges between two containers, its claims C1 and C2,
two labs at once, and the failure paths a newcomer meets. Nothing may be left behind."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time

import pytest

from socketlab.act.programs import Options, run_pair
from socketlab.errors import ConfigError, ImageError, ProgramFailed
from socketlab.lab.assets import COMPOSE_FILE
from socketlab.lab.engine_compose import PROJECT_LABEL
from socketlab.lab.lab import Lab
from socketlab.lab.subnets import claim_subnet
from socketlab.observe.events import payload
from tests.conftest import lab_config, project_name

pytestmark = pytest.mark.integration


def leftovers(client, project: str) -> list[str]:
    flt = {"label": f"{PROJECT_LABEL}={project}"}
    return ([f"container {c.name}" for c in client.containers.list(all=True, filters=flt)]
            + [f"network {n.name}" for n in client.networks.list(filters=flt)])


def data_of(events, name):
    return [e.fields["data"] for e in events if e.name == name]


def test_tcp_exchange_is_a_byte_stream_read_three_bytes_at_a_time(lab):
    run = run_pair(lab, Options(proto="tcp"))
    assert run.ok, run
    assert data_of(run.server_events, "recv") == ["hel", "lo,", "wor", "ld", ""]
    assert payload(run.server_events, "recv") == b"hello,world"
    accepted = next(e for e in run.server_events if e.name == "accepted")
    assert accepted.fields["peer"].startswith(lab.config.client_ip + ":")
    connected = next(e for e in run.client_events if e.name == "connected")
    assert connected.fields["peer"] == f"{lab.config.server_ip}:{lab.config.port}"


def test_udp_exchange_truncates_the_datagram(lab):
    run = run_pair(lab, Options(proto="udp"))
    assert run.ok, run
    assert data_of(run.server_events, "recvfrom") == ["hel", ""]  # then the empty datagram
    assert [e.fields["n"] for e in run.client_events if e.name == "sent"] == [11, 0]
    assert any(e.name == "stop" and e.fields["reason"] == "empty" for e in run.server_events)


def test_c1_tcp_connect_with_no_server_is_refused(lab):
    run = run_pair(lab, Options(proto="tcp", server=False))
    assert run.client_exit == 1
    error = run.error()
    assert (error.fields["op"], error.fields["errno"]) == ("connect", "ECONNREFUSED")


def test_c2_udp_client_with_no_server_finishes_its_work(lab):
    run = run_pair(lab, Options(proto="udp", server=False))
    assert run.client_exit == 0
    assert [e.fields["n"] for e in run.client_events if e.name == "sent"] == [11, 0]
    assert run.error() is None


def test_a_taken_port_is_reported_not_hung(lab):
    squatter = lab.start("server", ["python3", "-c", "import socket,time; s=socket.socket();"
                                    f"s.bind(('', {lab.config.port})); s.listen(); "
                                    "print('bound', flush=True); time.sleep(30)"], timeout=30)
    try:
        squatter.wait_for(lambda line: line == "bound", 10)
        with pytest.raises(ProgramFailed, match="EADDRINUSE"):
            run_pair(lab, Options(proto="tcp"))
    finally:
        squatter.signal("TERM")
    assert run_pair(lab, Options(proto="tcp")).ok  # the lab is usable again


def test_two_labs_at_once_on_different_subnets_cannot_reach_each_other(lab, docker_client):
    other = lab_config("-b")
    with Lab(other, client=docker_client) as lab_b:
        assert run_pair(lab_b, Options(proto="tcp")).ok
        assert run_pair(lab, Options(proto="tcp")).ok
        # No route from one lab to the other: the kernel refuses before any packet is sent.
        route = lab.exec("client", ["ip", "route", "get", lab_b.config.server_ip])
        assert route.exit_code != 0
        assert "unreachable" in route.stderr.lower()
    assert leftovers(docker_client, other.project) == []


def test_a_subnet_in_use_is_refused_before_anything_starts(lab, docker_client):
    clash = lab_config("-clash").with_(subnet=lab.config.subnet)
    with pytest.raises(ConfigError, match="overlaps"), Lab(clash, client=docker_client):
        pass
    assert leftovers(docker_client, clash.project) == []


def test_a_missing_image_is_reported_and_nothing_starts(docker_client, lab_image):
    cfg = lab_config("-noimg", image="socketlab/no-such-image:0")
    with pytest.raises(ImageError, match="missing"), Lab(cfg, client=docker_client):
        pass
    assert leftovers(docker_client, cfg.project) == []


def test_demo_from_the_cli_shows_both_exchanges_and_removes_the_lab(docker_client, lab_image):
    project = project_name("-demo")
    done = subprocess.run([sys.executable, "-m", "socketlab", "-p", project, "demo",
                           "--subnet", "auto"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for piece in ('recv(3) -> "hel"', 'recv(3) -> "lo,"', 'recv(3) -> "wor"', 'recv(3) -> "ld"',
                  'recvfrom(3) -> "hel"'):
        assert piece in done.stdout
    assert "nothing lost" in done.stdout
    assert leftovers(docker_client, project) == []


def test_ctrl_c_in_the_middle_of_demo_leaves_nothing_behind(docker_client, lab_image):
    project = project_name("-intr")
    proc = subprocess.Popen([sys.executable, "-m", "socketlab", "-p", project, "demo",
                             "--subnet", "auto"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not leftovers(docker_client, project) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling Docker for the lab to appear, not waiting for an effect
    assert leftovers(docker_client, project), "the demo never started its lab"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert leftovers(docker_client, project) == []


def test_plain_compose_up_runs_the_posts_tcp_exchange(docker_client, lab_image):
    from socketlab.lab import compose

    found = compose.detect()
    project = project_name("-plain")
    try:
        with claim_subnet(docker_client) as subnet:  # held until compose has made the network
            net = ipaddress.IPv4Network(subnet)
            env = {**os.environ, "SOCKETLAB_SUBNET": subnet, "SOCKETLAB_SERVER_IP": str(net[5]),
                   "SOCKETLAB_CLIENT_IP": str(net[6]), "SOCKETLAB_IMAGE": lab_config().image}
            done = subprocess.run(found.argv(project, COMPOSE_FILE, "up", "--no-build",
                                             "--abort-on-container-exit", "--exit-code-from",
                                             "server"),
                                  env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        for piece in ('data="hel"', 'data="lo,"', 'data="wor"', 'data="ld"'):
            assert piece in done.stdout
    finally:
        subprocess.run(found.argv(project, COMPOSE_FILE, "down", "--timeout", "2"), env=env,
                       capture_output=True, timeout=120)
    assert leftovers(docker_client, project) == []
