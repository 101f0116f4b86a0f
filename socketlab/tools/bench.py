"""`socketlab bench lifecycle`: how long the lab makes a user wait, measured, with a baseline.

The baseline is a bare `compose up -d` + `compose down` of the same two services, measured
in the same run, so the ratios hold on any machine whatever its engine's speed.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text

from socketlab.act.programs import Options, run_pair
from socketlab.lab import compose as compose_cli
from socketlab.lab.assets import COMPOSE_FILE, IMAGE_CONTEXT
from socketlab.lab.config import AUTO, LabConfig
from socketlab.lab.docker_api import connect
from socketlab.lab.lab import Lab

BENCH_PROJECT = "socketlab-bench"


def bench_config(config: LabConfig, kind: str) -> LabConfig:
    """A bench's own lab: a project name no other bench (nor another run of this one) has,
    and a free subnet chosen as it starts, so benches started together never collide."""
    import os

    return config.with_(project=f"{BENCH_PROJECT}-{kind}-{os.getpid()}", subnet=AUTO)


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None  # None: no target
    note: str = ""           # how it was measured, its interval; alone (no unit): no value


def _median_seconds(action: Callable[[], object], repeat: int) -> float:
    return interleaved_medians({"action": action}, repeat)["action"]


def interleaved_medians(actions: dict[str, Callable[[], object]], repeat: int
                         ) -> dict[str, float]:
    """Each action's median time, the actions taken in turn, round after round: a machine
    that slows down or speeds up in the middle weighs on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            start = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(found) for name, found in times.items()}


def lifecycle(config: LabConfig, *, repeat: int = 3, cold: bool = False, cold_base: bool = False,
              progress: Callable[[str], None] = lambda _m: None) -> list[Figure]:
    """Every figure of the lifecycle benchmark, in the order the table shows them."""
    from socketlab.lab.images import ensure_lab_image

    cfg = bench_config(config, "lifecycle")
    client = connect()
    image = ensure_lab_image(client, cfg.image, IMAGE_CONTEXT, progress)
    figures = [Figure("lab image size", image.size_bytes / 1e6, "MB", "< 200",
                      image.size_bytes < 200e6)]
    if cold or cold_base:
        figures += _cold(client, cfg, cold_base, progress)
    figures += _warm(client, cfg, repeat, progress)
    return figures


def _cold(client, cfg: LabConfig, with_base: bool, progress) -> list[Figure]:
    from socketlab.lab.images import OWN_BASE, ensure_lab_image, make_debian_base, packages

    figures, base_s, base = [], 0.0, None
    if with_base:
        progress("cold: making a Debian base from the archive (about a minute)")
        base_tag = "socketlab/base:bench"
        start = time.perf_counter()
        make_debian_base(client, base_tag, packages(IMAGE_CONTEXT / "Dockerfile"), progress)
        base_s = time.perf_counter() - start
        base = base_tag
        figures.append(Figure("cold: Debian base from the archive", base_s, "s"))
    progress("cold: building the lab image with no cache")
    tag = "socketlab/lab:bench"
    try:
        info = ensure_lab_image(client, tag, IMAGE_CONTEXT, progress, force=True, nocache=True,
                                base=base or _present_base(client, OWN_BASE))
        figures.append(Figure("cold: lab image build, no cache", info.seconds, "s"))
        if with_base:
            total = base_s + info.seconds
            figures.append(Figure("cold: base + image, from nothing", total, "s", "< 60",
                                  total < 60))
    finally:
        for leftover in (tag, base):
            if leftover:
                client.images.remove(leftover, force=True)
    return figures


def _present_base(client, own_base: str) -> str | None:
    from socketlab.lab.images import DEFAULT_BASE, local_image

    return DEFAULT_BASE if local_image(client, DEFAULT_BASE) is not None else own_base


