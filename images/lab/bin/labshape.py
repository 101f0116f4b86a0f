"""labshape: impair the packets that leave (egress) or arrive at (ingress) this lab host.

One SPEC, read like tc's netem, served by one of two backends:

    delay 100ms [10ms [distribution normal|pareto|paretonormal|uniform]]
    loss 5% [burst 3]   duplicate 1%   reorder 25% [gap 5]   corrupt 0.1%
    rate 1mbit [limit 100]   seed 42

- netem:  the kernel's sch_netem for the impairments, tbf (+ a pfifo of `limit` packets)
          for the rate, an ifb device for the arriving direction.
- engine: for kernels without netem. Random loss by iptables' `statistic` match; delay,
          jitter, reorder, duplicate, corrupt, seeded or bursty loss by NFQUEUE and the
          user-space loop `lab-nfq`; the rate by the same tbf as above.

Meanings, the same in both backends:
- `loss L% burst B`: the simple Gilbert model: long-run loss L, loss bursts of B packets on
  average (netem's `loss gemodel p r 100% 0%` with r = 1/B and p = L*r/(1-L)).
- `reorder P% [gap G]`: netem's meaning: P% of the packets (only every G-th if a gap is
  given) skip the delay and so overtake the delayed ones; it needs a delay.
- `rate R [limit N]`: a token bucket of R (counting link-layer bytes) whose queue holds N
  packets (default 1000, like netem's own queue); packets beyond it are dropped.
- the loss, duplication, corruption and reordering are decided per packet as it leaves or
  arrives; offloads (TSO/GSO on egress, GRO on ingress) are switched off so a "packet" is one
  wire packet, not a 64 KB aggregate.
This module is the single source of truth: `lab-shape` runs it in the host, socketlab loads
it on the host side to validate a spec before anything is touched. Stdlib only; the plan
builders are pure (argv lists), the runner is the only part that changes the system.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

DIRECTIONS = ("egress", "ingress")
BACKENDS = ("auto", "netem", "engine")
DISTRIBUTIONS = ("normal", "pareto", "paretonormal", "uniform")
DEV = "eth0"
IFB = "slab-ifb0"
RUN_DIR = "/run/socketlab"
CHAINS = {"egress": "SOCKETLAB-EGRESS", "ingress": "SOCKETLAB-INGRESS"}
HOOKS = {"egress": ("POSTROUTING", "-o"), "ingress": ("PREROUTING", "-i")}
QUEUES = {"egress": 0, "ingress": 1}
DEFAULT_LIMIT = 1000          # packets in the rate limiter's queue, as netem's own default
FRAME = 1514                  # bytes of a full Ethernet frame (MTU 1500 + header)
DROP_MARK = 0x5AC             # egress loss: iptables marks, a tc filter drops (see _drop_filter)
NFQ_MARK = 0x5AB              # lab-nfq's own copies (duplicates) carry it: the chains let them by
NFQ_MAX_SECONDS = 86400
KEYWORDS = ("delay", "loss", "duplicate", "reorder", "corrupt", "rate", "seed")
FEATURES = ("netem", "netem-seed", "tbf", "htb", "bpf", "ifb", "statistic", "nfqueue", "lab-nfq")

Plan = list[list[str]]


class ShapeError(ValueError):
    """A spec or a request that cannot be honoured; the message is one line. Nothing applied."""


class ApplyFailed(RuntimeError):
    """A step of an apply failed; what was there before has been put back."""


@dataclass(frozen=True)
class Impairment:
    """What to do to the packets of one direction. Zero means "not at all"."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    distribution: str = ""
    loss_pct: float = 0.0
    loss_burst: float = 0.0       # mean loss-burst length in packets; 0: independent losses
    duplicate_pct: float = 0.0
    reorder_pct: float = 0.0
    reorder_gap: int = 0
    corrupt_pct: float = 0.0
    rate_bit: int = 0             # bits per second
    limit: int = 0                # the rate limiter's queue, packets; 0: DEFAULT_LIMIT
    seed: int | None = None
    faults: tuple = field(default=(), compare=False)  # lab-nfq's own faults, passed through

    def params(self) -> list[str]:
        """The names of the parameters in use, as the spec spells them."""
        used = [("delay", self.delay_ms), ("jitter", self.jitter_ms),
                ("distribution", self.distribution), ("loss", self.loss_pct),
                ("loss burst", self.loss_burst), ("duplicate", self.duplicate_pct),
                ("reorder", self.reorder_pct), ("corrupt", self.corrupt_pct),
                ("rate", self.rate_bit), ("limit", self.limit),
                ("seed", self.seed is not None), ("faults", self.faults)]
        return [name for name, value in used if value]

    def to_spec(self) -> str:
        """The canonical spec text (parse(to_spec()) gives this impairment back)."""
        words: list[str] = []
        if self.delay_ms:
            words += ["delay", _ms(self.delay_ms)] + ([_ms(self.jitter_ms)] if self.jitter_ms else [])
            words += ["distribution", self.distribution] if self.distribution else []
        if self.loss_pct:
            words += ["loss", _pct(self.loss_pct)] + (["burst", f"{self.loss_burst:g}"]
                                                      if self.loss_burst else [])
        for name, value in (("duplicate", self.duplicate_pct), ("reorder", self.reorder_pct)):
            words += [name, _pct(value)] if value else []
        words += ["gap", str(self.reorder_gap)] if self.reorder_gap else []
        words += ["corrupt", _pct(self.corrupt_pct)] if self.corrupt_pct else []
        if self.rate_bit:
            words += ["rate", f"{self.rate_bit}bit"] + (["limit", str(self.limit)] if self.limit else [])
        words += ["seed", str(self.seed)] if self.seed is not None else []
        return " ".join(words)


