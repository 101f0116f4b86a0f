"""Shaping for real: measured loss and rate, clear leaves nothing, a failing apply puts back
what was there, and compose's SOCKETLAB_SHAPE_* shapes a host as it starts.

Every flood is bounded (count and time) and stays between the lab's two hosts.
"""

from __future__ import annotations

import ipaddress
import math
import os
import statistics
import subprocess

import pytest

from socketlab.act import instruments, shaping
from socketlab.errors import ConfigError
from socketlab.lab.engine_compose import PROJECT_LABEL
from socketlab.lab.lab import Lab
from socketlab.observe.events import parse_output
from tests.conftest import lab_config

pytestmark = pytest.mark.integration

PORT = 7001
DATAGRAMS = 2000
RATE_BIT = 2_000_000
TCP_BYTES = 750_000  # 3 s at 2 mbit/s


@pytest.fixture(autouse=True)
def cleared(lab):
    """Every test starts and ends with both hosts unshaped."""
    for host in ("client", "server"):
        shaping.clear(lab, host)
    yield
    for host in ("client", "server"):
        shaping.clear(lab, host)


def sh(lab: Lab, host: str, command: str) -> str:
    result = lab.exec(host, ["sh", "-c", command], timeout=20)
    return result.stdout + result.stderr


def summary(proc_or_result) -> dict:
    return instruments.summary(parse_output(proc_or_result.stdout))


def udp_loss(lab: Lab, sender: str, receiver: str) -> tuple[int, dict]:
    """(distinct datagrams received of DATAGRAMS sent, 2,000 a second; the sender's summary).
    The receiver ends by itself after 1.5 s without a datagram, or at its deadline."""
    recv = lab.start(receiver, instruments.argv("udp_sink", PORT, numbered=True, idle=1.5, most=20.0),
                     timeout=30)
    recv.wait_for(lambda line: line.startswith("listening"), timeout=10)
    sent = lab.exec(sender, instruments.argv("udp_blast", lab.topology.ip(receiver), PORT,
                                             count=DATAGRAMS, pps=2000.0, most=20.0), timeout=30)
    recv.wait(30)
    return summary(recv)["distinct"], summary(sent)


def interval(n: int, p: float, z: float) -> tuple[float, float]:
    """Where the observed loss fraction of n packets falls for a true loss p (normal
    approximation): z=1.96 for 95% of runs, z=3.29 for 99.9%."""
    half = z * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


@pytest.mark.parametrize(("shaped", "direction", "sender", "receiver"),
                         [("client", "egress", "client", "server"),
                          ("server", "ingress", "client", "server")])
def test_random_loss_by_iptables_statistic(lab, shaped, direction, sender, receiver):
    done = shaping.shape(lab, shaped, "loss 20%", direction)
    assert done.backend in ("engine", "netem")
    received, report = udp_loss(lab, sender, receiver)
    observed = (DATAGRAMS - received) / DATAGRAMS
    low, high = interval(DATAGRAMS, 0.20, 1.96)
    print(f"\n{direction} loss 20%: observed {observed:.4f}, 95% interval [{low:.4f}, {high:.4f}]")
    # A test held to the 95% interval fails one run in twenty with a perfect shaper (it did,
    # once, here): the assertion uses the 99.9% interval, [0.171, 0.229] for 2,000 packets.
    low, high = interval(DATAGRAMS, 0.20, 3.29)
    assert low <= observed <= high, f"loss {observed:.4f} outside the 99.9% interval [{low:.4f}, {high:.4f}]"
    assert report["errors"] == 0, "a loss must be silent to the sender, as on a wire"


def test_unshaped_loses_nothing(lab):
    received, _ = udp_loss(lab, "client", "server")
    assert received == DATAGRAMS


@pytest.mark.parametrize(("direction", "sender", "receiver"),
                         [("egress", "client", "server"), ("ingress", "server", "client")])
