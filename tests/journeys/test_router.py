"""The router path: the router topology up, the post's exchange across it, P1 on that
running lab, down."""

from __future__ import annotations

import pytest

from tests.journeys.conftest import ROOT, leftovers

pytestmark = pytest.mark.integration


def test_router_up_run_p1_down(journey, docker_client):
    topology = ROOT / "topologies" / "router.yml"
    up = journey.run("up", "--topology", str(topology))
    for host in ("client", "r1", "r2", "server"):
        assert host in up.stdout
    run = journey.run("run", "tcp").stdout
    assert "nothing lost" in run

    p1 = journey.run("experiment", "P1")  # on the running router lab, which it leaves running
    assert "P1" in p1.stdout, p1.stdout
    assert "holds" in p1.stdout, p1.stdout
    runs = list((journey.cwd / "runs").glob("*-experiments"))
    assert len(runs) == 1
    assert not (runs[0] / ".incomplete").exists()
    assert (runs[0] / "verdicts.json").is_file()
    status = journey.run("status").stdout
    assert "running" in status
    assert "r1" in status

    journey.run("down")
    assert not leftovers(docker_client, journey.project)
