"""Issue 16 for real: hostile topology files through the CLI are refused in one line before any
Docker object exists; an accepted file's host has no more than the lab grants, checked from
inside it; a seal broken after `up` is seen from outside; and the entrypoint trick, which no
file may play, is seen for what it is when the user opts in with --unsealed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from socketlab.lab.assets import ROOT
from socketlab.lab.lab import Lab
from tests.conftest import lab_config, project_name

pytestmark = pytest.mark.integration
HOSTILE = ROOT / "tests" / "data" / "hostile"
# The capabilities Docker gives every container, and NET_ADMIN: what a lab-image host may hold.
DOCKER_DEFAULT_CAPS = sum(1 << bit for bit in (0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31))
NET_ADMIN = 1 << 12
THROUGH_THE_CLI = ["docker_sock", "root_long", "privileged_extends", "include_privileged",
                   "entrypoint_flush", "build_etc", "mem_8g", "alias_bomb", "binary",
                   "anchor_merge", "interpolation_root", "cap_sys_admin"]


def socketlab(project: str, *argv: str, timeout: float = 180,
              **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "socketlab", "-p", project, *argv],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **env})


def objects_of(client, project: str) -> list[str]:
    label = {"label": f"com.docker.compose.project={project}"}
    return [c.name for c in client.containers.list(all=True, filters=label)] + \
           [n.name for n in client.networks.list(filters=label)]


@pytest.mark.parametrize("case", THROUGH_THE_CLI)
def test_a_hostile_file_is_refused_by_up_in_one_line_and_nothing_is_made(case, docker_client,
                                                                           lab_image):
    project = project_name(f"-hostile-{case.replace('_', '-')}")
    path = HOSTILE / f"{case}.yml"
    refused = path.read_bytes().decode("ascii", "replace").splitlines()[1].removeprefix("# refused: ")

    done = socketlab(project, "up", "--topology", str(path))

    try:
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 64, done.stdout + done.stderr
        assert len(lines) == 2, lines
        assert lines[0].startswith("error: ")
        assert lines[1].startswith("hint: ")
        assert refused in lines[0]
        assert "For more on the Compose file format" not in done.stdout + done.stderr
        assert objects_of(docker_client, project) == []
        assert docker_client.images.list(name="hostile/etc") == []
    finally:
        if objects_of(docker_client, project):
            socketlab(project, "down")


def test_a_hostile_file_named_by_socketlab_topology_is_refused_the_same(docker_client, lab_image):
    project = project_name("-hostile-env")
    path = HOSTILE / "docker_sock.yml"

    done = socketlab(project, "up", SOCKETLAB_TOPOLOGY=str(path))

    assert done.returncode == 64, done.stdout + done.stderr
    assert "host 'server': volumes: /var/run/docker.sock is a system path" in done.stderr
    assert objects_of(docker_client, project) == []


def _inside(lab: Lab, script: str) -> str:
    result = lab.exec("server", ["sh", "-c", script], timeout=20)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def _cgroup(lab: Lab, v2: str, v1: str) -> int:
    value = _inside(lab, f"cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/{v1}")
    return int(value)


def test_an_accepted_file_gives_its_host_no_more_than_the_lab_grants(docker_client, lab_image):
    config = lab_config("-accepted", topology=str(HOSTILE / "accepted" / "lowered_bounds.yml"))
    with Lab(config, client=docker_client) as lab:
        deadline = time.monotonic() + 40  # its command tries to undo the seal for 10 s
        while "tried-for-10s" not in lab.logs("server") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "tried-for-10s" in lab.logs("server")
        assert lab.exec("server", ["lab-seal", "--check"]).exit_code == 0  # it could not

        status = dict(line.split(":\t") for line in
                      _inside(lab, "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status")
                      .splitlines())
        caps = int(status["CapEff"].strip(), 16)
        assert caps & ~(DOCKER_DEFAULT_CAPS | NET_ADMIN) == 0, hex(caps)
        assert (status["Seccomp"].strip(), status["NoNewPrivs"].strip()) == ("2", "1")
        mounts = [line.split()[4] for line in _inside(lab, "cat /proc/self/mountinfo").splitlines()]
        assert "/data" in mounts
        assert "/hostroot" not in mounts
        assert "docker.sock" not in _inside(lab, "cat /proc/self/mountinfo")
        docker_own = ("/", "/data", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts",
                      "/usr/sbin/docker-init")  # tini, for init: true
        assert [m for m in mounts if m not in docker_own
                and not m.startswith(("/proc", "/dev", "/sys"))] == []
        assert _inside(lab, "readlink /proc/1/ns/pid") != os.readlink("/proc/self/ns/pid")
        assert _cgroup(lab, "memory.max", "memory/memory.limit_in_bytes") == 128 * 2**20
        assert _cgroup(lab, "pids.max", "pids/pids.max") == 64
        assert _inside(lab, "cat /proc/sys/net/ipv4/ip_default_ttl") == "32"
        assert _inside(lab, "cat /data/readme.txt").startswith("a file of the lab's")
        nets = docker_client.networks.list(filters={"label": f"com.docker.compose.project="
                                                             f"{lab.config.project}"})
        assert [n.attrs["Internal"] for n in nets] == [True]  # the file said internal: false


def test_a_seal_broken_after_up_is_seen_by_status(lab):
    assert {r["name"]: r["sealed"] for r in lab.status()} == {"server": "yes", "client": "yes"}
    lab.exec("server", ["iptables", "-w", "-F", "LAB-SEAL"])  # as root, from outside: the tools
    try:
        rows = {r["name"]: r["sealed"] for r in lab.status()}
        assert rows["server"].startswith("NO: LAB-SEAL lacks rules for ")
        done = socketlab(lab.config.project, "status")
        assert done.returncode == 1
        assert "warning: host 'server' is not sealed: LAB-SEAL lacks rules" in done.stdout
    finally:
        lab.exec("server", ["lab-seal"])
    assert lab.exec("server", ["lab-seal", "--check"]).exit_code == 0


@pytest.mark.parametrize(("tamper", "seen"), [
    (["iptables", "-w", "-I", "OUTPUT", "1", "-j", "ACCEPT"], "OUTPUT does not jump to LAB-SEAL first"),
    (["iptables", "-w", "-D", "FORWARD", "-j", "LAB-SEAL"], "FORWARD does not jump to LAB-SEAL first"),
    (["iptables", "-w", "-F", "LAB-SEAL-IN"], "LAB-SEAL-IN is not what lab-seal put there"),
    (["iptables", "-w", "-I", "LAB-SEAL", "1", "-j", "RETURN"],
     "LAB-SEAL holds a rule it never had: -j RETURN"),
    (["ip6tables", "-w", "-P", "OUTPUT", "ACCEPT"], "IPv6 OUTPUT is not dropped"),
])
def test_each_way_root_could_undo_the_seal_is_named_by_the_check(lab, tamper, seen):
    lab.exec("client", tamper)
    try:
        assert {r["name"]: r["sealed"] for r in lab.status()}["client"] == f"NO: {seen}"
    finally:
        lab.exec("client", ["lab-seal"])  # sealing again puts it all back
    assert lab.exec("client", ["lab-seal", "--check"]).stdout == "lab-seal: sealed\n"


def test_the_entrypoint_trick_is_seen_when_the_user_opts_in_with_unsealed(docker_client,
                                                                           lab_image):
    project = project_name("-unsealed")
    path = HOSTILE / "entrypoint_flush.yml"
    try:
        done = socketlab(project, "up", "--subnet", "auto", "--topology", str(path),
                         "--unsealed", "server")
        assert done.returncode == 0, done.stderr
        assert "warning: host 'server' runs UNSEALED (--unsealed)" in done.stderr
        deadline, seen = time.monotonic() + 40, ""
        while time.monotonic() < deadline:  # its entrypoint flushes LAB-SEAL 6 s in
            status = socketlab(project, "status", "--json")
            seen = {h["name"]: h["sealed"] for h in json.loads(status.stdout)["hosts"]}["server"]
            if seen == "UNSEALED (--unsealed)":
                break
            time.sleep(0.5)
        assert seen == "UNSEALED (--unsealed)"
        assert "warning: host 'server' runs UNSEALED" in socketlab(project, "status").stdout
        said = socketlab(project, "exec", "client", "true").stderr  # any command on the lab
        assert f"warning: lab '{project}' runs server UNSEALED (--unsealed)" in said
    finally:
        socketlab(project, "down")
    assert objects_of(docker_client, project) == []


def test_the_topologys_dotenv_never_steers_compose(docker_client, lab_image, tmp_path):
    """A .env beside the file fills its variables; compose itself must not read it (its
    DOCKER_HOST would send compose to another engine)."""
    (tmp_path / ".env").write_text("DOCKER_HOST=unix:///nonexistent/docker.sock\n"
                                   "COMPOSE_PROJECT_NAME=someone-else\n")
    (tmp_path / "lab.yml").write_text(
        "services:\n  server: {image: '${SOCKETLAB_IMAGE}', networks: [n]}\n"
        "  client: {image: '${SOCKETLAB_IMAGE}', networks: [n]}\n"
        "networks:\n  n: {ipam: {config: [{subnet: 192.168.33.0/24}]}}\n")
    with Lab(lab_config("-dotenv", topology=str(tmp_path / "lab.yml")), client=docker_client) as lab:
        assert [r["sealed"] for r in lab.status()] == ["yes", "yes"]
        assert objects_of(docker_client, "someone-else") == []


def test_a_host_of_its_own_image_holds_no_capability_to_go_around_its_seal(docker_client, lab_image,
                                                                            tmp_path):
    """Its own image runs as root, as its image says: it has no NET_ADMIN (the seal is in
    iptables, which its sidecar holds) and no NET_RAW (a packet socket would send frames to the
    gateway around iptables). The lab image under another tag stands for an image of yours."""
    own = "socketlab-test/own-lab:" + lab_image.tag.rsplit(":", 1)[-1]
    docker_client.images.get(lab_image.tag).tag(own)
    (tmp_path / "own.yml").write_text(
        f"services:\n  server: {{image: '{own}', command: [sleep, infinity], networks: [n]}}\n"
        f"  client: {{image: '{lab_image.tag}', networks: [n]}}\n"
        "networks:\n  n: {ipam: {config: [{subnet: 192.168.33.0/24}]}}\n")
    try:
        with Lab(lab_config("-own-caps", topology=str(tmp_path / "own.yml")),
                 client=docker_client) as lab:
            caps = int(_inside(lab, "grep CapEff /proc/self/status").split()[1], 16)
            assert caps & (NET_ADMIN | 1 << 13) == 0, hex(caps)  # 13: NET_RAW
            tried = lab.exec("server", ["python3", "-c", "import socket; socket.socket("
                                        "socket.AF_PACKET, socket.SOCK_RAW)"], timeout=20)
            assert "PermissionError" in tried.stderr
            assert [r["sealed"] for r in lab.status()] == ["yes", "yes"]
    finally:
        docker_client.images.remove(own)
