"""The Lab over the engine seam, with a fake engine: what the Lab asks of an engine, and that
nothing above the engine needs Docker."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from socketlab.errors import (
    ComposeError,
    ConfigError,
    LabError,
    LabExists,
    LabNotRunning,
    UnknownHost,
)
from socketlab.lab.assets import ROOT
from socketlab.lab.config import LabConfig
from socketlab.lab.engine import Container, Engine, Running, make_engine
from socketlab.lab.lab import Lab
from socketlab.lab.process import ExecResult

ROUTER = str(ROOT / "topologies" / "router.yml")
IMAGE = "socketlab/lab:test"


class FakeEngine(Engine):
    """An engine in memory: it records what it is asked and keeps containers as data."""

    name = "fake"

    def __init__(self, project: str = "t", *, taken=None, fail_start: bool = False, **kw) -> None:
        super().__init__(project, **kw)
        self.calls: list[tuple] = []
        self.made: dict[str, Container] = {}
        self.nets: dict[str, str | None] = {}
        self.taken = dict(taken or {})
        self.fail_start = fail_start
        self.topo = None
        self.settings: dict[str, str] = {}
        self.setup_code = 0  # what `lab-ready --setup` answers

    def create(self, topology, settings, *, lab_image, labels=None):
        self.calls.append(("create", lab_image))
        self.labels = dict(labels or {})
        self.topo, self.settings = topology, dict(settings)
        self.nets = {n.name: n.subnet for n in topology.networks}
        for h in topology.hosts:
            self.made[h.name] = Container(h.name, "created", h.name[:3], h.ip)
            if h.sidecar:
                self.made[h.sidecar] = Container(h.sidecar, "created", "side", "-", h.name)

    def start(self):
        self.calls.append(("start",))
        if self.fail_start:
            raise ComposeError("the lab's server did not stay running")
        self.made = {s: Container(c.service, "running", c.id, c.address, c.sidecar_of)
                     for s, c in self.made.items()}

    def remove(self):
        self.calls.append(("remove",))
        gone = [f"container {s}" for s in self.made] + [f"network {n}" for n in self.nets]
        self.made, self.nets = {}, {}
        return gone

    def leftovers(self):
        return [f"container {s}" for s in self.made] + [f"network {n}" for n in self.nets]

    def containers(self):
        return dict(self.made)

    def networks(self):
        return dict(self.nets)

    def running(self):
        if not self.made or any(c.state != "running" for c in self.made.values()):
            raise LabNotRunning(f"lab {self.project!r} is not running")
        return Running(self.topo, self.settings, IMAGE)

    def subnets_in_use(self):
        return {k: ipaddress.IPv4Network(v) for k, v in self.taken.items()}

    def has_image(self, image):
        return image == IMAGE

    def version(self):
        return "0.0"

    def exec(self, service, argv, *, timeout=None):
        self.calls.append(("exec", service, tuple(argv)))
        code = self.setup_code if tuple(argv[:2]) == ("lab-ready", "--setup") else 0
        return ExecResult(code, "ok\n", "", 0.0)

    def start_exec(self, service, argv, *, timeout, gated=False):
        raise NotImplementedError

    def put(self, service, src, dest):
        self.calls.append(("put", service, str(src), dest))

    def get(self, service, src, dest):
        self.calls.append(("get", service, src))
        return dest

    def read_file(self, service, path):
        return None

    def logs(self, service):
        return ""


def lab_on(engine: FakeEngine, **settings) -> Lab:
    return Lab(LabConfig(project="t", image=IMAGE, **settings), engine=engine)


def test_up_creates_the_placed_topology_then_starts_it():
    engine = FakeEngine()
    said: list[str] = []
    lab = lab_on(engine)
    lab.progress = said.append
    lab.up()
    assert engine.calls[:2] == [("create", IMAGE), ("start",)]
    setups = {c[1] for c in engine.calls[2:] if c[2][:2] == ("lab-ready", "--setup")}
    assert setups == {"server", "client"}  # up returns once each host has set its network up
    assert [h.ip for h in engine.topo.hosts] == ["192.168.33.5", "192.168.33.6"]
    assert engine.settings["SOCKETLAB_PORT"] == "6666"
    assert said == ["starting lab 't' on 192.168.33.0/24 (server 192.168.33.5, client 192.168.33.6)"]
    assert [r["state"] for r in lab.status()] == ["running", "running"]
    assert lab.subnet_in_use() == "192.168.33.0/24"


def test_subnet_auto_claims_one_free_subnet_per_network():
    engine = FakeEngine(taken={"theirs": "192.168.128.0/24"})
    lab = lab_on(engine, subnet="auto", topology=ROUTER)
    lab.up()
    subnets = [ipaddress.IPv4Network(n.subnet) for n in engine.topo.networks]
    assert len(set(subnets)) == 3
    assert not any(s.overlaps(ipaddress.IPv4Network("192.168.128.0/24")) for s in subnets)
    assert lab.config.subnet == str(subnets[0])
    assert lab.config.client_ip == str(subnets[0].network_address + 6)  # the file's .6, moved
    assert lab.config.server_ip == str(subnets[2].network_address + 5)
    routes = dict(engine.topo.routes()["client"])
    assert routes[str(subnets[2])] == str(subnets[0].network_address + 2)  # via r1


def test_a_taken_subnet_is_refused_before_the_engine_creates_anything():
    engine = FakeEngine(taken={"other-lab_labnet": "192.168.33.0/25"})
    with pytest.raises(ConfigError, match="overlaps Docker network 'other-lab_labnet'"):
        lab_on(engine).up()
    assert ("create", IMAGE) not in engine.calls
    assert engine.calls == [("remove",)]  # the roll-back found nothing to remove


def test_a_failed_start_removes_what_was_created():
    engine = FakeEngine(fail_start=True)
    with pytest.raises(ComposeError, match="did not stay running"):
        lab_on(engine).up()
    assert engine.calls == [("create", IMAGE), ("start",), ("remove",)]
    assert engine.leftovers() == []


def test_a_host_that_never_finishes_its_set_up_fails_the_start_and_is_removed():
    engine = FakeEngine()
    engine.setup_code = 1
    with pytest.raises(LabError, match="server did not set its network up in 20 s"):
        lab_on(engine).up()
    assert engine.calls[-1] == ("remove",)
    assert engine.leftovers() == []


def test_a_lab_of_that_name_already_there_is_left_alone():
    engine = FakeEngine()
    lab_on(engine).up()
    engine.calls.clear()
    with pytest.raises(LabExists, match="already running"):
        lab_on(engine).up()
    assert engine.calls == []


def test_the_running_lab_is_read_back_from_the_engine():
    engine = FakeEngine()
    lab_on(engine, subnet="auto", topology=ROUTER, port=7000).up()
    again = Lab.running("t", engine=engine)
    assert again.topology.names == ("client", "r1", "r2", "server")
    assert (again.config.server_ip, again.config.client_ip) == (engine.topo.ip("server"),
                                                                 engine.topo.ip("client"))
    assert again.config.port == 7000
    assert Path(again.config.topology) == Path(ROUTER)


def test_instruments_run_in_the_sidecar_of_a_host_with_its_own_image(tmp_path):
    own = tmp_path / "own.yml"
    own.write_text(f"""
