"""What a hostile tester tried, for real: a program that dies is reported (not concluded
from), runs with no server of the lab's conclude only what was observed, and a /29 lab works."""

from __future__ import annotations

import pytest

from socketlab.act.programs import PROGRAMS_DIR, Options, client_argv, run_pair, run_programs
from socketlab.lab.lab import Lab
from socketlab.lab.subnets import claim_subnet
from socketlab.present.terminal import observation
from tests.conftest import lab_config

pytestmark = pytest.mark.integration


def test_a_server_that_dies_is_reported_not_concluded_from(lab):
    """The post's UDP server asked for an absurd receive size (socketlab's own options refuse
    it; a program can still be given it): it dies of MemoryError after `listening`."""
    opts = Options(proto="udp")
    server = ["python3", f"{PROGRAMS_DIR}/udp_server.py", "--port", str(lab.config.port),
              "--bufsize", "99999999999", "--timeout", "5"]

    run = run_programs(lab, opts, server, client_argv(opts, lab.config.server_ip, lab.config.port))

    assert run.server_exit not in (0, None)
    said = observation(run)
    assert said.startswith("the server program died (exit code ")
    assert "Error" in said
    assert "arrived" not in said


def test_udp_with_no_server_says_nothing_about_arrival(lab):
    run = run_pair(lab, Options(proto="udp", server=False))

    said = observation(run)

    assert said.startswith("No lab server ran: the client sent 1 datagram(s) (11 bytes)")
    assert "recvfrom" not in said


def test_tcp_with_no_server_but_the_users_own_listener_claims_no_loss(lab):
    listener = lab.start("server", ["python3", "-c", "import socket; s=socket.create_server(("
                                    f"'', {lab.config.port})); print('bound', flush=True); "
                                    "c, _ = s.accept(); print(len(c.recv(100)), flush=True)"],
                         timeout=20)
    try:
        listener.wait_for(lambda line: line == "bound", 10)
        run = run_pair(lab, Options(proto="tcp", server=False))
        assert listener.wait_for(lambda line: line.isdigit(), 10) == "11"  # it got all 11
    finally:
        listener.signal("KILL")

    said = observation(run)
    assert said.startswith("No lab server ran: the client connected to ")
    assert "missing" not in said


def test_a_slash29_lab_holds_its_two_hosts(docker_client, lab_image):
    with claim_subnet(docker_client, prefix=29) as subnet:  # held until the network exists
        config = lab_config("-s29").with_(subnet=subnet)
        lab = Lab(config, client=docker_client)
        lab.up()
    try:
        assert (lab.config.server_ip, lab.config.client_ip) == (
            subnet.rsplit(".", 1)[0] + "." + str(int(subnet.rsplit(".", 1)[1].split("/")[0]) + 5),
            subnet.rsplit(".", 1)[0] + "." + str(int(subnet.rsplit(".", 1)[1].split("/")[0]) + 6))
        assert run_pair(lab, Options(proto="tcp")).ok
    finally:
        lab.down()
    assert lab.leftovers() == []
