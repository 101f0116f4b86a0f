"""A lab's owner and the reaper's rule (socketlab.lab.owner, socketlab.lab.reaper), on made-up
labels and a made-up machine: a lab is removed only when its owner is surely gone or its time
to live has passed; a lab without owner labels, another host's, a live owner's are left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from socketlab.lab.composefile import LAB_LABEL, render
from socketlab.lab.engine_compose import PROJECT_LABEL
from socketlab.lab.owner import PID_LABEL, Machine, Owner, boot_id, kept_labels, process_start, stale
from socketlab.lab.reaper import reap, stale_labs

NOW = 1_000_000.0
ALIVE = {100: "5000", 200: "6000"}  # pid -> start ticks of the processes on the made-up machine
HERE = Machine("ci-runner", "boot-1", ALIVE.get)


def owner(pid: int = 100, started: str = "5000", host: str = "ci-runner", boot: str = "boot-1",
          expires: float | None = None) -> Owner:
    return Owner(host, boot, pid, started, expires)


@pytest.mark.parametrize(("who", "gone"), [
    (None, False),                                   # no owner labels: someone else's
    (owner(), False),                                # alive
    (owner(pid=300), True),                          # no such process
    (owner(started="4999"), True),                   # pid 100 is another process now
    (owner(host="laptop", pid=300), False),          # another machine: we cannot tell
    (owner(boot="boot-0", pid=300), False),          # another boot (or a twin's name): left
    (owner(expires=NOW - 1), True),                  # expired, owner alive or not
    (owner(host="laptop", expires=NOW - 1), True),   # expired, wherever its owner is
    (owner(expires=NOW + 60), False),                # not yet
    (owner(started=""), False),                      # start unknown (no /proc): alive is alive
])
def test_the_rule(who, gone):
    assert (stale(who, HERE, NOW) is not None) == gone


def test_the_reason_names_the_owner():
    assert stale(owner(pid=300), HERE, NOW) == "its owner, process 300 on ci-runner, is gone"
    assert "another process's" in stale(owner(started="1"), HERE, NOW)
    assert "time to live ran out 5 s ago" in stale(owner(expires=NOW - 5), HERE, NOW)


def test_labels_round_trip_and_bad_labels_name_no_owner():
    mine = owner(expires=NOW + 60.4)
    assert Owner.from_labels(mine.labels()) == owner(expires=NOW + 60)
    assert Owner.from_labels({**mine.labels(), "io.socketlab.owner.pid": "x"}) is None
    assert Owner.from_labels({LAB_LABEL: "1"}) is None


def labelled(project: str, who: Owner | None) -> dict[str, str]:
    return {LAB_LABEL: "1", PROJECT_LABEL: project, **(who.labels() if who else {})}


def test_a_lab_is_stale_only_if_every_object_of_it_says_so():
    objects = [labelled("dead", owner(pid=300)), labelled("dead", owner(pid=300)),
               labelled("mixed", owner(pid=300)), labelled("mixed", None),
               labelled("live", owner()), labelled("theirs", owner(host="laptop", pid=1)),
               labelled("old", None), {LAB_LABEL: "1"}]
    assert [s.project for s in stale_labs(objects, HERE, NOW)] == ["dead"]


class FakeEngine:
    """The two listing calls the reaper makes, answered from made-up labels."""

    def __init__(self, containers: list[dict], networks: list[dict]) -> None:
        self._c, self._n = containers, networks

    def containers(self, *, all: bool = False, filters: object = None) -> list[dict]:
        return [{"Labels": labels} for labels in self._c]

    def networks(self, *, filters: object = None) -> list[dict]:
        return [{"Labels": labels} for labels in self._n]


def test_reap_removes_the_stale_ones_and_says_what_became_of_each():
    engine = FakeEngine([labelled("dead", owner(pid=300)), labelled("live", owner()),
                         labelled("stuck", owner(pid=301))],
                        [labelled("dead", owner(pid=300)), labelled("halfmade", owner(pid=302))])
    removed: list[str] = []

    def remove(project: str) -> list[str]:
        removed.append(project)
        if project == "stuck":
            raise RuntimeError("network busy\nmore")
        return [f"container {project}_client_1", f"network {project}_labnet"]

    done = reap(engine, machine=HERE, remove=remove, now=lambda: NOW)
    assert removed == ["dead", "halfmade", "stuck"]
    assert [(d.project, bool(d.removed), d.error) for d in done] == [
        ("dead", True, ""), ("halfmade", True, ""), ("stuck", False, "network busy")]
    assert reap(engine, machine=HERE, remove=remove, now=lambda: NOW, dry_run=True)[0].removed == ()
    assert len(removed) == 3  # a dry run removes nothing


def test_this_process_reads_as_alive_and_a_finished_one_as_gone():
    me = Owner.me()
    assert me.pid == os.getpid()
    assert me.started
    assert me.boot == boot_id()
    assert stale(me, Machine.here(), NOW) is None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_start(child.pid) is None
    assert stale(Owner(me.host, me.boot, child.pid, "1"), Machine.here(), NOW) is not None


def test_a_zombie_is_gone(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "42").mkdir()
    rest = " ".join(str(i) for i in range(4, 23))
    (tmp_path / "42" / "stat").write_text(f"42 (py test) Z {rest}")
    assert process_start(42, tmp_path) is None
    (tmp_path / "42" / "stat").write_text(f"42 (py test) S {rest}")
    assert process_start(42, tmp_path) == "22"


def test_every_network_and_container_of_a_rendered_lab_carries_the_owner():
    from socketlab.lab.composefile import read_topology
    from tests.unit.test_topology import LAB, ROUTER_ENV, ROUTER_FILE

    doc = render(read_topology(ROUTER_FILE, ROUTER_ENV, lab_image=LAB), lab_image=LAB,
                 labels=owner().labels())
    objects = [*doc["services"].values(), *doc["networks"].values()]
    assert len(objects) == 7  # four hosts, three networks
    assert all(Owner.from_labels(o["labels"]) == owner() for o in objects)


def test_children_are_the_processes_this_one_started():
    from socketlab.lab.owner import children

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert child.pid not in children(os.getpid())


def test_a_time_to_live_becomes_an_expiry_and_a_line_says_what_became_of_a_lab():
    from socketlab.lab.reaper import Stale

    assert Owner.me(60, machine=HERE, now=lambda: NOW).expires == NOW + 60
    assert Owner.me(machine=HERE, now=lambda: NOW).expires is None
    done = Stale("p", "its owner, process 3 on h, is gone",
                 ("container p_client_1", "container p_server_1", "network p_labnet"))
    assert str(done) == "removed stale lab 'p' (its owner, process 3 on h, is gone): " \
                        "2 containers, 1 network"
    assert "could not be removed: busy" in str(Stale("p", "x", error="busy"))


def test_a_time_to_live_is_read_from_the_environment_and_checked():
    from socketlab.errors import ConfigError
    from socketlab.lab.config import LabConfig

    assert LabConfig.from_env({"SOCKETLAB_TTL": "3600"}).ttl == 3600
    assert LabConfig.from_env({}).ttl == 0
    with pytest.raises(ConfigError, match="SOCKETLAB_TTL='soon' is not a number of seconds"):
        LabConfig.from_env({"SOCKETLAB_TTL": "soon"})
    with pytest.raises(ConfigError, match="negative"):
        LabConfig(ttl=-1)


def test_only_a_kept_lab_names_no_owner():
    from tests.unit.test_engine_seam import FakeEngine, lab_on

    kept = FakeEngine()
    lab_on(kept).up(kept=True)  # `socketlab up`'s way: the lab outlives this process
    assert PID_LABEL not in kept.labels
    owned = FakeEngine()
    with lab_on(owned):
        assert owned.labels[PID_LABEL] == str(os.getpid())


def test_owner_labels_of_the_socketlab_that_labelled_up_too_are_left_alone():
    """An earlier socketlab put owner labels on `socketlab up`'s labs too (its process exits at
    once): without the removes-it label, such labels name no owner, so no reaper takes them."""
    from socketlab.lab.owner import REMOVES_LABEL

    earlier = {k: v for k, v in owner(pid=300).labels().items() if k != REMOVES_LABEL}
    assert Owner.from_labels(earlier) is None
    assert stale_labs([labelled("up", None) | earlier], HERE, NOW) == []
    assert [s.project for s in stale_labs([labelled("x", owner(pid=300))], HERE, NOW)] == ["x"]


# -- a kept lab (`socketlab up`): meant to outlive the process that made it --------------------------
@pytest.mark.parametrize(("ttl", "at", "gone"), [
    (0.0, NOW + 10**9, False),  # no time to live: left until `down`, whoever is gone
    (60.0, NOW + 59, False),    # not yet expired
    (60.0, NOW + 61, True),     # expired: any socketlab may remove it
])
def test_a_kept_lab_is_never_a_gone_owners(ttl, at, gone):
    labels = kept_labels(ttl, now=lambda: NOW)
    assert PID_LABEL not in labels  # it names no process whose end could make it stale
    assert (stale(Owner.from_labels(labels), HERE, at) is not None) == gone