def _warm(client, cfg: LabConfig, repeat: int, progress) -> list[Figure]:
    from socketlab.lab.subnets import claim_subnet

    found = compose_cli.detect()

    def bare_cycle() -> None:
        with claim_subnet(client) as subnet:  # held until compose has made the network
            env = cfg.with_(subnet=subnet).compose_env("idle")
            compose_cli.run_compose(found.argv(cfg.project, COMPOSE_FILE, *compose_cli.up_args()),
                                    env)
        compose_cli.run_compose(found.argv(cfg.project, COMPOSE_FILE,
                                           *compose_cli.down_args()), env)

    progress(f"baseline: bare compose up -d + down, {repeat} times")
    baseline = _median_seconds(bare_cycle, repeat)
    demo_argv = [sys.executable, "-m", "socketlab", "-p", cfg.project, "demo",
                 "--subnet", cfg.subnet]
    progress(f"warm demo (a whole `socketlab demo` process), {repeat} times")
    demo = _median_seconds(lambda: subprocess.run(demo_argv, capture_output=True, check=True),
                           repeat)
    with Lab(cfg, client=client, compose=found) as lab:
        progress(f"run tcp on the running lab, {repeat * 3} times through the API, as many as "
                 "whole commands, each round beside the engine's exec floor")
        docker_exec = _docker_exec_argv(lab)
        medians = interleaved_medians({
            "run_api": lambda: run_pair(lab, Options("tcp")),
            "run_cli": lambda: subprocess.run(
                [sys.executable, "-m", "socketlab", "-p", cfg.project, "run", "tcp"],
                capture_output=True, check=True),
            "exec_api": lambda: lab.exec("server", ["true"]),
            **({"exec_cli": lambda: subprocess.run(docker_exec, capture_output=True, check=True)}
               if docker_exec else {}),
        }, repeat * 3)
    run_api, run_cli, exec_api = medians["run_api"], medians["run_cli"], medians["exec_api"]
    exec_cli = medians.get("exec_cli")
    ratio, floor = demo / baseline, exec_cli or exec_api
    over_floor = run_cli / floor
    return [
        Figure("baseline: bare compose up -d + down", baseline, "s"),
        Figure("warm demo (whole command)", demo, "s"),
        Figure("warm demo / baseline", ratio, "x", "<= 1.5", ratio <= 1.5),
        Figure("run tcp on a running lab (API)", run_api, "s"),
        Figure("run tcp on a running lab (whole `socketlab run tcp` command)", run_cli, "s", "< 0.3",
               run_cli < 0.3),
        *([Figure("one `docker exec CONTAINER true` (the docker CLI: the engine's floor)", exec_cli,
                  "s")] if exec_cli else []),
        Figure("one exec through the Engine API (create, start, inspect; a run needs 2)", exec_api,
               "s"),
        Figure("whole run tcp command / exec floor", over_floor, "x", "<= 4", over_floor <= 4,
               note="" if exec_cli else "floor: the Engine API's exec (no docker CLI here)"),
    ]


def _docker_exec_argv(lab: Lab) -> list[str] | None:
    """`docker exec CONTAINER true` in the lab's server (None without the docker CLI)."""
    import shutil

    from socketlab.lab.engine_compose import ComposeEngine

    docker = shutil.which("docker")
    if docker is None or not isinstance(lab.engine, ComposeEngine):
        return None
    return [docker, "exec", lab.engine.container_id("server"), "true"]


def analysis(*, packets: int = 50_000, repeat: int = 3,
             progress: Callable[[str], None] = lambda _m: None) -> list[Figure]:
    """Reading and summarising a capture: socketlab against dpkt's bare read and scapy's rdpcap,
    on the same file in the same run (so a busy machine slows all of them alike)."""
    import tempfile
    from pathlib import Path

    import dpkt
    import scapy.layers.inet  # noqa: F401  (registers IP/UDP so rdpcap dissects them)
    import scapy.layers.l2  # noqa: F401  (registers Ethernet)
    from scapy.utils import rdpcap

    from socketlab.observe.analysis import summary
    from socketlab.observe.pcap import read_pcap

    def dpkt_bare(path: Path) -> int:
        with open(path, "rb") as f:
            return sum(1 for _ts, buf in dpkt.pcap.Reader(f) if dpkt.ethernet.Ethernet(buf))

    with tempfile.TemporaryDirectory(prefix="socketlab-bench-") as tmp:
        path = Path(tmp) / "burst.pcap"
        progress(f"writing a synthetic capture of {packets:,} UDP datagrams")
        write_udp_burst(path, packets)
        progress(f"reading and summarising it with socketlab, {repeat} times")
        ours = _median_seconds(lambda: summary(read_pcap(path)), repeat)
        check = summary(read_pcap(path))
        progress(f"reading it with dpkt alone (frames decoded, nothing kept), {repeat} times")
        bare = _median_seconds(lambda: dpkt_bare(path), repeat)
        small = Path(tmp) / "small.pcap"
        write_udp_burst(small, 5_000)
        progress("reading 5,000 of them with scapy's rdpcap, for comparison")
        theirs = _median_seconds(lambda: rdpcap(str(small)), 1) / 5_000
    if check["packets"] != packets:
        raise RuntimeError(f"summary counted {check['packets']} packets of {packets}")
    rate = packets / ours
    return [
        Figure(f"read + summarise {packets:,} packets (socketlab)", ours, "s", "< 0.5", ours < 0.5),
        Figure("socketlab's rate (read + summary)", rate, "packets/s", ">= 100,000",
               rate >= 100_000),
        Figure("dpkt's bare read, same file (decode only)", packets / bare, "packets/s"),
        Figure("socketlab / dpkt's bare read", rate * bare / packets, "x"),
        Figure("scapy rdpcap's rate (same packets)", 1 / theirs, "packets/s"),
        Figure("socketlab / scapy", rate * theirs, "x"),
    ]


