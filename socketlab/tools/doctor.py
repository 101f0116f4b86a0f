"""`socketlab doctor`: what this machine offers the lab, each item tried for real.

Docker and compose versions, the lab image, an exec round trip, and the kernel's traffic-control
features: those are lab-shape's own answer (`lab-shape backends`, the probe it decides with),
asked in the running lab's client host if the lab runs (it is left running), else in a scratch
container of the lab image that has no network at all (socketlab.lab.scratch: the probes touch
only its loopback, and it is removed after).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table
from rich.text import Text

from socketlab.errors import DockerUnavailable, ImageError, LabError, LabNotRunning
from socketlab.lab import compose as compose_cli
from socketlab.lab.config import LabConfig
from socketlab.lab.docker_api import connect
from socketlab.lab.process import ExecResult


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def run_checks(config: LabConfig, compose_file: Path, context: Path,
               progress: Callable[[str], None]) -> list[Check]:
    from socketlab.lab.images import lab_image_status

    checks = [Check("host", True, f"{platform.system()} {platform.release()}, "
                    f"Python {platform.python_version()}", required=False)]
    try:
        client = connect()
    except LabError as e:
        return checks + [Check("docker engine", False, f"{e} ({e.hint})")]
    version = client.version()
    checks.append(Check("docker engine", True, f"{version.get('Version')} "
                        f"(API {version.get('ApiVersion')}, {client.info().get('Driver')})"))
    try:
        found = compose_cli.detect()
        checks.append(Check("compose", True, f"{' '.join(found.prefix)} {found.version}"))
    except LabError as e:
        checks.append(Check("compose", False, f"{e} ({e.hint})"))
    state = lab_image_status(client, config.image, context)
    checks.append(Check("lab image", state == "current", {
        "current": f"{config.image} is built from this checkout",
        "stale": f"{config.image} was built from other files: run `socketlab build`",
        "missing": f"{config.image} is missing: run `socketlab build`"}[state]))
    return checks


def kernel_checks(support: BackendSupport) -> list[Check]:
    """The kernel's features as lab-shape probed them (the one probe set, labshape/probe.py):
    each feature, what it serves, and why it is missing where it is."""
    from socketlab.lab.shapespec import labshape

    features = labshape().FEATURES
    checks = []
    for name, have in support.features.items():
        if name not in features:
            continue
        why = features[name][1]
        if name == "netem-seed" and not support.features.get("netem"):
            why = "not tried: the kernel has no sch_netem"  # lab-shape probes it only on netem
        checks.append(Check(f"kernel: {name}", have, features[name][0] if have else f"missing: {why}",
                            required=False))
    return checks


def render(checks: list[Check]) -> Table:
    table = Table(title="socketlab doctor", title_justify="left")
    table.add_column("")
    table.add_column("check")
    table.add_column("finding", overflow="fold")
    for check in checks:
        mark = Text("✓", "green") if check.ok else \
            (Text("✗", "red") if check.required else Text("–", "yellow"))
        table.add_row(mark, check.name, check.detail)
    return table


# -- shaping: which backend serves which parameter here (lab-shape's own answer) ---------------
@dataclass(frozen=True)
class BackendSupport:
    """`lab-shape backends`, read: kernel features, and per parameter one cell per column
    (`egress:netem`, ...), each "yes" or "no: why"."""

    features: dict[str, bool] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    error: str = ""

    def why_not(self, backend: str, param: str, direction: str = "egress") -> str:
        """"" when `backend` serves `param` in `direction` here, else why not."""
        cell = self.rows.get(param, {}).get(f"{direction}:{backend}")
        if cell is None:
            return self.error or f"lab-shape did not say whether {backend} serves {param}"
        return "" if cell == "yes" else cell.removeprefix("no: ")


def parse_backends(text: str) -> BackendSupport:
    """`kernel: netem=no tbf=yes ...`, then a tab-separated table with a header row."""
    features: dict[str, bool] = {}
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("kernel:"):
        words = lines.pop(0).split()[1:]
        features = {w.split("=")[0]: w.endswith("=yes") for w in words if "=" in w}
    if not lines:
        return BackendSupport(features, error="lab-shape printed no table")
    columns = lines[0].split("\t")[1:]
    rows = {}
    for line in lines[1:]:
        param, *cells = line.split("\t")
        rows[param] = dict(zip(columns, cells, strict=False))
    return BackendSupport(features, columns, rows)


@dataclass(frozen=True)
class Probe:
    """What doctor asked inside: lab-shape's table, and an exec round trip, in `where`."""

    where: str
    support: BackendSupport
    round_trip: Check


def probe(config: LabConfig, progress: Callable[[str], None]) -> Probe | None:
    """Asked of the running lab (`config.project`), in its client host, which is left running;
    with no such lab, of a scratch container of the lab image (no network; removed after).
    None with no engine or no image (run_checks says which)."""
    from socketlab.lab.lab import Lab

    try:
        lab = Lab.running(config.project)
    except LabNotRunning:
        return _probe_scratch(config, progress)
    except LabError:  # no engine: run_checks has said so
        return None
    host = lab.topology.role_host("client") or lab.topology.hosts[0]
    where = f"lab {config.project!r}, host {host.name}"
    progress(f"asking lab-shape which backend serves which parameter ({where})")
    return _probe(where, lambda argv: lab.exec(host.name, argv, timeout=60, instruments=True))


def _probe_scratch(config: LabConfig, progress: Callable[[str], None]) -> Probe | None:
    from socketlab.lab.scratch import scratch_host

    progress("asking lab-shape which backend serves which parameter (a scratch container, "
             "no network, removed after)")
    try:
        with scratch_host(config.image, project=f"{config.project}-doctor") as host:
            return _probe(f"a scratch container of {config.image} (no network)", host.exec)
    except (ImageError, DockerUnavailable):  # run_checks says so
        return None


def _probe(where: str, run: Callable[[list[str]], ExecResult]) -> Probe:
    """lab-shape's table, then `true` timed: the round trip every command on a lab pays."""
    answer = run(["lab-shape", "backends"])
    if answer.exit_code == 0:
        support = parse_backends(answer.stdout)
    else:
        said = (answer.stderr or answer.stdout).strip().splitlines()
        support = BackendSupport(error=f"`lab-shape backends` failed in {where}: "
                                       f"{said[-1] if said else f'exit {answer.exit_code}'}")
    trip = run(["true"])
    return Probe(where, support, Check("exec round trip", trip.exit_code == 0,
                                      f"`true` in {where}: exit {trip.exit_code} in {trip.seconds:.2f} s"))


def render_backends(support: BackendSupport) -> Table:
    """parameter x backend (egress netem, ...): served, or "no (N)" with reason N below."""
    reasons: dict[str, int] = {}
    table = Table(title="shaping: which backend serves which parameter here", title_justify="left")
    table.add_column("parameter")
    for column in support.columns:
        table.add_column(column.replace(":", " "))
    for param, cells in support.rows.items():
        shown = []
        for column in support.columns:
            cell = cells.get(column) or "no: lab-shape did not say"
            if cell == "yes":
                shown.append(Text("served", "green"))
                continue
            number = reasons.setdefault(cell.removeprefix("no: "), len(reasons) + 1)
            shown.append(Text(f"no ({number})", "yellow"))
        table.add_row(param, *shown)
    have = " ".join(f"{name}={'yes' if ok else 'no'}" for name, ok in support.features.items())
    notes = [f"({n}) {why}" for why, n in reasons.items()] + [f"kernel: {have}"] * bool(have)
    table.caption = "\n".join(notes + [support.error] * bool(support.error)) or None
    table.caption_justify = "left"
    return table
