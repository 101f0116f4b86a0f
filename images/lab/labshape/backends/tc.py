"""What both backends build with tc: the device names, offloads, the rate (tbf), the ifb."""

from __future__ import annotations

import math

from ..spec import DEFAULT_LIMIT, Impairment

Plan = list[list[str]]
DEV = "eth0"
IFB = "slab-ifb0"
FRAME = 1514                  # bytes of a full Ethernet frame (MTU 1500 + header)


def tc_target(direction: str, dev: str) -> str:
    """Where the qdiscs go: the device itself leaving, the ifb for what arrives."""
    return dev if direction == "egress" else IFB


def offload_step(direction: str, dev: str) -> list[str]:
    """One wire packet per decision: no TSO/GSO aggregates leaving, no GRO ones arriving."""
    if direction == "egress":
        return ["ethtool", "-K", dev, "tso", "off", "gso", "off"]
    return ["ethtool", "-K", dev, "gro", "off"]


def rate_steps(imp: Impairment, target: str, parent: str) -> Plan:
    """tbf at `parent` (handle 2:) with a pfifo of `limit` packets as its queue (handle 3:).

    Why tbf and not netem's own `rate`: the engine has no netem, and the same tbf in both
    backends gives `rate` one meaning; the pfifo makes `limit` exact in packets."""
    limit = imp.limit or DEFAULT_LIMIT
    burst = max(math.ceil(imp.rate_bit / 8 / 100), 2 * FRAME)  # 10 ms of the rate, >= 2 frames
    where = ["root"] if parent == "root" else ["parent", parent]
    verb = "replace" if parent == "root" else "add"
    return [["tc", "qdisc", verb, "dev", target, *where, "handle", "2:", "tbf", "rate",
             f"{imp.rate_bit}bit", "burst", str(burst), "limit", str(limit * FRAME)],
            ["tc", "qdisc", "add", "dev", target, "parent", "2:1", "handle", "3:", "pfifo",
             "limit", str(limit)]]


def ifb_steps(dev: str) -> tuple[Plan, Plan]:
    """(make the ifb, redirect what arrives at dev to it): the qdiscs go on the ifb between
    the two, so arriving packets are never redirected to an unshaped device."""
    make = [["ip", "link", "add", IFB, "type", "ifb"], ["ip", "link", "set", IFB, "up"]]
    redirect = [["tc", "qdisc", "add", "dev", dev, "handle", "ffff:", "ingress"],
                ["tc", "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all", "u32",
                 "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", IFB]]
    return make, redirect