def capture(config: LabConfig, *, packets: int = 50_000,
            progress: Callable[[str], None] = lambda _m: None) -> list[Figure]:
    """A bounded UDP burst between the lab's hosts, captured on both: is it captured whole?"""
    from socketlab.act.programs import run_programs, udp_client_argv, udp_server_argv
    from socketlab.lab.images import ensure_lab_image
    from socketlab.observe.analysis import summary
    from socketlab.observe.capture import Capture
    from socketlab.observe.pcap import read_pcap

    cfg = bench_config(config, "capture")
    client = connect()
    ensure_lab_image(client, cfg.image, IMAGE_CONTEXT, progress)
    server = udp_server_argv(port=cfg.port, quiet=True, timeout=2.0, rcvbuf=4194304, bufsize=64)
    import tempfile
    from pathlib import Path

    with Lab(cfg, client=client) as lab, tempfile.TemporaryDirectory() as tmp:
        sender = udp_client_argv(host=lab.config.server_ip, port=lab.config.port, count=packets,
                                 message="burst-datagram!!", quiet=True, keep_going=True)
        progress(f"a burst of {packets:,} UDP datagrams, captured on both hosts")
        start = time.perf_counter()
        cap = Capture(lab, base_dir=Path(tmp), name="burst").start()
        started = time.perf_counter()
        run = run_programs(lab, Options("udp"), server, sender)
        sent_at = time.perf_counter()
        result = cap.stop()
        stopped = time.perf_counter()
        read_start = time.perf_counter()
        seen = {h: summary(read_pcap(result[h].pcap))["protocols"].get("udp", 0)
                for h in ("client", "server")}
        read_s = (time.perf_counter() - read_start) / 2
    sent = next((e.fields.get("sent") for e in run.client_events if e.name == "summary"), 0)
    whole = seen["client"] >= packets and result.dropped == 0
    return [
        Figure("datagrams the client sent", float(sent or 0), "datagrams"),
        Figure("captured on the client", float(seen["client"]), "datagrams", f">= {packets:,}",
               whole),
        Figure("captured on the server", float(seen["server"]), "datagrams"),
        Figure("tcpdump's own drops (both hosts)", float(result.dropped), "packets", "0",
               result.dropped == 0),
        Figure("capture start (offloads off, tcpdump ready)", started - start, "s"),
        Figure("the burst (both programs; the server ends after 2 s idle)", sent_at - started, "s"),
        Figure("capture stop (catch up, stop, copy pcaps)", stopped - sent_at, "s"),
        Figure("read + summarise one host's pcap", read_s, "s", "< 3", read_s < 3),
    ]


def write_udp_burst(path, count: int) -> None:
    """A pcap of `count` Ethernet/IPv4/UDP frames between two lab addresses (written by dpkt)."""
    import socket

    import dpkt

    src, dst = socket.inet_aton("192.168.33.6"), socket.inet_aton("192.168.33.5")
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for i in range(count):
            udp = dpkt.udp.UDP(sport=40000, dport=6666, data=b"burst-%08d" % i)
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_UDP, id=i & 0xFFFF, data=udp)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)
            writer.writepkt(bytes(eth), ts=1_700_000_000 + i * 1e-5)


def render_value(f: Figure) -> str:
    """A figure's value with its unit ("-" for a row that is only a note)."""
    if f.note and not f.unit:
        return "-"
    whole = abs(f.value) >= 100 or (f.unit != "s" and float(f.value).is_integer())
    digits = 3 if f.unit == "s" and abs(f.value) < 1 else 2  # 0.085 s, not 0.09 s
    return f"{f.value:,.0f} {f.unit}" if whole else f"{f.value:.{digits}f} {f.unit}"


def render(figures: list[Figure], title: str = "lifecycle") -> Table:
    table = Table(title=f"socketlab bench {title} (medians)", title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("figure", "left"), ("measured", "right"), ("target", "left"), ("", "left"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    notes = any(f.note for f in figures)
    if notes:
        table.add_column("note", overflow="fold")
    for f in figures:
        mark = Text() if f.met is None else (Text("met", "green") if f.met else Text("not met", "red"))
        row: list[str | Text] = [f.name, render_value(f), f.target and f"{f.target} {f.unit}", mark]
        table.add_row(*row, *([f.note] if notes else []))
    return table
