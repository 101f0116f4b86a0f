"""What this host's kernel and tools can do for shaping, each feature tried for real.

The one probe set: lab-shape decides with it (`auto`, refusals), `lab-shape backends` shows
it, and `socketlab doctor` reports it (it runs `lab-shape backends --json` in a throwaway
host). Every probe works on the loopback device only, and is undone at once."""

from __future__ import annotations

import contextlib
import json
import os
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
_UNDO = {"root": ["tc", "qdisc", "del", "dev", "lo", "root"],
         "ingress": ["tc", "qdisc", "del", "dev", "lo", "ingress"],
         "ifb": ["ip", "link", "del", "slab-ifbprobe"],
         "flush": ["iptables", "-t", "mangle", "-F", "SOCKETLAB-PROBE"],
         "chain": ["iptables", "-t", "mangle", "-X", "SOCKETLAB-PROBE"]}
# what each probe may have left (undone whether its steps succeeded or not)
_PROBE_UNDO = {"netem": ["root"], "netem-seed": ["root"], "tbf": ["root"], "htb": ["root"], "bpf": ["root"],
               "ifb": ["ingress", "ifb"], "statistic": ["flush", "chain"], "nfqueue": ["flush", "chain"]}


def probe(run: Runner = run_step, which: Callable[[str], str | None] = shutil.which,
          cache: str | None = None, fresh: bool = False) -> frozenset[str]:
    """The features this host has, each tried for real on lo (the probe chain has no jump to
    it, so no packet ever meets its rules) and undone at once. With `cache` (a file), the
    first answer is kept there and read back after (a host's kernel does not change while it
    runs, and some 60 probe steps cost seconds on a slow host); `fresh` probes again."""
    if cache and not fresh:
        with contextlib.suppress(OSError, ValueError, TypeError), open(cache) as f:
            return frozenset(json.load(f)["features"])
    have = _probe(run, which)
    if cache:
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(cache, "w") as f:
                json.dump({"features": sorted(have)}, f)
    return have


def _probe(run: Runner, which: Callable[[str], str | None]) -> frozenset[str]:
    have = set()
    for name, steps in _PROBES.items():
        if name == "netem-seed" and "netem" not in have:
            continue
        if run_plan(steps, run) is None:
            have.add(name)
        for undo in _PROBE_UNDO[name]:
            run(_UNDO[undo])
    if which("lab-nfq"):
        have.add("lab-nfq")
    return frozenset(have)