services:
  server: {{image: my/service, networks: {{n: {{ipv4_address: 10.9.0.5}}}}}}
  client: {{image: {IMAGE}, networks: {{n: {{ipv4_address: 10.9.0.6}}}}}}
networks:
  n: {{ipam: {{config: [{{subnet: 10.9.0.0/24}}]}}}}
""")
    engine = FakeEngine()
    lab = lab_on(engine, subnet="10.9.0.0/24", topology=str(own))
    lab.up()
    lab.exec("server", ["ss", "-tan"])
    lab.exec("server", ["tc", "qdisc"], instruments=True)
    lab.exec("client", ["tc", "qdisc"], instruments=True)
    lab.get("server", "/tmp/x.pcap", tmp_path / "x.pcap", instruments=True)
    assert sorted(c[1] for c in engine.calls[2:4]) == ["client", "server-instruments"]  # set up
    assert sorted(c[1:] for c in engine.calls[4:6]) == [  # sealed? asked where the tools are
        ("client", ("lab-seal", "--check")), ("server-instruments", ("lab-seal", "--check"))]
    assert [c[:2] for c in engine.calls[6:]] == [("exec", "server"), ("exec", "server-instruments"),
                                                 ("exec", "client"), ("get", "server-instruments")]
    assert [r["name"] for r in lab.status()] == ["server", "client"]  # sidecars are no hosts


def test_an_unknown_host_is_refused_naming_the_hosts_and_the_engine_is_not_asked():
    engine = FakeEngine()
    lab = lab_on(engine)
    with pytest.raises(UnknownHost, match="unknown host 'router'") as info:
        lab.exec("router", ["ip", "addr"])
    assert info.value.hint == "the lab's hosts are server, client"
    assert engine.calls == []


def test_put_copies_what_exists_and_refuses_what_does_not(tmp_path):
    engine = FakeEngine()
    lab = lab_on(engine)
    (tmp_path / "prog.py").write_text("print('hi')\n")
    lab.put("client", tmp_path / "prog.py", "/work/prog.py")
    assert engine.calls == [("put", "client", str(tmp_path / "prog.py"), "/work/prog.py")]
    with pytest.raises(ConfigError, match="does not exist"):
        lab.put("client", tmp_path / "missing", "/work/x")


def test_a_missing_lab_image_stops_up_before_anything_is_made():
    engine = FakeEngine()
    with pytest.raises(Exception, match="the lab image other/image is missing"):
        Lab(LabConfig(project="t", image="other/image"), engine=engine).up()
    assert engine.calls == []


def test_engines_are_chosen_by_name():
    assert make_engine("compose", "p").name == "compose"
    with pytest.raises(ConfigError, match="unknown engine 'k8s'"):
        make_engine("k8s", "p")


def test_status_names_a_host_as_ls_does():
    """One key per fact across the JSON outputs: a host's own name is `name` in `status --json`
    as in `ls --json` (`host` is kept for a reference to a host, as in `shape --json`)."""
    from dataclasses import fields

    from socketlab.lab.inventory import HostInfo

    lab = lab_on(FakeEngine())
    lab.up()
    listed = {f.name for f in fields(HostInfo)} - {"instruments"}  # ls drops it from its JSON

    assert all(set(row) >= listed for row in lab.status())


class BrokenSeal(FakeEngine):
    """A lab whose server says its seal is gone (as after the entrypoint trick of issue 16)."""

    def exec(self, service, argv, *, timeout=None):
        if tuple(argv) == ("lab-seal", "--check") and service == "server":
            self.calls.append(("exec", service, tuple(argv)))
            return ExecResult(1, "lab-seal: not sealed: the chain LAB-SEAL is gone\n", "", 0.0)
        return super().exec(service, argv, timeout=timeout)


def test_up_asks_every_host_for_its_seal_and_a_broken_one_rolls_the_lab_back():
    engine = BrokenSeal()
    lab = lab_on(engine)
    with pytest.raises(LabError, match="host .server. is not sealed: the chain "
                                       "LAB-SEAL is gone") as info:
        lab.up()
    assert "nothing of the lab is left" in info.value.hint
    assert engine.calls[-1] == ("remove",)
    assert engine.leftovers() == []


def test_a_host_started_unsealed_is_warned_of_not_required(tmp_path):
    said: list[str] = []
    engine = BrokenSeal()
    lab = Lab(LabConfig(project="t", image=IMAGE, unsealed=("server",)), engine=engine,
              progress=said.append)
    lab.up()
    assert any("host 'server' runs UNSEALED (--unsealed)" in line for line in said)
    rows = {r["name"]: r["sealed"] for r in lab.status()}
    assert rows == {"server": "UNSEALED (--unsealed)", "client": "yes"}


def test_a_run_on_a_lab_with_an_unsealed_host_says_so_in_its_meta():
    from socketlab.experiments.base import run_meta

    sealed = lab_on(FakeEngine()).up()
    unsealed = Lab(LabConfig(project="t", image=IMAGE, unsealed=("server",)),
                   engine=FakeEngine()).up()

    assert not any("UNSEALED" in key for key in run_meta(sealed))
    assert run_meta(unsealed)["UNSEALED hosts (--unsealed)"] == "server"


class OldImage(FakeEngine):
    """A lab started from an image whose lab-seal knows no --check."""

    def exec(self, service, argv, *, timeout=None):
        if tuple(argv) == ("lab-seal", "--check"):
            return ExecResult(1, "", "usage: lab-seal [--show]\n", 0.0)
        return super().exec(service, argv, timeout=timeout)


def test_a_seal_that_cannot_be_asked_says_so_not_that_it_is_gone():
    lab = lab_on(OldImage())
    lab.engine.setup_code = 0
    seals = lab.seals()
    assert [s.words for s in seals] == ["NO: cannot tell: its image's lab-seal has no --check "
                                        "(rebuild: `socketlab build`)"] * 2
