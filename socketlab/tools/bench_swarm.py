"""`socketlab bench swarm`: the lab across Docker Swarm nodes, measured on a sandbox of its own.

Figures side by side: a sandbox's up and down (two dockerds, the swarm, the image copied to
both nodes), a lab's up and down on it, and the same UDP pings and bounded TCP transfer with
both hosts on one node and with the hosts on two nodes. Both layouts use the same overlay;
across nodes every frame also crosses the veth inside VXLAN, so the difference between the
two is what the overlay's encapsulation costs. Every flood is bounded (bytes and seconds).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from socketlab.lab.assets import IMAGE_CONTEXT
from socketlab.lab.config import LabConfig
from socketlab.lab.docker_api import connect
from socketlab.lab.images import ensure_lab_image
from socketlab.lab.sandbox import Sandbox
from socketlab.lab.swarm import Swarm
from socketlab.lab.swarm_lab import SwarmLab
from socketlab.tools import shaping_probes as probes
from socketlab.tools.bench import Figure
from socketlab.tools.bench_shaping import rtt_figure

TCP_BYTES = 256 << 20  # per transfer; the sender also stops after 12 s
LAYOUTS = (("one node", {"server": "n1", "client": "n1"}),
           ("two nodes", {"server": "n1", "client": "n2"}))


def swarm(config: LabConfig, *, repeat: int = 3,
          progress: Callable[[str], None] = lambda _m: None) -> list[Figure]:
    """Every figure of the swarm benchmark; the sandbox it makes is removed whatever happens."""
    image = ensure_lab_image(connect(), config.image, IMAGE_CONTEXT, progress).tag
    sandbox = Sandbox(f"slb{os.getpid() % 1_000_000}", progress=progress)
    start = time.perf_counter()
    figures: list[Figure] = []
    try:
        state = sandbox.up([image])
        figures.append(Figure("sandbox up (2 dockerds, swarm, image copied)",
                              time.perf_counter() - start, "s", note=f"storage {state.storage}"))
        nodes = Swarm([n.url for n in state.nodes], source=f"sandbox {state.name!r}")
        cfg = config.with_(subnet="auto", image=image)
        figures += _lifecycle(nodes, cfg, repeat, progress)
        figures += _layouts(nodes, cfg, progress)
    finally:
        start = time.perf_counter()
        sandbox.down()
    figures.append(Figure("sandbox down (nothing left)", time.perf_counter() - start, "s"))
    return figures


def _lifecycle(nodes: Swarm, cfg: LabConfig, repeat: int, progress) -> list[Figure]:
    ups, downs = [], []
    progress(f"lab up and down across the nodes, {repeat} times")
    for i in range(repeat):
        lab = SwarmLab(cfg.with_(project=f"socketlab-bench-swarm-{i}"), swarm=nodes)
        start = time.perf_counter()
        with lab:
            ups.append(time.perf_counter() - start)
            start = time.perf_counter()
        downs.append(time.perf_counter() - start)
    return [Figure("lab up on the swarm (server n1, client n2)", statistics.median(ups), "s"),
            Figure("lab down on the swarm", statistics.median(downs), "s")]


def _layouts(nodes: Swarm, cfg: LabConfig, progress) -> list[Figure]:
    rtt, goodput, figures = {}, {}, []
    for name, place in LAYOUTS:
        progress(f"hosts on {name}: UDP pings, then {TCP_BYTES >> 20} MiB over TCP")
        with SwarmLab(cfg.with_(project=f"socketlab-bench-swarm-{name[:3]}"), swarm=nodes,
                      place=place) as lab:
            rtts = probes.ping(lab)
            sink = probes.tcp_flow(lab, TCP_BYTES)
        rtt[name] = statistics.median(rtts)
        seconds = sink["steady_s"]
        goodput[name] = sink["steady_bytes"] * 8 / seconds / 1e6 if seconds > 0 else 0.0
        figures += [rtt_figure(f"RTT, hosts on {name}", rtts),
                    Figure(f"TCP goodput, hosts on {name}", goodput[name], "Mbit/s",
                           note=f"{sink['steady_bytes'] >> 20} MiB in {seconds:.2f} s (steady part)")]
    one, two = LAYOUTS[0][0], LAYOUTS[1][0]
    figures += [Figure("overlay cost: RTT added across nodes", rtt[two] - rtt[one], "ms"),
                Figure("overlay cost: goodput across / on one node",
                       goodput[two] / goodput[one] if goodput[one] else 0.0, "x")]
    return figures