def test_tbf_rate_gives_tcp_goodput_within_10_percent(lab, direction, sender, receiver):
    shaping.shape(lab, "client", "rate 2mbit", direction)
    recv = lab.start(receiver, instruments.argv("tcp_sink", PORT, most=20.0), timeout=30)
    recv.wait_for(lambda line: line.startswith("listening"), timeout=10)
    lab.exec(sender, instruments.argv("tcp_send", lab.topology.ip(receiver), PORT, bytes=TCP_BYTES,
                                      most=20.0), timeout=30)
    recv.wait(30)
    got = summary(recv)
    goodput = got["received"] * 8 / (got["last"] - got["first"])
    print(f"\n{direction} rate 2mbit: TCP goodput {goodput / 1e6:.3f} mbit/s")
    assert got["received"] == TCP_BYTES
    assert abs(goodput - RATE_BIT) <= 0.10 * RATE_BIT, f"goodput {goodput / 1e6:.3f} mbit/s"


def leftovers(lab: Lab, host: str) -> list[str]:
    qdiscs = [ln for ln in sh(lab, host, "tc qdisc show").splitlines() if "noqueue" not in ln]
    rules = [ln for ln in sh(lab, host, "iptables -t mangle -S").splitlines() if "SOCKETLAB" in ln]
    links = [ln for ln in sh(lab, host, "ip -br link").splitlines() if "slab-ifb" in ln]
    procs = [ln for ln in sh(lab, host, "ps -eo args").splitlines() if "lab-nfq" in ln and "ps -eo" not in ln]
    # what lab-shape keeps of a shaping (its logs and the kernel probe's answer may stay)
    state = sh(lab, host, "ls /run/socketlab 2>/dev/null | grep -v 'log$\\|^probe.json$'").split()
    return qdiscs + rules + links + procs + state


def test_clear_leaves_no_qdisc_rule_ifb_or_process(lab):
    shaping.shape(lab, "client", "loss 10% rate 1mbit", "egress")
    shaping.shape(lab, "client", "loss 10% rate 1mbit limit 20", "ingress")
    assert len(leftovers(lab, "client")) >= 6
    assert "SOCKETLAB-EGRESS" in shaping.show(lab, "client")
    shaping.clear(lab, "client")
    assert leftovers(lab, "client") == []
    shaping.clear(lab, "client")  # twice is fine
    assert leftovers(lab, "client") == []


def test_a_half_failing_apply_restores_the_previous_state(lab):
    shaping.shape(lab, "client", "loss 10%", "egress")
    before = sh(lab, "client", "iptables -t mangle -S; tc qdisc show dev eth0")
    # A tc that refuses tbf: the new plan fails half-way, after its iptables-free tc steps ran.
    sh(lab, "client", "mkdir -p /tmp/shim && printf '#!/bin/sh\\ncase \"$*\" in *eth0*tbf*) "
                      "echo forced failure >&2; exit 2;; esac\\nexec /usr/sbin/tc \"$@\"\\n' > /tmp/shim/tc"
                      " && chmod +x /tmp/shim/tc")
    try:
        result = lab.exec("client", ["sh", "-c", "PATH=/tmp/shim:$PATH lab-shape apply --dir egress "
                                     "loss 20% rate 2mbit"], timeout=30)
    finally:
        sh(lab, "client", "rm -rf /tmp/shim")
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("failed: forced failure; the previous egress shaping "
                                          "(loss 10%) is back")
    assert len(result.stderr.strip().splitlines()) == 1
    assert sh(lab, "client", "iptables -t mangle -S; tc qdisc show dev eth0") == before


def test_backends_are_probed_in_the_host(lab):
    table = shaping.backends(lab, "client")
    assert "kernel: " in table
    loss = next(line for line in table.splitlines() if line.startswith("loss\t"))
    assert loss.split("\t")[2] == "yes"  # egress:engine


