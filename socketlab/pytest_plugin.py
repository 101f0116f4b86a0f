"""socketlab's pytest plugin (entry point `pytest11`: installed with socketlab, on by itself).

    def test_the_client_retries(lab, fault, capture):
        with fault(lab, "server", "drop tcp flags=SA nth=1") as f, capture(lab) as wire:
            done = lab.exec("client", ["python3", "/lab/programs/tcp_client.py",
                                       "--host", lab.config.server_ip])
        assert len(f.fired) == 1                          # exactly that SYN-ACK was dropped
        assert wire.count("tcp", flags="S") == 2          # so the client sent its SYN again

Fixtures:
  lab          a lab of this test's own (unique project name, a free subnet), always removed;
               settings from `@pytest.mark.socketlab(...)` (LabConfig's fields), e.g.
               topology="kv/compose.yml" (beside the test file): your own compose file, whose
               own images (`image:` + `build:`) are built first when missing or out of date.
               Its whole traffic is recorded (tcpdump in each host); only a failing test's
               pcaps are copied out and its ladder drawn (a passing test's capture is
               discarded in its hosts); record="always": for every test; record=False: none.
               reuse="module" (or "session"): one lab for the tests of the module (or
               of the run, per xdist worker) with the same settings, put back to a known state
               before each later test (socketlab.act.reset: programs started since ended,
               shaping and faults cleared, conntrack, neighbour and route caches flushed; its
               cost is the JUnit property socketlab-reset-seconds). ready=[PortOpen("server",
               6379), LogLine(...), CommandSucceeds(...)] (socketlab.act.waits): waited for
               before the test, within ready_timeout (default 60 s).
  lab_factory  session-wide: `with lab_factory(**settings) as lab:` in a fixture of any scope
               (module, session) gives such a lab to many tests. Labs still up at the end of
               the session (or on Ctrl-C, or SIGTERM) are removed. engine="swarm" (or
               SOCKETLAB_ENGINE=swarm) puts the hosts on swarm nodes, place={"client": "n2"}.
  capture      `with capture(lab) as wire:` tcpdump on every host around the block; after it,
               `wire` is the dissected exchange (socketlab.observe.wire.Wire).
  shape        `with shape(lab, "client", "loss 10% seed 7"):` cleared on the way out.
  fault        `with fault(lab, "server", "drop tcp flags=SA nth=1") as f:` f.fired after.
  counters     `counters(lab, "server")`: the host's kernel counters now, a dict.

On a failing test, its pcaps and ladders (text and SVG) stay in
`socketlab-artifacts/<test>/` (`--socketlab-artifacts DIR`), their paths go into the JUnit
report as properties and into the terminal summary; a passing test's are removed.
Without Docker a test that needs a lab is skipped, or fails when CI=true. Lab names are
`socketlab-pytest-<worker>-<pid>-<random>` (SOCKETLAB_PYTEST_PREFIX replaces the first part).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator

    import pluggy

ARTIFACTS = "socketlab-artifacts"
PROPERTY = "socketlab"  # JUnit property names start with it: socketlab pcap (client), ...
LADDER_LINES = 60  # the most of a failing test's ladder the terminal summary shows
_DIR = pytest.StashKey[Path]()
_FAILED = pytest.StashKey[bool]()


# ---------------------------------------------------------------- options and hooks
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("socketlab", "socketlab labs")
    group.addoption("--socketlab-artifacts", metavar="DIR", default=None,
                    help=f"where failing tests keep their pcaps and ladders (default: {ARTIFACTS}/ "
                         "in the rootdir; ini socketlab_artifacts)")
    parser.addini("socketlab_artifacts", f"where failing tests keep their pcaps and ladders "
                  f"(default {ARTIFACTS})", default=ARTIFACTS)
    group.addoption("--socketlab-no-reap", action="store_true", default=False,
                    help="do not remove stale labs (their owner gone, or their time to live "
                         "passed) when the run starts")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "socketlab(**settings): the `lab` fixture's settings "
                            "(LabConfig fields, e.g. offloads=True), record=False to not record")
    from socketlab.pytest_cancel import Cancel

    config.pluginmanager.register(Cancel(config), "socketlab-cancel")
    config.pluginmanager.register(_Kept(), "socketlab-kept")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo
                              ) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """Any failing phase marks the test; after teardown its files are kept (and named in the
    teardown report's properties) or removed."""
    if call.when == "teardown":
        _settle_artifacts(item, failed=item.stash.get(_FAILED, False) or call.excinfo is not None)
    outcome = yield
    if outcome.get_result().failed:
        item.stash[_FAILED] = True


def _settle_artifacts(item: pytest.Item, failed: bool) -> None:
    folder = item.stash.get(_DIR, None)
    if folder is None or not folder.exists():
        return
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not failed or not files:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the root too, once no test keeps anything there
            folder.parent.rmdir()
        return
    for path in files:
        item.user_properties.append((f"{PROPERTY} {_label(folder, path)}", str(path)))


def _label(folder: Path, path: Path) -> str:
    """`capture-1 ladder.txt` for folder/<time>-capture-1/ladder.txt."""
    parent = re.sub(r"^\d{8}-\d{6}-", "", path.parent.name) if path.parent != folder else ""
    return f"{parent} {path.name}".strip()


class _Kept:
    """The failing tests' files, from their teardown reports (which reach the controlling
    process under pytest-xdist too), listed with their ladders at the end of the run."""

    def __init__(self) -> None:
        self.reports: list[pytest.TestReport] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and _kept_files(report):
            self.reports.append(report)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.reports:
            return
        terminalreporter.section("socketlab: what crossed the wire in failing tests")
        for report in self.reports:
            terminalreporter.write_line(report.nodeid)
            for name, path in _kept_files(report):
                terminalreporter.write_line(f"  {name}: {path}")
            for _name, path in _kept_files(report):
                if path.endswith("ladder.txt") and Path(path).exists():
                    lines = Path(path).read_text().splitlines()
                    for line in lines[:LADDER_LINES]:
                        terminalreporter.write_line(f"    {line}")
                    if len(lines) > LADDER_LINES:
                        terminalreporter.write_line(f"    ... {len(lines) - LADDER_LINES} more lines")


def _kept_files(report: pytest.TestReport) -> list[tuple[str, str]]:
    return [(name.removeprefix(PROPERTY).strip(), str(value))
            for name, value in report.user_properties if name.startswith(f"{PROPERTY} ")]


# ---------------------------------------------------------------- the engine and the image
def docker_or_skip():
    """A Docker client, or the test skipped saying why (failed instead when CI=true or
    SOCKETLAB_REQUIRE_DOCKER=1: CI never goes green by skipping)."""
    from socketlab.errors import LabError
    from socketlab.lab.docker_api import connect

    try:
        return connect()
    except LabError as e:
        reason = f"socketlab: Docker unavailable: {e}"
    if os.environ.get("CI") == "true" or os.environ.get("SOCKETLAB_REQUIRE_DOCKER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class LabFactory:
    """`with factory(**settings) as lab:` a started lab of its own, removed on the way out."""

    def __init__(self, progress: Callable[[str], None] = lambda _msg: None) -> None:
        self.progress = progress
        self._client = None
        self._live: dict[str, Any] = {}

    @property
    def client(self):
        if self._client is None:
            client = docker_or_skip()
            from socketlab.lab.assets import IMAGE_CONTEXT
            from socketlab.lab.config import LabConfig
            from socketlab.lab.images import ensure_lab_image

            ensure_lab_image(client, LabConfig.from_env().image, IMAGE_CONTEXT, self.progress)
            self._client = client
        return self._client

    @contextlib.contextmanager
    def __call__(self, **settings: Any) -> Iterator[Any]:
        from socketlab.lab.config import LabConfig, unique_project

        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        prefix = os.environ.get("SOCKETLAB_PYTEST_PREFIX", "socketlab-pytest")
        settings.setdefault("project", unique_project(f"{prefix}-{worker}"))
        if settings.get("topology"):  # your own compose file: its own images built first
            from socketlab.lab.images import ensure_compose_images

            settings["topology"] = str(Path(settings["topology"]).resolve())
            ensure_compose_images(Path(settings["topology"]), self.client, self.progress)
        lab = self._lab(LabConfig, settings)
        self._live[lab.config.project] = lab
        try:
            with lab:
                yield lab
        finally:
            self._live.pop(lab.config.project, None)

    def _lab(self, config_class, settings: dict[str, Any]):
        """A Lab on this engine; with engine="swarm" (or SOCKETLAB_ENGINE=swarm) on the swarm's
        nodes (SOCKETLAB_SWARM_NODES, else the sandbox), placed as place={host: node} says."""
        engine = settings.pop("engine", None) or os.environ.get("SOCKETLAB_ENGINE") or "compose"
        place = settings.pop("place", None)
        if engine != "swarm":
            from socketlab.lab.lab import Lab

            return Lab(config_class.isolated(**settings), client=self.client)
        from socketlab.lab.swarm import Swarm, parse_place
        from socketlab.lab.swarm_lab import SwarmLab

        _ = self.client  # the lab image, built here first: the swarm engine copies it to its nodes
        place = parse_place(place) if isinstance(place, str) else place
        return SwarmLab(config_class.isolated(**settings), swarm=Swarm.from_settings(), place=place)

    def close(self) -> None:
        """Remove every lab still up (a generator fixture that was never finished)."""
        for lab in list(self._live.values()):
            with contextlib.suppress(Exception):
                lab.down()
        self._live.clear()


@pytest.fixture(scope="session")
def lab_factory() -> Iterator[LabFactory]:
    factory = LabFactory()
    try:
        yield factory
    finally:
        factory.close()


# ---------------------------------------------------------------- per test
def _artifacts_root(config: pytest.Config) -> Path:
    chosen = config.getoption("socketlab_artifacts") or config.getini("socketlab_artifacts")
    return Path(config.rootpath, chosen)


def _test_dir(request: pytest.FixtureRequest) -> Path:
    """This test's folder for files (made on first use, emptied from an earlier run)."""
    node = request.node
    if _DIR not in node.stash:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", node.nodeid).strip("-")[:150]
        folder = _artifacts_root(request.config) / name
        shutil.rmtree(folder, ignore_errors=True)
        for _ in range(10):  # another worker may remove the empty root between two mkdirs
            with contextlib.suppress(FileNotFoundError):
                folder.mkdir(parents=True)
                break
        node.stash[_DIR] = folder
    return node.stash[_DIR]


@pytest.fixture(scope="module")
def _socketlab_module_labs(lab_factory: LabFactory) -> Iterator[Any]:
    from socketlab.pytest_shared import shared

    with shared(lab_factory) as labs:
        yield labs


@pytest.fixture(scope="session")
def _socketlab_session_labs(lab_factory: LabFactory) -> Iterator[Any]:
    from socketlab.pytest_shared import shared

    with shared(lab_factory) as labs:
        yield labs


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_factory: LabFactory) -> Iterator[Any]:
    from socketlab.pytest_shared import RESET_PROPERTY, ready, scope_of

    marker = request.node.get_closest_marker("socketlab")
    settings = dict(marker.kwargs) if marker else {}
    record = settings.pop("record", True)
    reuse = settings.pop("reuse", None)
    conditions, budget = settings.pop("ready", ()), settings.pop("ready_timeout", 60.0)
    if settings.get("topology"):  # a relative path is the test file's neighbour
        settings["topology"] = str(Path(request.path).parent / settings["topology"])
    with contextlib.ExitStack() as stack:
        if reuse is None:
            the_lab = stack.enter_context(lab_factory(**settings))
        else:
            labs = request.getfixturevalue(f"_socketlab_{scope_of(reuse)}_labs")
            the_lab, took = labs.get(settings)
            if took is not None:
                request.node.user_properties.append((RESET_PROPERTY, f"{took:.3f}"))
        ready(the_lab, conditions, budget)
        if record:
            from socketlab.observe.wire import watching

            def keep() -> bool:  # asked after the test: files only for a failure, or if asked
                return record == "always" or request.node.stash.get(_FAILED, False)
            stack.enter_context(watching(the_lab, _test_dir(request), name="whole-test",
                                         counters=False, keep=keep))
        yield the_lab


@pytest.fixture
def capture(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """`capture(lab, hosts=None, *, name="capture", between=("client", "server"))`."""
    from socketlab.observe.wire import watching

    count = iter(range(1, 1000))

    def start(the_lab, hosts=None, *, name: str | None = None, **options: Any):
        return watching(the_lab, _test_dir(request), hosts, name=name or f"capture-{next(count)}",
                        **options)
    return start


class Shaping:
    """What a shape or fault block did, read once it has ended: the backend that served it,
    the faults that fired (lab-nfq's log lines), lab-nfq's counts, what was left (nothing)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    @property
    def backend(self) -> str | None:
        return self.record.get("backend")

    @property
    def fired(self) -> list[dict[str, Any]]:
        return list(self.record.get("nfq_faults") or [])

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.record.get("nfq_summary") or {})

    @property
    def left(self) -> list[str]:
        return list(self.record.get("left") or [])


@contextlib.contextmanager
def _shaped(the_lab, host: str, spec: str, direction: str, faults: list) -> Iterator[Shaping]:
    from socketlab.act.shaping import shaped

    with shaped(the_lab, host, spec, direction, faults=faults) as record:
        yield Shaping(record)


@pytest.fixture
def shape() -> Callable[..., Any]:
    """`shape(lab, host, spec, direction="egress")`: a netem-like spec for the block."""
    def start(the_lab, host: str, spec: str, direction: str = "egress"):
        return _shaped(the_lab, host, spec, direction, [])
    return start


@pytest.fixture
def fault() -> Callable[..., Any]:
    """`fault(lab, host, "drop tcp flags=SA nth=1", ...)`: packet-exact faults for the block."""
    from socketlab.act.shaping import parse_fault

    def start(the_lab, host: str, *faults: str, direction: str = "egress"):
        return _shaped(the_lab, host, "", direction, [parse_fault(f) for f in faults])
    return start


@pytest.fixture
def counters() -> Callable[[Any, str], dict[str, int]]:
    """`counters(lab, host)`: /proc/net/snmp, /proc/net/netstat, link and qdisc counters."""
    from socketlab.observe.counters import snapshot

    return snapshot
