"""What this host's kernel and tools can do for shaping, each feature tried for real.

The one probe set: lab-shape decides with it (`auto`, refusals), `lab-shape backends` shows
it, and `socketlab doctor` reports it (it runs `lab-shape backends --json` in a throwaway
host). Every probe works on the loopback device only, and is undone at once."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from .steps import Runner, run_plan, run_step

# feature -> what it serves (for doctor), and why a parameter needing it is refused without it
FEATURES: dict[str, tuple[str, str]] = {
    "netem": ("the netem backend: delay, loss, duplication, reordering, corruption (sch_netem)",
              "the kernel has no sch_netem"),
    "netem-seed": ("netem's own seed (iproute2 6.x)", "this iproute2's netem has no seed"),
    "tbf": ("the rate, in both backends (token bucket)", "the kernel has no tbf qdisc"),
    "htb": ("the engine's silent egress loss (the drop filter's qdisc)", "the kernel has no htb qdisc"),
    "bpf": ("the engine's silent egress loss (the drop filter)", "the kernel has no bpf classifier"),
    "ifb": ("shaping what arrives at a host (ingress redirected to an ifb)",
            "the kernel has no ifb/ingress/mirred"),
    "statistic": ("the engine's random loss (iptables statistic)", "iptables has no statistic match"),
    "nfqueue": ("the engine's per-packet decisions in user space (NFQUEUE)", "the kernel has no NFQUEUE"),
    "lab-nfq": ("the engine's user-space loop", "lab-nfq (the NFQUEUE loop) is not installed in this host"),
}
WHY_MISSING = {name: why for name, (_what, why) in FEATURES.items()}

_LO = ["tc", "qdisc", "add", "dev", "lo", "root", "handle", "9:"]
_PROBES: dict[str, list[list[str]]] = {
    "netem": [[*_LO, "netem", "delay", "1ms"]],
    "netem-seed": [[*_LO, "netem", "loss", "1%", "seed", "1"]],
    "tbf": [[*_LO, "tbf", "rate", "1mbit", "burst", "3028", "limit", "15140"]],
    "htb": [[*_LO, "htb", "default", "1"]],
    "bpf": [[*_LO, "htb", "default", "1"],
            ["tc", "filter", "add", "dev", "lo", "parent", "9:", "protocol", "ip", "prio", "1", "bpf",
             "bytecode", "1,6 0 0 4294967295", "da"]],
    "ifb": [["ip", "link", "add", "slab-ifbprobe", "type", "ifb"],
            ["tc", "qdisc", "add", "dev", "lo", "handle", "ffff:", "ingress"],
            ["tc", "filter", "add", "dev", "lo", "parent", "ffff:", "protocol", "all", "u32", "match",
             "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "slab-ifbprobe"]],
    "statistic": [["iptables", "-t", "mangle", "-N", "SOCKETLAB-PROBE"],
                  ["iptables", "-t", "mangle", "-A", "SOCKETLAB-PROBE", "-m", "statistic", "--mode",
                   "random", "--probability", "0.5", "-j", "DROP"]],
    "nfqueue": [["iptables", "-t", "mangle", "-N", "SOCKETLAB-PROBE"],
                ["iptables", "-t", "mangle", "-A", "SOCKETLAB-PROBE", "-j", "NFQUEUE", "--queue-num",
                 "0", "--queue-bypass"]],
}
_PROBE_UNDO: list[list[str]] = [["tc", "qdisc", "del", "dev", "lo", "root"],
                                ["tc", "qdisc", "del", "dev", "lo", "ingress"],
                                ["ip", "link", "del", "slab-ifbprobe"],
                                ["iptables", "-t", "mangle", "-F", "SOCKETLAB-PROBE"],
                                ["iptables", "-t", "mangle", "-X", "SOCKETLAB-PROBE"]]


def probe(run: Runner = run_step, which: Callable[[str], str | None] = shutil.which) -> frozenset[str]:
    """The features this host has, each tried for real on lo (the probe chain has no jump to
    it, so no packet ever meets its rules) and undone at once."""
    have = set()
    for name, steps in _PROBES.items():
        if name == "netem-seed" and "netem" not in have:
            continue
        if run_plan(steps, run) is None:
            have.add(name)
        for argv in _PROBE_UNDO:
            run(argv)
    if which("lab-nfq"):
        have.add("lab-nfq")
    return frozenset(have)
