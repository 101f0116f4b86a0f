"""The netem backend: the kernel's sch_netem for the impairments, tbf (+ a pfifo of `limit`
packets) for the rate, an ifb device for the arriving direction. Pure: argv lists."""

from __future__ import annotations

from ..spec import Impairment, ms, pct
from .tc import Plan, ifb_steps, offload_step, rate_steps, tc_target


def netem_args(imp: Impairment, seed_ok: bool = True) -> list[str]:
    """The words after `netem` (without rate: that is tbf's, see tc.rate_steps)."""
    args: list[str] = []
    if imp.delay_ms:
        args += ["delay", ms(imp.delay_ms)] + ([ms(imp.jitter_ms)] if imp.jitter_ms else [])
        if imp.distribution and imp.distribution != "uniform":  # uniform is netem's own default
            args += ["distribution", imp.distribution]
    if imp.loss_pct and imp.loss_burst:
        r = 100.0 / imp.loss_burst
        p = imp.loss_pct * r / (100.0 - imp.loss_pct)
        args += ["loss", "gemodel", pct(p), pct(r), "100%", "0%"]
    elif imp.loss_pct:
        args += ["loss", pct(imp.loss_pct)]
    for name, value in (("duplicate", imp.duplicate_pct), ("reorder", imp.reorder_pct)):
        args += [name, pct(value)] if value else []
    args += ["gap", str(imp.reorder_gap)] if imp.reorder_gap else []
    args += ["corrupt", pct(imp.corrupt_pct)] if imp.corrupt_pct else []
    if imp.seed is not None and seed_ok:
        args += ["seed", str(imp.seed)]
    return args


def netem_plan(imp: Impairment, direction: str, dev: str, seed_ok: bool = True) -> Plan:
    target = tc_target(direction, dev)
    args = netem_args(imp, seed_ok)
    qdiscs: Plan = []
    if args:
        qdiscs.append(["tc", "qdisc", "replace", "dev", target, "root", "handle", "1:", "netem", *args])
    if imp.rate_bit:
        qdiscs += rate_steps(imp, target, "1:1" if args else "root")
    if direction == "egress":
        return [offload_step(direction, dev), *qdiscs]
    make, redirect = ifb_steps(dev)
    return [offload_step(direction, dev), *make, *qdiscs, *redirect]