def _ms(value: float) -> str:
    return f"{value:.6g}ms"


def _pct(value: float) -> str:
    return f"{value:.6g}%"


# -- parsing ------------------------------------------------------------------------------
_TIME_UNITS = {"us": 0.001, "usec": 0.001, "ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0}
_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "bps": 8, "kbps": 8 * 10**3,
               "mbps": 8 * 10**6, "gbps": 8 * 10**9}
_NUMBER_UNIT = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([a-z%]*)$")


def _split(word: str, what: str) -> tuple[float, str]:
    match = _NUMBER_UNIT.match(word.lower())
    if not match:
        raise ShapeError(f"{what} {word!r} is not a number with a unit")
    return float(match.group(1)), match.group(2)


def parse_time(word: str, what: str) -> float:
    """'100ms', '1s', '500us' -> milliseconds."""
    value, unit = _split(word, what)
    if unit not in _TIME_UNITS:
        raise ShapeError(f"{what} {word} needs a time unit: ms, s or us (e.g. {value:g}ms)")
    return value * _TIME_UNITS[unit]


def parse_pct(word: str, what: str) -> float:
    value, unit = _split(word, what)
    if unit != "%":
        raise ShapeError(f"{what} {word} needs a percent sign (e.g. {value:g}%)")
    return value


def parse_rate(word: str) -> int:
    """'1mbit', '500kbit', '2gbit', '125kbps' (bytes, as tc reads it) -> bits per second."""
    value, unit = _split(word, "rate")
    if unit not in _RATE_UNITS:
        raise ShapeError(f"rate {word} needs a unit: bit, kbit, mbit, gbit (or bps, kbps, mbps, gbps "
                         "for bytes per second)")
    return round(value * _RATE_UNITS[unit])


def parse_int(word: str, what: str) -> int:
    if not word.isdigit():
        raise ShapeError(f"{what} {word!r} is not a whole number")
    return int(word)


class _Words:
    """The spec's words, read one at a time."""

    def __init__(self, text: str) -> None:
        self.words = text.split()
        self.at = 0

    def next(self, what: str) -> str:
        if self.at >= len(self.words):
            raise ShapeError(f"{what} is missing at the end of the spec")
        self.at += 1
        return self.words[self.at - 1]

    def optional(self, keyword: str | None = None) -> str | None:
        """The next word if it is `keyword` (or, without one, if it is no keyword at all)."""
        if self.at >= len(self.words):
            return None
        word = self.words[self.at]
        if (keyword is None and word in KEYWORDS) or (keyword is not None and word != keyword):
            return None
        self.at += 1
        return word


def parse(text: str, faults: Sequence = ()) -> Impairment:
    """A spec -> a validated Impairment; ShapeError (one line) on anything wrong."""
    words, values = _Words(text), {}
    while words.at < len(words.words):
        keyword = words.next("a keyword")
        if keyword not in KEYWORDS:
            raise ShapeError(f"unknown word {keyword!r}: expected one of {', '.join(KEYWORDS)}")
        if keyword in values:
            raise ShapeError(f"{keyword} is given twice")
        values[keyword] = _PARSERS[keyword](words)
    merged = {k: v for part in values.values() for k, v in part.items()}
    imp = Impairment(**merged, faults=tuple(faults))
    validate(imp)
    return imp


