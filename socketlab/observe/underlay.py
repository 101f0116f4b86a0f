"""The underlay: what crosses the wire between swarm nodes while the lab's hosts talk.

On one engine the hosts share a bridge; across nodes every frame one host sends to the other
leaves its node inside a VXLAN packet (RFC 7348): outer IPv4 between the nodes' own addresses,
outer UDP to port 4789, an 8-byte VXLAN header carrying the overlay's VNI, then the inner
Ethernet frame exactly as the host sent it. A capture on the underlay shows all three layers.

    with UnderlayCapture(lab, run_dir, name="tcp") as under:      # a SwarmLab
        run_pair(lab, Options(proto="tcp"))
    frames = read_vxlan(under.result["underlay-n1"].pcap)         # [Encapsulated, ...]
    print(vxlan_view(frames, {"192.168.33.5": "server", ...}))

The tap is tcpdump in a short-lived container on each node, in the node's own network
namespace (`network_mode: host`), on the interface that carries the node's swarm address:
it only listens. The taps carry the lab's labels, so `down` removes them whatever happened.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dpkt

from socketlab.errors import CaptureError
from socketlab.lab.composefile import LAB_LABEL
from socketlab.lab.engine_compose import PROJECT_LABEL, SERVICE_LABEL
from socketlab.lab.lab import Lab
from socketlab.lab.process import ExecResult, Running
from socketlab.observe.capture import MAX_SECONDS, Capture, CaptureResult
from socketlab.observe.pcap import ETHERNET, Decoder, Pkt

if TYPE_CHECKING:
    from socketlab.lab.swarm_lab import SwarmLab
    from socketlab.observe.observation import Context

VXLAN_PORT = 4789  # IANA's; Docker's default data path port
VXLAN_HEADER = 8
SNAPLEN = 2048


@dataclass(frozen=True)
class Encapsulated:
    """One underlay packet: the outer IPv4/UDP packet, the VNI, the inner IPv4 packet."""

    outer: Pkt
    vni: int
    inner: Pkt | None  # None: the inner frame is not IPv4 (e.g. ARP)
    inner_frame_bytes: int


def read_vxlan(path: str | Path, port: int = VXLAN_PORT) -> list[Encapsulated]:
    """Every VXLAN packet of a pcap, its inner frame dissected like any lab packet (pure)."""
    out = []
    with open(path, "rb") as f:
        reader = dpkt.pcap.UniversalReader(f)
        outer_of = Decoder(reader.datalink())
        inner_of = Decoder(ETHERNET)
        for index, (ts, buf) in enumerate(reader):
            outer = outer_of(buf, 0, len(buf), index, float(ts))
            if outer is None or outer.proto != "udp" or outer.dport != port or outer.is_fragment:
                continue
            ip = outer_of._ip_offset(buf, 0, len(buf))
            if ip is None:  # never: outer was decoded from there
                continue
            start = ip + outer.ip_hl + 8  # the UDP payload
            found = decapsulate(outer, buf, start, inner_of)
            if found is not None:
                out.append(found)
    return out


def decapsulate(outer: Pkt, buf: bytes, start: int, inner_of: Decoder) -> Encapsulated | None:
    """The VXLAN header at `start` (flags 0x08: a valid VNI follows) and the frame after it."""
    if len(buf) < start + VXLAN_HEADER or not buf[start] & 0x08:
        return None
    vni = struct.unpack_from("!I", buf, start + 4)[0] >> 8
    frame = start + VXLAN_HEADER
    inner = inner_of(buf, frame, len(buf), outer.index, outer.ts)
    return Encapsulated(outer, vni, inner, len(buf) - frame)


def vxlan_view(frames: Sequence[Encapsulated], names: Mapping[str, str] | None = None,
               limit: int = 40) -> str:
    """One line per underlay packet: outer addresses and ports, VNI, the inner packet."""
    names = dict(names or {})
    if not frames:
        return "no VXLAN packet on the underlay"
    t0 = frames[0].outer.ts
    lines = [f"{'ms':>8}  {'outer (node to node, UDP)':<38} {'VNI':>6}  inner (host to host)"]
    for e in frames[:limit]:
        o = e.outer
        outer = f"{o.src}:{o.sport} > {o.dst}:{o.dport}"
        lines.append(f"{(o.ts - t0) * 1000:8.1f}  {outer:<38} {e.vni:>6}  {_inner(e, names)}")
    if len(frames) > limit:
        lines.append(f"... {len(frames) - limit} more")
    return "\n".join(lines)


def _inner(e: Encapsulated, names: Mapping[str, str]) -> str:
    p = e.inner
    if p is None:
        return f"non-IPv4 frame, {e.inner_frame_bytes} bytes"
    src, dst = names.get(p.src, p.src), names.get(p.dst, p.dst)
    what = f"TCP [{p.flags}]" if p.proto == "tcp" else p.proto.upper()
    frag = f" frag@{p.frag_offset}" if p.is_fragment else ""
    return f"{src}:{p.sport} > {dst}:{p.dport} {what} {p.length} bytes{frag}"


class _Taps:
    """The underlay taps as a Capture sees hosts: they are containers of the lab (its labels,
    a service name of their own), so the swarm engine runs commands in them as in any host."""

    def __init__(self, lab: SwarmLab) -> None:
        self.config, self._engine = lab.config, lab.engine

    def exec(self, host: str, argv: Sequence[str], *, timeout: float | None = None,
             instruments: bool = False) -> ExecResult:  # a tap is its own instruments
        return self._engine.exec(host, argv, timeout=timeout)

    def start(self, host: str, argv: Sequence[str], *, timeout: float, gated: bool = False,
              instruments: bool = False) -> Running:
        return self._engine.start_exec(host, argv, timeout=timeout, gated=gated)

    def get(self, host: str, src: str, dest: str | Path, *, instruments: bool = False) -> Path:
        return self._engine.get(host, src, Path(dest))


class UnderlayCapture:
    """tcpdump on the underlay interface of every node that runs a host of `lab`."""

    def __init__(self, lab: SwarmLab, base_dir: str | Path, *, name: str = "underlay",
                 nodes: Sequence[str] | None = None, port: int | None = None,
                 max_seconds: float = MAX_SECONDS) -> None:
        self.lab, self.base_dir, self.name, self.max_seconds = lab, Path(base_dir), name, max_seconds
        self.nodes = list(nodes) if nodes else sorted(set(lab.placement().values()))
        self.port = port or data_path_port(lab)
        self._taps: dict[str, Any] = {}
        self._capture: Capture | None = None

    @property
    def result(self) -> CaptureResult:
        if self._capture is None:
            raise CaptureError("the underlay capture has not run")
        return self._capture.result

    def __enter__(self) -> UnderlayCapture:
        addresses = [n.address for n in self.lab.swarm.nodes() if n.name in self.nodes]
        between = " or ".join(f"host {a}" for a in addresses)
        try:
            for node in self.nodes:
                self._taps[f"underlay-{node}"] = self._tap(node)
            # Every interface of the node (`any`: Linux cooked frames), VXLAN between the
            # lab's nodes only; frames are taken whole (a 1450-byte inner packet + 50 bytes
            # of VXLAN, UDP, IP and Ethernet, + 16 of the cooked header).
            self._capture = Capture(_Taps(self.lab), list(self._taps),
                                    self.base_dir, name=self.name, offloads=None, iface="any",
                                    bpf=f"udp dst port {self.port} and ({between})",
                                    snaplen=SNAPLEN, max_seconds=self.max_seconds)
            self._capture.start()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._capture is not None and exc[0] is None:
                self._capture.stop()
        finally:
            self._remove()

    def _tap(self, node: str) -> Any:
        """A listening-only container in the node's own network namespace."""
        project = self.lab.config.project
        client = self.lab.swarm.client(node)
        return client.containers.run(
            self.lab.config.image, ["sleep", str(int(self.max_seconds))], detach=True,
            name=f"{project}-underlay-{node}", network_mode="host", init=True,
            cap_add=["NET_ADMIN", "NET_RAW"],
            labels={PROJECT_LABEL: project, SERVICE_LABEL: f"underlay-{node}", LAB_LABEL: "1"})

    def _remove(self) -> None:
        for tap in self._taps.values():
            with contextlib.suppress(Exception):  # clean-up must not hide the first error
                tap.remove(force=True)
        self._taps = {}