def test_delay_through_nfqueue(lab):
    shaping.shape(lab, "client", "delay 100ms", "egress")
    echo = lab.start("server", instruments.argv("udp_echo", PORT, idle=2.0, most=15.0), timeout=20)
    echo.wait_for(lambda line: line.startswith("listening"), timeout=10)
    ping = lab.exec("client", instruments.argv("udp_ping", lab.config.server_ip, PORT, count=9,
                                               gap=0.05, wait=2.0), timeout=20)
    echo.wait(20)
    rtt_ms = statistics.median(instruments.numbers(summary(ping)["rtts"]))
    assert 90 <= rtt_ms <= 150, f"ping RTT median {rtt_ms:.1f} ms"


# -- compose's environment --------------------------------------------------------------------
def _containers(docker_client, project: str) -> dict:
    found = docker_client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
    return {c.labels["com.docker.compose.service"]: c for c in found}


def test_compose_env_shapes_the_client_as_it_starts(docker_client, lab_image, monkeypatch):
    monkeypatch.setenv("SOCKETLAB_SHAPE_CLIENT", "egress: loss 5%; ingress: rate 1mbit limit 50")
    monkeypatch.delenv("SOCKETLAB_SHAPE_SERVER", raising=False)
    config = lab_config("-shape-env")
    with Lab(config, client=docker_client) as env_lab:
        # up returns only once the client's shaping is in place: no waiting here
        assert shaping.describe_state("client", shaping.state(env_lab, "client")) == [
            "client egress: loss 5% (backend engine)",
            "client ingress: rate 1000000bit limit 50 (backend engine)"]
        rules = sh(env_lab, "client", "iptables -t mangle -S SOCKETLAB-EGRESS")
        assert "--probability 0.0499999" in rules  # iptables prints 0.05 as 0.04999999981
        assert "tbf 2: root" in sh(env_lab, "client", "tc qdisc show dev slab-ifb0")
        assert "pfifo 3: parent 2:1 limit 50p" in sh(env_lab, "client", "tc qdisc show dev slab-ifb0")
        assert leftovers(env_lab, "server") == []


def test_up_refuses_a_bad_env_spec_before_anything_starts(docker_client, lab_image, monkeypatch):
    monkeypatch.setenv("SOCKETLAB_SHAPE_CLIENT", "egress: loss 150%")
    config = lab_config("-shape-refused")
    with pytest.raises(ConfigError, match=r"^SOCKETLAB_SHAPE_CLIENT: egress: loss 150% is out of range"):
        Lab(config, client=docker_client).up()
    assert _containers(docker_client, config.project) == {}
    assert docker_client.networks.list(filters={"label": f"{PROJECT_LABEL}={config.project}"}) == []


