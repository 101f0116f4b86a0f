"""Which backend serves what, and the plans (argv lists) that apply and clear a shaping.

- netem:  the kernel's sch_netem (netem.py), where the kernel has it.
- engine: iptables + NFQUEUE + lab-nfq (engine.py), for kernels without netem.
Both use the same tbf for the rate and the same ifb for what arrives (tc.py). `auto` picks
netem when it can serve the whole spec, else the engine; a parameter neither can honour is
refused with the reason, never approximated."""

from __future__ import annotations

from .. import paths
from ..probe import FEATURES, WHY_MISSING
from ..spec import DIRECTIONS, Impairment, ShapeError, parse
from .engine import CHAINS, HOOKS, engine_plan
from .netem import netem_plan
from .tc import DEV, IFB, Plan

BACKENDS = ("auto", "netem", "engine")
__all__ = ["BACKENDS", "DEV", "IFB", "Plan", "build_plan", "choose_backend", "clear_plan", "missing",
           "needs", "support_table"]


def needs(imp: Impairment, direction: str, backend: str) -> dict[str, set[str]]:
    """parameter -> the features the backend needs to serve it in that direction."""
    ifb = {"ifb"} if direction == "ingress" else set()
    nfq_loss = bool(imp.loss_burst) or imp.seed is not None
    out: dict[str, set[str]] = {}
    for param in imp.params():
        if param in ("rate", "limit"):
            out[param] = {"tbf"} | ifb
        elif backend == "netem":
            out[param] = ({"netem", "netem-seed"} if param == "seed" else
                          {"nfqueue", "lab-nfq", "netem-only"} if param == "faults" else {"netem"}) | ifb
        elif param in ("loss", "loss burst") and not nfq_loss:
            out[param] = {"statistic"} | ({"htb", "bpf"} if direction == "egress" else set())
        else:
            out[param] = {"nfqueue", "lab-nfq"}
    return out


def missing(imp: Impairment, direction: str, backend: str, caps: frozenset[str]) -> list[str]:
    """One reason per parameter the backend cannot honour here (empty: it can do it all)."""
    reasons = []
    for param, wanted in needs(imp, direction, backend).items():
        if "netem-only" in wanted:
            reasons.append(f"{param}: only the engine backend serves faults")
            continue
        lacking = sorted(wanted - caps)
        if lacking:
            reasons.append(f"{param}: {WHY_MISSING[lacking[0]]}")
    return reasons


def choose_backend(imp: Impairment, direction: str, requested: str, caps: frozenset[str]) -> str:
    """The backend that serves every parameter of the spec, or ShapeError saying why none does.

    auto: netem when the kernel has it and it can serve the whole spec, else the engine."""
    if requested not in BACKENDS:
        raise ShapeError(f"unknown backend {requested!r}: use one of {', '.join(BACKENDS)}")
    order = ["netem", "engine"] if requested == "auto" else [requested]
    if requested == "auto" and "netem" not in caps:
        order = ["engine"]
    why = {}
    for backend in order:
        why[backend] = missing(imp, direction, backend, caps)
        if not why[backend]:
            return backend
    text = "; ".join(f"{b} cannot: {', '.join(r)}" for b, r in why.items())
    raise ShapeError(f"cannot shape {direction} with {requested} on this host ({text})")


def support_table(caps: frozenset[str]) -> list[tuple[str, dict[str, str]]]:
    """For `lab-shape backends`: each parameter, and per direction:backend 'yes' or why not."""
    samples = {"delay": "delay 10ms", "jitter": "delay 10ms 2ms", "distribution":
               "delay 10ms 2ms distribution normal", "loss": "loss 1%", "loss burst": "loss 1% burst 3",
               "duplicate": "duplicate 1%", "reorder": "delay 10ms reorder 10%", "corrupt": "corrupt 1%",
               "rate": "rate 1mbit", "limit": "rate 1mbit limit 10", "seed": "loss 1% seed 1"}
    rows = []
    for param, spec in samples.items():
        cells = {}
        for direction in DIRECTIONS:
            for backend in ("netem", "engine"):
                reasons = [r for r in missing(parse(spec), direction, backend, caps)
                           if r.startswith(param + ":")]
                cells[f"{direction}:{backend}"] = "no: " + reasons[0].split(": ", 1)[1] if reasons else "yes"
        rows.append((param, cells))
    return rows


def build_plan(imp: Impairment, direction: str, backend: str, dev: str = DEV,
               caps: frozenset[str] = frozenset(FEATURES)) -> Plan:
    if direction not in DIRECTIONS:
        raise ShapeError(f"unknown direction {direction!r}: use egress or ingress")
    if backend == "netem":
        return netem_plan(imp, direction, dev, seed_ok="netem-seed" in caps)
    return engine_plan(imp, direction, dev)


def clear_plan(direction: str, dev: str = DEV) -> Plan:
    """Remove everything apply may have made for that direction. Each step may fail when its
    object is absent; the runner ignores that, so clearing twice is fine."""
    chain, (hook, dev_flag) = CHAINS[direction], HOOKS[direction]
    ipt = ["iptables", "-t", "mangle"]
    plan = [["lab-shape", "stop-pidfile", paths.timer_pidfile(direction)],
            [*ipt, "-D", hook, dev_flag, dev, "-j", chain], [*ipt, "-F", chain], [*ipt, "-X", chain],
            ["lab-shape", "stop-pidfile", paths.pidfile(direction)]]
    if direction == "egress":
        return plan + [["tc", "qdisc", "del", "dev", dev, "root"]]
    return plan + [["tc", "qdisc", "del", "dev", dev, "ingress"], ["ip", "link", "del", IFB]]