def _delay(words: _Words) -> dict:
    out = {"delay_ms": parse_time(words.next("the delay"), "delay")}
    jitter = words.optional()
    if jitter is not None and jitter != "distribution":
        out["jitter_ms"] = parse_time(jitter, "jitter")
        jitter = words.optional("distribution")
    if jitter == "distribution":
        out["distribution"] = words.next("the distribution's name")
    return out


def _loss(words: _Words) -> dict:
    words.optional("random")  # netem's `loss random 5%` reads the same
    out: dict = {"loss_pct": parse_pct(words.next("the loss"), "loss")}
    if words.optional("burst"):
        value, unit = _split(words.next("the burst length"), "burst")
        if unit:
            raise ShapeError(f"burst is a number of packets, without a unit (got {value:g}{unit})")
        out["loss_burst"] = value
    return out


def _reorder(words: _Words) -> dict:
    out: dict = {"reorder_pct": parse_pct(words.next("the reorder percentage"), "reorder")}
    if words.optional("gap"):
        out["reorder_gap"] = parse_int(words.next("the gap"), "gap")
    return out


def _rate(words: _Words) -> dict:
    out = {"rate_bit": parse_rate(words.next("the rate"))}
    if words.optional("limit"):
        out["limit"] = parse_int(words.next("the limit"), "limit")
        if out["limit"] == 0:  # 0 is the dataclass's "not given"
            raise ShapeError("limit 0 is out of range: use 1-100000 packets")
    return out


_PARSERS: dict[str, Callable[[_Words], dict]] = {
    "delay": _delay, "loss": _loss, "reorder": _reorder, "rate": _rate,
    "duplicate": lambda w: {"duplicate_pct": parse_pct(w.next("the duplicate percentage"), "duplicate")},
    "corrupt": lambda w: {"corrupt_pct": parse_pct(w.next("the corrupt percentage"), "corrupt")},
    "seed": lambda w: {"seed": parse_int(w.next("the seed"), "seed")},
}


# -- validation ---------------------------------------------------------------------------
def validate(imp: Impairment) -> None:
    """Every rule a spec must keep, checked before anything is applied (one-line errors)."""
    if not imp.params():
        raise ShapeError("the spec is empty: give at least one of " + ", ".join(KEYWORDS[:-1]))
    for name in ("loss", "duplicate", "reorder", "corrupt"):
        value = getattr(imp, f"{name}_pct")
        if not 0 <= value <= 100:
            raise ShapeError(f"{name} {value:g}% is out of range: use 0-100%")
    if imp.delay_ms > 60_000 or imp.jitter_ms > 60_000:
        raise ShapeError(f"delay {_ms(max(imp.delay_ms, imp.jitter_ms))} is out of range: use 0-60s")
    _check_combinations(imp)
    if imp.rate_bit and not 8_000 <= imp.rate_bit <= 100 * 10**9:
        raise ShapeError(f"rate {imp.rate_bit}bit is out of range: use 8kbit-100gbit")
    if imp.limit and not 1 <= imp.limit <= 100_000:
        raise ShapeError(f"limit {imp.limit} is out of range: use 1-100000 packets")
    if imp.seed is not None and not 0 <= imp.seed < 2**32:
        raise ShapeError(f"seed {imp.seed} is out of range: use 0-{2**32 - 1}")


def _check_combinations(imp: Impairment) -> None:
    rules = [
        (imp.jitter_ms > imp.delay_ms, f"jitter {_ms(imp.jitter_ms)} is larger than the delay "
         f"{_ms(imp.delay_ms)}: the delay would be cut at 0; use a jitter up to the delay"),
        (imp.distribution and imp.distribution not in DISTRIBUTIONS,
         f"distribution {imp.distribution!r} is unknown: use one of {', '.join(DISTRIBUTIONS)}"),
        (imp.distribution and not imp.jitter_ms, "a distribution needs a jitter "
         "(e.g. delay 100ms 10ms distribution normal)"),
        (imp.loss_burst and not 0 < imp.loss_pct < 100, "loss burst needs a loss between 0% and 100%"),
        (imp.loss_burst and imp.loss_burst < 1, f"burst {imp.loss_burst:g} is out of range: a loss "
         "burst is at least 1 packet long"),
        (imp.reorder_pct and not imp.delay_ms, "reorder needs a delay: reordered packets are the ones "
         "sent without it (e.g. delay 50ms reorder 25%)"),
        (imp.reorder_gap and not imp.reorder_pct, "gap needs a reorder percentage"),
        (imp.limit and not imp.rate_bit, "limit needs a rate: it is the rate limiter's queue size"),
        (imp.seed is not None and not _random_params(imp), "seed needs something random to seed "
         "(jitter, loss, duplicate, reorder or corrupt)"),
    ]
    for broken, message in rules:
        if broken:
            raise ShapeError(message)


