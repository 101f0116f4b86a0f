"""`socketlab doctor`: what this machine offers the lab, each item tried for real.

Docker and compose versions, the lab image, and the kernel's traffic-control features,
probed inside a throwaway lab container that has no network at all (`--network none`):
the probes touch only that container's loopback, and the container is removed after.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from socketlab.errors import LabError
from socketlab.lab import compose as compose_cli
from socketlab.lab.config import LabConfig
from socketlab.lab.docker_api import connect
from socketlab.lab.lab import LAB_LABEL
from socketlab.lab.process import ExecResult

# name -> (shell command run as root with NET_ADMIN in a container with no network, what it is for)
KERNEL_PROBES: dict[str, tuple[str, str]] = {
    "netem": ("tc qdisc add dev lo root netem delay 1ms && tc qdisc del dev lo root",
              "delay, loss, duplication, reordering, corruption (sch_netem)"),
    "tbf": ("tc qdisc add dev lo root tbf rate 1mbit burst 32kbit latency 50ms "
            "&& tc qdisc del dev lo root", "rate limit (token bucket)"),
    "htb": ("tc qdisc add dev lo root handle 1: htb default 1 && tc qdisc del dev lo root",
            "rate limit with classes"),
    "ifb": ("ip link add slab-ifb0 type ifb && ip link del slab-ifb0",
            "shaping what arrives at a host (ingress redirected to ifb)"),
    "ingress+mirred": ("ip link add slab-ifb1 type ifb && tc qdisc add dev lo ingress && "
                       "tc filter add dev lo parent ffff: u32 match u32 0 0 action mirred egress "
                       "redirect dev slab-ifb1 && tc qdisc del dev lo ingress && "
                       "ip link del slab-ifb1", "redirecting arriving packets"),
    "iptables statistic": ("iptables -A OUTPUT -o lo -m statistic --mode random --probability "
                           "0.5 -j ACCEPT && iptables -D OUTPUT -o lo -m statistic --mode random "
                           "--probability 0.5 -j ACCEPT", "random loss without netem"),
    "NFQUEUE": ("iptables -A OUTPUT -o lo -p udp --dport 9 -j NFQUEUE --queue-num 0 && "
                "iptables -D OUTPUT -o lo -p udp --dport 9 -j NFQUEUE --queue-num 0",
                "per-packet decisions in user space (delay, reorder, packet-exact faults)"),
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def probe_script() -> str:
    """One shell script that runs every probe and prints `name<TAB>ok|fail<TAB>detail`."""
    lines = ['probe() { if out=$(sh -c "$2" 2>&1); then printf "%s\\tok\\t\\n" "$1"; '
             'else printf "%s\\tfail\\t%s\\n" "$1" "$(printf %s "$out" | tr "\\n" " " | head -c 160)"; fi; }']
    for name, (command, _why) in KERNEL_PROBES.items():
        lines.append(f"probe {_quote(name)} {_quote(command)}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def parse_probes(output: str) -> list[Check]:
    checks = []
    for line in output.splitlines():
        name, _, rest = line.partition("\t")
        state, _, detail = rest.partition("\t")
        if name in KERNEL_PROBES:
            why = KERNEL_PROBES[name][1]
            checks.append(Check(f"kernel: {name}", state == "ok",
                                why if state == "ok" else f"missing: {detail or why}",
                                required=False))
    return checks


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
    if state == "missing":
        return checks
    progress("probing the kernel's traffic-control features in a throwaway container")
    output = client.containers.run(config.image, ["sh", "-c", probe_script()], remove=True,
                                   network_mode="none", cap_add=["NET_ADMIN"],
                                   labels={LAB_LABEL: "1"}, stdout=True, stderr=True)
    return checks + parse_probes(output.decode(errors="replace"))


def render(checks: list[Check]) -> Table:
    table = Table(title="socketlab doctor", title_justify="left")
    table.add_column("")
    table.add_column("check")
    table.add_column("finding", overflow="fold")
    for check in checks:
        mark = "[green]✓[/]" if check.ok else ("[red]✗[/]" if check.required else "[yellow]–[/]")
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
                shown.append("[green]served[/]")
                continue
            number = reasons.setdefault(cell.removeprefix("no: "), len(reasons) + 1)
            shown.append(f"[yellow]no ({number})[/]")
        table.add_row(param, *shown)
    have = " ".join(f"{name}={'yes' if ok else 'no'}" for name, ok in support.features.items())
    notes = [f"({n}) {why}" for why, n in reasons.items()] + [f"kernel: {have}"] * bool(have)
    table.caption = "\n".join(notes + [support.error] * bool(support.error)) or None
    table.caption_justify = "left"
    return table
