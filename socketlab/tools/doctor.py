"""`socketlab doctor`: what this machine offers the lab, each item tried for real.

Docker and compose versions, the lab image, and the kernel's traffic-control features: those
are lab-shape's own answer (`lab-shape backends`, the probe it decides with), asked inside a
throwaway lab container that has no network at all (`--network none`): the probes touch only
that container's loopback, and the container is removed after.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table
from rich.text import Text

from socketlab.errors import LabError
from socketlab.lab import compose as compose_cli
from socketlab.lab.composefile import LAB_LABEL
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


class _Throwaway:
    """Just enough of a Lab for shaping.backends(): each exec is a new container of the lab
    image with no network at all (the probes touch its loopback only), removed after."""

    def __init__(self, client, image: str) -> None:
        self.client, self.image = client, image

    def exec(self, host: str, argv: list[str], *, timeout: float | None = None) -> ExecResult:
        budget = timeout or 60
        container = self.client.containers.run(
            self.image, ["timeout", "-k", "1", f"{budget:g}", *argv], detach=True,
            network_mode="none", cap_add=["NET_ADMIN"], labels={LAB_LABEL: "1"})
        try:
            code = container.wait(timeout=budget + 10)["StatusCode"]
            out = container.logs(stdout=True, stderr=False).decode(errors="replace")
            err = container.logs(stdout=False, stderr=True).decode(errors="replace")
        finally:
            container.remove(force=True)
        return ExecResult(code, out, err, 0.0)


def shaping_support(config: LabConfig, progress: Callable[[str], None]) -> BackendSupport | None:
    """lab-shape's own answer, asked in a throwaway container; None with no engine or image."""
    import docker.errors

    from socketlab.act import shaping

    try:
        client = connect()
        client.images.get(config.image)
    except (LabError, docker.errors.ImageNotFound):
        return None
    progress("asking lab-shape which backend serves which parameter (a throwaway container)")
    try:
        text = shaping.backends(_Throwaway(client, config.image), "client")  # type: ignore[arg-type]
    except (LabError, docker.errors.DockerException) as e:
        return BackendSupport(error=str(e))
    return parse_backends(text)


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