def test_shaped_plain_compose_up_completes(docker_client, lab_image):
    """The README's own example: plain `compose up` with a 100 ms delay on what leaves the
    client. The client's host stays until the shaper has let its last packets go, then the
    server ends: compose returns by itself, the whole message delivered."""
    from socketlab.lab import compose
    from socketlab.lab.assets import COMPOSE_FILE
    from socketlab.lab.subnets import claim_subnet

    found = compose.detect()
    project = lab_config("-shape-plain").project
    env = dict(os.environ, SOCKETLAB_SHAPE_CLIENT="egress: delay 100ms", SOCKETLAB_IMAGE=lab_config().image)
    env.pop("SOCKETLAB_SHAPE_SERVER", None)
    try:
        with claim_subnet(docker_client) as subnet:  # held until compose has made the network
            net = ipaddress.IPv4Network(subnet)
            env |= {"SOCKETLAB_SUBNET": subnet, "SOCKETLAB_SERVER_IP": str(net[5]),
                    "SOCKETLAB_CLIENT_IP": str(net[6])}
            done = subprocess.run(found.argv(project, COMPOSE_FILE, "up", "--no-build"), env=env,
                                  capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        for piece in ('data="hel"', 'data="lo,"', 'data="wor"', 'data="ld"'):
            assert piece in done.stdout
        hosts = _containers(docker_client, project)
        exits = {name: c.attrs["State"]["ExitCode"] for name, c in hosts.items()}
        assert exits == {"server": 0, "client": 0}
    finally:
        subprocess.run(found.argv(project, COMPOSE_FILE, "down", "--timeout", "2"), env=env,
                       capture_output=True, timeout=120)
    assert _containers(docker_client, project) == {}


def test_for_reverts_by_itself_and_says_when(lab):
    done = shaping.shape(lab, "client", "loss 10%", for_s=2.0)
    assert "reverts by itself in" in shaping.show(lab, "client")
    assert shaping.wait_reverted(lab, done) == "reverted"
    assert leftovers(lab, "client") == []
    assert shaping.state(lab, "client") == {"egress": None, "ingress": None}


def test_compose_env_with_a_bad_spec_stops_the_host_loudly(docker_client, lab_image):
    """Plain compose (no socketlab to check first): lab-host refuses the spec in the host,
    which stops at once with lab-shape's one-line error."""
    from socketlab.lab import compose
    from socketlab.lab.assets import COMPOSE_FILE
    from socketlab.lab.subnets import claim_subnet

    found = compose.detect()
    project = lab_config("-shape-bad").project
    env = dict(os.environ, SOCKETLAB_SHAPE_SERVER="egress: loss 150%", SOCKETLAB_IMAGE=lab_config().image)
    try:
        with claim_subnet(docker_client) as subnet:
            net = ipaddress.IPv4Network(subnet)
            env |= {"SOCKETLAB_SUBNET": subnet, "SOCKETLAB_SERVER_IP": str(net[5]),
                    "SOCKETLAB_CLIENT_IP": str(net[6])}
            subprocess.run(found.argv(project, COMPOSE_FILE, "up", "--no-build", "server"), env=env,
                           capture_output=True, text=True, timeout=60)
        server = _containers(docker_client, project)["server"]
        assert server.attrs["State"]["ExitCode"] == 2
        assert "lab-shape: egress: loss 150% is out of range: use 0-100%" in server.logs().decode()
    finally:
        subprocess.run(found.argv(project, COMPOSE_FILE, "down", "--timeout", "2"), env=env,
                       capture_output=True, timeout=120)
    assert _containers(docker_client, project) == {}


def test_a_run_on_shaped_links_says_so_in_its_table_and_its_json(lab):
    """`run` asks for the hosts' shaping while the exchange runs: what it says is what the
    run crossed, in the table and in --json; unshaped, it says nothing of shaping."""
    import io
    import json

    from socketlab.cli.app import main

    def run(*more: str) -> str:
        out = io.StringIO()
        assert main(["-p", lab.config.project, "run", "tcp", *more], out=out, err=io.StringIO()) == 0
        return out.getvalue()

    assert "shaped:" not in run()
    shaping.shape(lab, "client", "delay 20ms", "egress")
    said = run()
    assert "shaped: client egress: delay 20ms (backend " in said
    assert "(what this run crosses)" in said
    assert json.loads(run("--json"))["shaping"]["client"]["egress"]["spec"] == "delay 20ms"


def test_a_fault_in_place_is_shown_in_its_grammar_by_status_and_shape_show(lab):
    """Not as a raw dict: `status` (read on the host side) and `shape --show` (lab-shape in
    the host) write it as it is typed."""
    import io

    from socketlab.cli.app import main

    def said(*argv: str) -> str:
        out = io.StringIO()
        main(["-p", lab.config.project, *argv], out=out, err=io.StringIO())
        return out.getvalue()

    shaping.shape(lab, "server", "", "egress", faults=["drop tcp flags=SA nth=1"])
    try:
        assert "shaped: server egress: fault drop tcp flags=SA nth=1 (backend engine)" in said("status")
        shown = said("shape", "server", "--show")
        assert "egress: fault drop tcp flags=SA nth=1 (backend engine)" in shown
        assert '"action"' not in shown
    finally:
        shaping.clear(lab, "server")