def data_path_port(lab: SwarmLab) -> int:
    """The swarm's VXLAN port (set at `swarm init --data-path-port`; 4789 by default)."""
    cluster = (lab.client.info().get("Swarm") or {}).get("Cluster") or {}
    return int(cluster.get("DataPathPort") or VXLAN_PORT)


def names_of(lab: Lab) -> dict[str, str]:
    return {lab.config.server_ip: "server", lab.config.client_ip: "client"}


def underlay_files(ctx: Context, result: CaptureResult) -> dict[str, str]:
    """The VXLAN view of the underlay capture, per node, as a text file in the run folder;
    artifact paths (the view and each node's pcap)."""
    placement: dict[str, str] = getattr(ctx.lab, "placement", dict)()  # a SwarmLab's, else none
    parts = [f"hosts: {', '.join(f'{h} on {n}' for h, n in placement.items())}"]
    for tap in result.hosts.values():
        parts += ["", f"captured on the underlay of {tap.host.removeprefix('underlay-')} "
                  f"({tap.captured} packets):", vxlan_view(read_vxlan(tap.pcap), names_of(ctx.lab))]
    text = ctx.run_dir / "underlay.txt"
    text.write_text("\n".join(parts) + "\n")
    return {"underlay (text)": str(text),
            **{f"underlay capture ({t.host}, pcap)": str(t.pcap) for t in result.hosts.values()}}