def _random_params(imp: Impairment) -> list[str]:
    return [p for p in imp.params() if p in ("jitter", "loss", "duplicate", "reorder", "corrupt")]


def parse_env(text: str) -> dict[str, Impairment]:
    """'egress: delay 100ms loss 5%; ingress: rate 1mbit' (compose's SOCKETLAB_SHAPE_*)."""
    out: dict[str, Impairment] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        direction, colon, spec = part.partition(":")
        direction = direction.strip()
        if not colon or direction not in DIRECTIONS:
            raise ShapeError(f"{part!r} does not say its direction: write 'egress: SPEC' or "
                             "'ingress: SPEC', separated by ';'")
        if direction in out:
            raise ShapeError(f"{direction} is given twice")
        try:
            out[direction] = parse(spec)
        except ShapeError as e:
            raise ShapeError(f"{direction}: {e}") from None
    return out


# -- which backend serves what --------------------------------------------------------------
_WHY = {"netem": "the kernel has no sch_netem", "netem-seed": "this iproute2's netem has no seed",
        "tbf": "the kernel has no tbf qdisc", "htb": "the kernel has no htb qdisc",
        "bpf": "the kernel has no bpf classifier", "ifb": "the kernel has no ifb/ingress/mirred",
        "statistic": "iptables has no statistic match", "nfqueue": "the kernel has no NFQUEUE",
        "lab-nfq": "lab-nfq (the NFQUEUE loop) is not installed in this host"}


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
            reasons.append(f"{param}: {_WHY[lacking[0]]}")
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


# -- plans (pure) -----------------------------------------------------------------------------
def _tc_target(direction: str, dev: str) -> str:
    return dev if direction == "egress" else IFB


def offload_step(direction: str, dev: str) -> list[str]:
    """One wire packet per decision: no TSO/GSO aggregates leaving, no GRO ones arriving."""
    if direction == "egress":
        return ["ethtool", "-K", dev, "tso", "off", "gso", "off"]
    return ["ethtool", "-K", dev, "gro", "off"]


def netem_args(imp: Impairment, seed_ok: bool = True) -> list[str]:
    """The words after `netem` (without rate: that is tbf's, below)."""
    args: list[str] = []
    if imp.delay_ms:
        args += ["delay", _ms(imp.delay_ms)] + ([_ms(imp.jitter_ms)] if imp.jitter_ms else [])
        if imp.distribution and imp.distribution != "uniform":  # uniform is netem's own default
            args += ["distribution", imp.distribution]
    if imp.loss_pct and imp.loss_burst:
        r = 100.0 / imp.loss_burst
        p = imp.loss_pct * r / (100.0 - imp.loss_pct)
        args += ["loss", "gemodel", _pct(p), _pct(r), "100%", "0%"]
    elif imp.loss_pct:
        args += ["loss", _pct(imp.loss_pct)]
    for name, value in (("duplicate", imp.duplicate_pct), ("reorder", imp.reorder_pct)):
        args += [name, _pct(value)] if value else []
    args += ["gap", str(imp.reorder_gap)] if imp.reorder_gap else []
    args += ["corrupt", _pct(imp.corrupt_pct)] if imp.corrupt_pct else []
    if imp.seed is not None and seed_ok:
        args += ["seed", str(imp.seed)]
    return args


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


def netem_plan(imp: Impairment, direction: str, dev: str = DEV, seed_ok: bool = True) -> Plan:
    target = _tc_target(direction, dev)
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


def uses_nfq(imp: Impairment) -> bool:
    """Does the engine need lab-nfq for this spec?"""
    nfq_loss = imp.loss_pct and (imp.loss_burst or imp.seed is not None)
    return bool(imp.delay_ms or imp.duplicate_pct or imp.reorder_pct or imp.corrupt_pct
                or imp.faults or nfq_loss)


def statistic_loss(imp: Impairment) -> bool:
    return bool(imp.loss_pct) and not imp.loss_burst and imp.seed is None


