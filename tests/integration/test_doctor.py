"""`socketlab doctor` and `doctor --json` as a user runs them (subprocesses, a real engine): with
no lab running (lab-shape asked in a scratch container, removed after) and with a running lab
(asked in its client host, the lab left running)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from socketlab.errors import ImageError
from socketlab.lab.config import LabConfig
from socketlab.lab.scratch import scratch_host
from tests.conftest import project_name
from tests.integration.test_lab import leftovers

pytestmark = pytest.mark.integration
JSON_KEYS = {"ok", "checks", "probed_in", "shaping"}
CHECKS = ["host", "docker engine", "compose", "lab image", "exec round trip"]


def doctor(project: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "socketlab", "-p", project, "doctor", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})  # a table row on one line
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def assert_shaping_table(shaping: dict) -> None:
    """lab-shape's own answer, read: both backends in both directions, every parameter."""
    assert shaping["error"] == ""
    assert shaping["columns"] == ["egress:netem", "egress:engine", "ingress:netem", "ingress:engine"]
    assert {"delay", "loss", "rate"} <= set(shaping["rows"])
    assert shaping["rows"]["rate"]["egress:engine"] == "yes"  # tbf: the kernel here has it
    assert {"netem", "tbf", "nfqueue"} <= set(shaping["features"])


def test_doctor_with_no_lab_asks_a_scratch_container_and_leaves_nothing(docker_client, lab_image):
    project = project_name("-doctor-none")
    done = doctor(project)
    version = docker_client.version()["Version"]
    for line in CHECKS + [version, "is built from this checkout",
                          "shaping: which backend serves which parameter here"]:
        assert line in done.stdout, line
    assert f"`true` in a scratch container of {LabConfig.from_env().image}" in done.stdout
    assert "exit 0 in" in done.stdout
    assert "scratch container" in done.stderr  # the progress line says where it asks
    assert leftovers(docker_client, f"{project}-doctor") == []
    assert leftovers(docker_client, project) == []


def test_doctor_json_with_no_lab(docker_client, lab_image):
    project = project_name("-doctor-json")
    found = json.loads(doctor(project, "--json").stdout)
    assert set(found) == JSON_KEYS
    assert found["ok"] is True
    names = [c["name"] for c in found["checks"]]
    assert names[:len(CHECKS)] == CHECKS
    assert all(set(c) == {"name", "ok", "detail", "required"} for c in found["checks"])
    assert any(n.startswith("kernel: ") for n in names)
    trip = next(c for c in found["checks"] if c["name"] == "exec round trip")
    assert trip["ok"], trip
    assert "exit 0" in trip["detail"]
    assert found["probed_in"].startswith("a scratch container of ")
    assert_shaping_table(found["shaping"])
    assert leftovers(docker_client, f"{project}-doctor") == []


def test_doctor_on_a_running_lab_asks_its_client_host_and_leaves_it_running(lab):
    project = lab.config.project
    where = f"lab {project!r}, host client"
    text = doctor(project)
    assert "exec round trip" in text.stdout
    assert f"`true` in {where}: exit 0" in text.stdout
    assert "shaping: which backend serves which parameter here" in text.stdout
    found = json.loads(doctor(project, "--json").stdout)
    assert set(found) == JSON_KEYS
    assert found["probed_in"] == where
    assert_shaping_table(found["shaping"])
    assert [r["state"] for r in lab.status()] == ["running"] * len(lab.topology.hosts)


def test_a_scratch_host_is_removed_when_its_block_fails(docker_client, lab_image):
    project, seen = project_name("-scratch"), {}

    def failing_block() -> None:
        with scratch_host(LabConfig.from_env().image, project=project, client=docker_client) as host:
            seen["there"] = leftovers(docker_client, project)
            seen["links"] = host.exec(["ip", "-o", "link"]).stdout
            raise RuntimeError("the block failed")

    with pytest.raises(RuntimeError, match="the block failed"):
        failing_block()
    assert seen["there"], "no scratch container while its block ran"
    assert [line.split(":")[1].strip() for line in seen["links"].splitlines()] == ["lo"]  # no network
    assert leftovers(docker_client, project) == []


def test_a_scratch_host_of_a_missing_image_makes_nothing(docker_client):
    project = project_name("-scratch-noimg")
    with pytest.raises(ImageError, match="socketlab/no-such-image:0 is missing"), \
            scratch_host("socketlab/no-such-image:0", project=project, client=docker_client):
        pytest.fail("the block ran")
    assert leftovers(docker_client, project) == []
