"""`socketlab bench scale`: what a lab of N hosts costs to start and remove, beside the bare
engine doing the same.

For each size, a one-network topology of N lab-image hosts (a server, a client, and N-2 more)
is brought up and down by the whole `socketlab up` and `socketlab down` commands (`up` returns
once every host is set up: sealed, routed, offloads off) and, in turn, round after round, the
very compose file socketlab renders for it is brought up and down by the compose tool alone
(`up -d`, then `down`: it waits for nothing). The ratio is socketlab's whole cost over the bare
engine's, measured in the same run; the same cycle through the API (`Lab.up()`/`down()` in
this process) is shown beside them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from socketlab.lab import compose as compose_cli
from socketlab.lab.composefile import dump, render
from socketlab.lab.config import AUTO, LabConfig
from socketlab.lab.docker_api import connect
from socketlab.lab.lab import Lab
from socketlab.lab.subnets import claim_subnet
from socketlab.tools.bench import BENCH_PROJECT, Figure, interleaved_medians

SIZES = (2, 8, 16, 32, 64)
TARGET = 1.1  # socketlab's up + down within this many times the bare engine's


def scale_topology(n: int) -> str:
    """A compose file of `n` lab-image hosts on one network: server .5, client .6, the rest
    from .7 (a placed /24 holds them all up to 64 and beyond)."""
    if not 2 <= n <= 200:
        raise ValueError("a scale topology has 2 to 200 hosts")
    names = ["server", "client"] + [f"h{i}" for i in range(3, n + 1)]
    lines = ["# socketlab bench scale: " + f"{n} hosts on one network", "services:"]
    for i, name in enumerate(names):
        role = name if name in ("server", "client") else "host"
        lines += [f"  {name}:", "    image: ${SOCKETLAB_IMAGE:-socketlab/lab:latest}",
                  "    init: true", "    cap_add: [NET_ADMIN]",
                  f'    command: ["lab-host", "{role}"]',
                  "    networks:", f"      labnet: {{ipv4_address: 192.168.33.{5 + i}}}"]
    lines += ["networks:", "  labnet:", "    internal: true", "    ipam:",
              "      config: [{subnet: 192.168.33.0/24}]", ""]
    return "\n".join(lines)


def scale(config: LabConfig, *, sizes: Sequence[int] = SIZES, repeat: int = 1,
          progress: Callable[[str], None] = lambda _msg: None) -> list[Figure]:
    """For each size: the median of `repeat` socketlab up + down and bare compose up -d + down,
    taken in turn, and their ratio."""
    client, found = connect(), compose_cli.detect()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="socketlab-bench-scale-") as tmp:
        for n in sizes:
            file = Path(tmp) / f"scale-{n}.yml"
            file.write_text(scale_topology(n))
            cfg = config.with_(project=f"{BENCH_PROJECT}-scale-{os.getpid()}", subnet=AUTO,
                               topology=str(file))

            def api_cycle(cfg: LabConfig = cfg) -> None:
                with Lab(cfg, client=client, compose=found):
                    pass

            def cli_cycle(cfg: LabConfig = cfg, file: Path = file) -> None:
                cli = [sys.executable, "-m", "socketlab", "-p", cfg.project]
                subprocess.run([*cli, "up", "--topology", str(file), "--subnet", AUTO],
                               capture_output=True, check=True, timeout=600)
                subprocess.run([*cli, "down"], capture_output=True, check=True, timeout=600)

            def bare_cycle(cfg: LabConfig = cfg, file: Path = file) -> None:
                bare(client, found, cfg, file, Path(tmp) / "rendered.yml")

            progress(f"{n} hosts: `socketlab up` + `down`, the same through the API, and bare "
                     f"compose up -d + down, {repeat} time(s) each, in turn")
            medians = interleaved_medians({"cli": cli_cycle, "api": api_cycle, "bare": bare_cycle},
                                          repeat)
            ratio = medians["cli"] / medians["bare"]
            figures += [
                Figure(f"{n} hosts: bare compose up -d + down", medians["bare"], "s"),
                Figure(f"{n} hosts: socketlab up + down commands (every host set up)", medians["cli"], "s"),
                Figure(f"{n} hosts: commands / bare", ratio, "x", f"<= {TARGET:g}", ratio <= TARGET),
                Figure(f"{n} hosts: Lab.up() + down() in this process", medians["api"], "s"),
            ]
    return figures


def bare(client, found: compose_cli.Compose, cfg: LabConfig, file: Path, rendered: Path) -> None:
    """The compose file socketlab renders for `cfg`'s topology, up and down by compose alone."""
    with claim_subnet(client) as subnet:  # held until compose has made the network
        placed = cfg.with_(subnet=subnet)
        settings = {**placed.compose_env(), "SOCKETLAB_TOPOLOGY": str(file)}
        rendered.write_text(dump(render(Lab(placed, client=client, compose=found).topology,
                                        lab_image=cfg.image, settings=settings)))
        compose_cli.run_compose(found.argv(cfg.project, rendered, *compose_cli.up_args(),
                                           project_dir=file.parent), settings, timeout=600)
    compose_cli.run_compose(found.argv(cfg.project, rendered, *compose_cli.down_args(),
                                       project_dir=file.parent), settings, timeout=600)