def nfq_config(imp: Impairment) -> dict:
    """What lab-nfq is told (its --config JSON). Loss handled by iptables is left out."""
    loss_here = not statistic_loss(imp)
    return {"delay_ms": imp.delay_ms, "jitter_ms": imp.jitter_ms,
            "distribution": imp.distribution or "uniform",
            "loss_pct": imp.loss_pct if loss_here else 0.0,
            "loss_burst": (imp.loss_burst or None) if loss_here else None,
            "duplicate_pct": imp.duplicate_pct, "reorder_pct": imp.reorder_pct,
            "reorder_gap": imp.reorder_gap or 1, "corrupt_pct": imp.corrupt_pct, "seed": imp.seed,
            "faults": list(imp.faults)}


def pidfile(direction: str) -> str:
    return f"{RUN_DIR}/nfq-{QUEUES[direction]}.pid"


def nfq_steps(imp: Impairment, direction: str) -> Plan:
    """Start lab-nfq in its own session (it outlives lab-shape), then wait until it is bound."""
    queue = QUEUES[direction]
    config = json.dumps(nfq_config(imp), sort_keys=True, separators=(",", ":"))
    return [["mkdir", "-p", RUN_DIR],
            ["setsid", "-f", "lab-nfq", "--queue", str(queue), "--config", config,
             "--log", f"{RUN_DIR}/nfq-{queue}.log", "--pidfile", pidfile(direction),
             "--max-seconds", str(NFQ_MAX_SECONDS), "--mark", f"{NFQ_MARK:#x}"],
            ["lab-shape", "wait-pidfile", pidfile(direction)]]


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
                      str(QUEUES[direction]), "--queue-bypass"])
    if len(rules) == 1:
        return []
    return [*rules, [*ipt, "-A", hook, dev_flag, dev, "-j", chain]]


def engine_plan(imp: Impairment, direction: str, dev: str = DEV) -> Plan:
    target = _tc_target(direction, dev)
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
    plan = [[*ipt, "-D", hook, dev_flag, dev, "-j", chain], [*ipt, "-F", chain], [*ipt, "-X", chain],
            ["lab-shape", "stop-pidfile", pidfile(direction)]]
    if direction == "egress":
        return plan + [["tc", "qdisc", "del", "dev", dev, "root"]]
    return plan + [["tc", "qdisc", "del", "dev", dev, "ingress"], ["ip", "link", "del", IFB]]


# -- running (the only part that touches the system) ------------------------------------------
@dataclass(frozen=True)
class StepResult:
    argv: list[str]
    code: int
    output: str


Runner = Callable[[list[str]], StepResult]


def run_step(argv: list[str]) -> StepResult:
    """Run one step; a background start (setsid -f) gets no pipes, so it is not waited for."""
    background = argv[:2] == ["setsid", "-f"]
    pipe = subprocess.DEVNULL if background else subprocess.PIPE
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe,
                              text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return StepResult(argv, 127, str(e))
    return StepResult(argv, done.returncode, ((done.stdout or "") + (done.stderr or "")).strip())


def run_plan(plan: Plan, run: Runner = run_step) -> StepResult | None:
    """Run the steps in order; the first that fails (None if all succeed)."""
    for argv in plan:
        result = run(argv)
        if result.code != 0:
            return result
    return None


def run_clear(direction: str, dev: str = DEV, run: Runner = run_step) -> None:
    for argv in clear_plan(direction, dev):
        run(argv)
    _remove(state_path(direction))


