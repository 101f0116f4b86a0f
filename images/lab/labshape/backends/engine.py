"""The engine backend, for kernels without netem: random loss by iptables' `statistic`
match; delay, jitter, reorder, duplicate, corrupt, seeded or bursty loss and packet-exact
faults by NFQUEUE and the user-space loop `lab-nfq`; the rate by the same tbf as netem's.
Pure: argv lists."""

from __future__ import annotations

import dataclasses
import json

from .. import paths
from ..spec import Impairment
from .tc import Plan, ifb_steps, offload_step, rate_steps, tc_target

CHAINS = {"egress": "SOCKETLAB-EGRESS", "ingress": "SOCKETLAB-INGRESS"}
HOOKS = {"egress": ("POSTROUTING", "-o"), "ingress": ("PREROUTING", "-i")}
DROP_MARK = 0x5AC             # egress loss: iptables marks, a tc filter drops (see _drop_filter)
NFQ_MARK = 0x5AB              # lab-nfq's own copies (duplicates) carry it: the chains let them by
NFQ_MAX_SECONDS = 86400


def uses_nfq(imp: Impairment) -> bool:
    """Does the engine need lab-nfq for this spec?"""
    nfq_loss = imp.loss_pct and (imp.loss_burst or imp.seed is not None)
    return bool(imp.delay_ms or imp.duplicate_pct or imp.reorder_pct or imp.corrupt_pct
                or imp.faults or nfq_loss)


def statistic_loss(imp: Impairment) -> bool:
    return bool(imp.loss_pct) and not imp.loss_burst and imp.seed is None


def nfq_share(imp: Impairment) -> Impairment:
    """What lab-nfq is told: the spec less the loss that iptables handles."""
    return dataclasses.replace(imp, loss_pct=0.0) if statistic_loss(imp) else imp


def nfq_steps(imp: Impairment, direction: str) -> Plan:
    """Start lab-nfq in its own session (it outlives lab-shape), then wait until it is bound."""
    queue = paths.QUEUES[direction]
    share = nfq_share(imp)
    faults = json.dumps(list(share.faults), sort_keys=True, separators=(",", ":"))
    return [["mkdir", "-p", paths.RUN_DIR],
            ["setsid", "-f", "lab-nfq", "--queue", str(queue), "--spec", share.to_spec(),
             "--faults", faults, "--log", paths.nfq_log(direction), "--pidfile",
             paths.pidfile(direction), "--max-seconds", str(NFQ_MAX_SECONDS), "--mark", f"{NFQ_MARK:#x}"],
            ["lab-shape", "wait-pidfile", paths.pidfile(direction)]]


def _drop_filter(dev: str) -> Plan:
    """Egress loss without netem: iptables' statistic match marks the packet, and a tc filter
    (classic BPF: `ld mark; jeq DROP_MARK; ret SHOT`) drops it in the qdisc. A DROP in
    POSTROUTING instead would make the sender's sendto() fail with EPERM; netem's loss, and
    this, are silent, as a loss on the wire is."""
    bytecode = f"4,32 0 0 {2**32 - 4096 + 20},21 0 1 {DROP_MARK},6 0 0 2,6 0 0 {2**32 - 1}"
    return [["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "1"],
            ["tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate",
             "100gbit", "quantum", "200000"],
            ["tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "bpf",
             "bytecode", bytecode, "da"]]


def chain_steps(imp: Impairment, direction: str, dev: str) -> Plan:
    """The direction's own mangle chain, its rules, and the jump to it (last: nothing is in
    effect until everything is ready)."""
    chain, (hook, dev_flag) = CHAINS[direction], HOOKS[direction]
    ipt = ["iptables", "-t", "mangle"]
    rules: Plan = [[*ipt, "-N", chain]]
    if uses_nfq(imp):  # lab-nfq's copies have had their turn: no second loss, no second queue
        rules.append([*ipt, "-A", chain, "-m", "mark", "--mark", f"{NFQ_MARK:#x}", "-j", "RETURN"])
    unmarked: list[str] = []
    if statistic_loss(imp):
        stat = ["-m", "statistic", "--mode", "random", "--probability", f"{imp.loss_pct / 100:.6g}"]
        if direction == "egress":
            mark = ["-j", "MARK", "--set-xmark", f"{DROP_MARK:#x}/0xffffffff"]
            rules.append([*ipt, "-A", chain, *stat, *mark])
            unmarked = ["-m", "mark", "!", "--mark", f"{DROP_MARK:#x}"]
        else:
            rules.append([*ipt, "-A", chain, *stat, "-j", "DROP"])
    if uses_nfq(imp):
        rules.append([*ipt, "-A", chain, *unmarked, "-j", "NFQUEUE", "--queue-num",
                      str(paths.QUEUES[direction]), "--queue-bypass"])
    if len(rules) == 1:
        return []
    return [*rules, [*ipt, "-A", hook, dev_flag, dev, "-j", chain]]


def engine_plan(imp: Impairment, direction: str, dev: str) -> Plan:
    target = tc_target(direction, dev)
    qdiscs: Plan = []
    drop = direction == "egress" and statistic_loss(imp)
    if drop:
        qdiscs += _drop_filter(dev)
    if imp.rate_bit:
        qdiscs += rate_steps(imp, target, "1:1" if drop else "root")
    plan = [offload_step(direction, dev)]
    if direction == "ingress" and imp.rate_bit:
        make, redirect = ifb_steps(dev)
        plan += [*make, *qdiscs, *redirect]
    else:
        plan += qdiscs
    plan += nfq_steps(imp, direction) if uses_nfq(imp) else []
    return plan + chain_steps(imp, direction, dev)
