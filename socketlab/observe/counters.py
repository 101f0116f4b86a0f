"""The kernel's own counters in a lab host, before and after: the evidence that sees drops.

One exec per snapshot reads /proc/net/snmp and /proc/net/netstat (e.g. Udp.RcvbufErrors,
Udp.NoPorts, Ip.FragCreates, TcpExt.TCPRcvQDrop), `ip -s link` of eth0 (link.tx_dropped ...)
and `tc -s qdisc` of eth0 (qdisc.drops ...). Parsing is pure; `delta` keeps what changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from socketlab.lab.lab import Lab

Counters = dict[str, int]
_SEP = "@@socketlab@@"
SNAPSHOT_SCRIPT = (f"cat /proc/net/snmp /proc/net/netstat; echo {_SEP}; "
                   f"ip -s -j link show dev eth0; echo {_SEP}; tc -s -j qdisc show dev eth0")


def parse_proc_net(text: str) -> Counters:
    """/proc/net/snmp and /proc/net/netstat: pairs of lines `Group: names` / `Group: values`."""
    counters: Counters = {}
    lines = [ln.split() for ln in text.splitlines() if ":" in ln]
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names[0] != values[0] or len(names) != len(values):
            continue
        group = names[0].rstrip(":")
        for name, value in zip(names[1:], values[1:], strict=True):
            if value.lstrip("-").isdigit():
                counters[f"{group}.{name}"] = int(value)
    return counters


def parse_link(text: str) -> Counters:
    """`ip -s -j link show dev eth0` -> link.rx_packets, link.tx_dropped, ..."""
    try:
        stats = json.loads(text)[0].get("stats64") or json.loads(text)[0].get("stats", {})
    except (ValueError, IndexError, AttributeError):
        return {}
    return {f"link.{way}_{name}": int(value) for way in ("rx", "tx")
            for name, value in (stats.get(way) or {}).items() if isinstance(value, int)}


def parse_qdisc(text: str) -> Counters:
    """`tc -s -j qdisc show dev eth0` -> qdisc.drops, qdisc.overlimits, ... (root qdiscs summed)."""
    try:
        qdiscs = json.loads(text)
    except ValueError:
        return {}
    totals: Counters = {}
    for qdisc in qdiscs:
        for name in ("packets", "drops", "overlimits", "requeues", "backlog", "qlen"):
            if isinstance(qdisc.get(name), int):
                totals[f"qdisc.{name}"] = totals.get(f"qdisc.{name}", 0) + qdisc[name]
    return totals


def parse_snapshot(text: str) -> Counters:
    proc, link, qdisc = (text.split(_SEP + "\n") + ["", ""])[:3]
    return {**parse_proc_net(proc), **parse_link(link), **parse_qdisc(qdisc)}


def snapshot(lab: Lab, host: str) -> Counters:
    """Every counter of one host, now."""
    result = lab.exec(host, ["sh", "-c", SNAPSHOT_SCRIPT], timeout=10, instruments=True)
    return parse_snapshot(result.stdout)


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> Counters:
    """What changed between two snapshots (counters only go up; gauges may go down)."""
    return {k: after[k] - before.get(k, 0) for k in sorted(after) if after[k] != before.get(k, 0)}