def state_path(direction: str) -> str:
    return f"{RUN_DIR}/shape-{direction}.json"


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def read_state(direction: str) -> dict | None:
    try:
        with open(state_path(direction)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_state(direction: str, imp: Impairment, backend: str) -> None:
    os.makedirs(RUN_DIR, exist_ok=True)
    with open(state_path(direction), "w") as f:
        json.dump({"spec": imp.to_spec(), "faults": list(imp.faults), "backend": backend}, f)


def apply(imp: Impairment, direction: str, backend: str, caps: frozenset[str], dev: str = DEV,
          run: Runner = run_step) -> str:
    """Replace the direction's shaping by `imp`; the backend used. On a failing step, what was
    there before is put back and ApplyFailed says which step failed and why."""
    chosen = choose_backend(imp, direction, backend, caps)
    plan = build_plan(imp, direction, chosen, dev, caps)
    previous = read_state(direction)
    run_clear(direction, dev, run)
    failed = run_plan(plan, run)
    if failed is None:
        write_state(direction, imp, chosen)
        return chosen
    run_clear(direction, dev, run)
    restored = _restore(previous, direction, caps, dev, run)
    last = failed.output.splitlines()[-1] if failed.output else f"exit code {failed.code}"
    raise ApplyFailed(f"step `{' '.join(failed.argv)}` failed: {last}; {restored}")


def _restore(previous: dict | None, direction: str, caps: frozenset[str], dev: str,
             run: Runner) -> str:
    if not previous:
        return f"{direction} is left unshaped, as it was"
    imp = parse(previous["spec"], previous.get("faults", ()))
    if run_plan(build_plan(imp, direction, previous["backend"], dev, caps), run) is None:
        write_state(direction, imp, previous["backend"])
        return f"the previous {direction} shaping ({previous['spec']}) is back"
    run_clear(direction, dev, run)
    return f"the previous {direction} shaping could not be restored either: {direction} is unshaped"


# -- probing the kernel (for real, on this host's loopback only) ------------------------------
_PROBES: dict[str, Plan] = {
    "netem": [["tc", "qdisc", "add", "dev", "lo", "root", "handle", "9:", "netem", "delay", "1ms"]],
    "netem-seed": [["tc", "qdisc", "add", "dev", "lo", "root", "handle", "9:", "netem", "loss", "1%",
                    "seed", "1"]],
    "tbf": [["tc", "qdisc", "add", "dev", "lo", "root", "handle", "9:", "tbf", "rate", "1mbit",
             "burst", "3028", "limit", "15140"]],
    "htb": [["tc", "qdisc", "add", "dev", "lo", "root", "handle", "9:", "htb", "default", "1"]],
    "bpf": [["tc", "qdisc", "add", "dev", "lo", "root", "handle", "9:", "htb", "default", "1"],
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
_PROBE_UNDO: Plan = [["tc", "qdisc", "del", "dev", "lo", "root"],
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


# -- show, and the helpers that plans call ------------------------------------------------------
def show(dev: str = DEV, run: Runner = run_step) -> str:
    parts = []
    for direction in DIRECTIONS:
        state = read_state(direction)
        parts.append(f"{direction}: " + (_describe_state(state) if state else "not shaped"))
    commands = [["tc", "-s", "qdisc", "show", "dev", dev], ["tc", "-s", "qdisc", "show", "dev", IFB],
                *[["iptables", "-t", "mangle", "-L", c, "-v", "-n", "-x"] for c in CHAINS.values()]]
    for argv in commands:
        result = run(argv)
        if result.code == 0 and result.output:
            parts.append(f"$ {' '.join(argv)}\n{result.output}")
    for direction in DIRECTIONS:
        pid = _pid(pidfile(direction))
        if pid:
            parts.append(f"lab-nfq queue {QUEUES[direction]}: running (pid {pid})")
        parts += _fired_faults(direction)
    return "\n".join(parts)


def _describe_state(state: dict) -> str:
    words = [state["spec"]] if state.get("spec") else []
    words += [f"fault {json.dumps(f, sort_keys=True)}" for f in state.get("faults") or []]
    return f"{'; '.join(words) or 'nothing'} (backend {state['backend']})"


def _fired_faults(direction: str, most: int = 20) -> list[str]:
    """The faults lab-nfq logged as fired in this direction (the last `most`)."""
    try:
        with open(f"{RUN_DIR}/nfq-{QUEUES[direction]}.log") as f:
            fired = [json.loads(line) for line in f if '"event": "fault"' in line]
    except (OSError, ValueError):
        return []
    lines = [f"fault fired ({direction}): {e.get('action')} {e.get('proto')} "
             f"{e.get('src')}:{e.get('sport')} > {e.get('dst')}:{e.get('dport')} "
             f"flags={e.get('flags') or '-'} len={e.get('len')} #{e.get('ordinal')}"
             for e in fired][-most:]
    return lines


def _pid(path: str) -> int | None:
    """The pid in a pidfile if that process is alive."""
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def wait_pidfile(path: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pid(path):
            return True
        time.sleep(0.05)
    return False


def stop_pidfile(path: str, timeout: float = 3.0) -> None:
    """SIGTERM the process of a pidfile, SIGKILL it if it lingers; remove the pidfile."""
    pid = _pid(path)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid(path):
            os.kill(pid, signal.SIGKILL)
    _remove(path)


def field_names() -> list[str]:
    return [f.name for f in fields(Impairment)]
