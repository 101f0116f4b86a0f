"""The one Impairment and its one validator: what the host side, lab-shape and lab-nfq all read.

    delay 100ms [10ms [distribution normal|pareto|paretonormal|uniform]]
    loss 5% [burst 3]   duplicate 1%   reorder 25% [gap 5]   corrupt 0.1%
    rate 1mbit [limit 100]   seed 42

Meanings, the same in every backend:
- `loss L% burst B`: the simple Gilbert model: long-run loss L, loss bursts of B packets on
  average (netem's `loss gemodel p r 100% 0%` with r = 1/B and p = L*r/(1-L)); p cannot pass
  100 %, so a heavy loss needs long bursts (90 % needs bursts of 9 or more).
- `reorder P% [gap G]`: netem's meaning: P% of the packets (only every G-th if a gap is
  given) skip the delay and so overtake the delayed ones; it needs a delay.
- `rate R [limit N]`: a token bucket of R (counting link-layer bytes) whose queue holds N
  packets (default 1000, like netem's own queue); packets beyond it are dropped.
- `seed S`: every random choice replays.
Pure: parsing and validation only, one-line ShapeError on anything wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

DIRECTIONS = ("egress", "ingress")
DISTRIBUTIONS = ("normal", "pareto", "paretonormal", "uniform")
KEYWORDS = ("delay", "loss", "duplicate", "reorder", "corrupt", "rate", "seed")
RANDOM_PARAMS = ("jitter", "loss", "duplicate", "reorder", "corrupt")
DEFAULT_LIMIT = 1000          # packets in the rate limiter's queue, as netem's own default


class ShapeError(ValueError):
    """A spec or a request that cannot be honoured; the message is one line. Nothing applied."""


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
    faults: tuple = field(default=(), compare=False)  # packet-exact faults (faults.py), as dicts

    def params(self) -> list[str]:
        """The names of the parameters in use, as the spec spells them."""
        used = [("delay", self.delay_ms), ("jitter", self.jitter_ms),
                ("distribution", self.distribution), ("loss", self.loss_pct),
                ("loss burst", self.loss_burst), ("duplicate", self.duplicate_pct),
                ("reorder", self.reorder_pct), ("corrupt", self.corrupt_pct),
                ("rate", self.rate_bit), ("limit", self.limit),
                ("seed", self.seed is not None), ("faults", self.faults)]
        return [name for name, value in used if value]

    def random_params(self) -> list[str]:
        return [p for p in self.params() if p in RANDOM_PARAMS]

    def to_spec(self) -> str:
        """The canonical spec text (parse(to_spec()) gives this impairment back)."""
        words: list[str] = []
        if self.delay_ms:
            words += ["delay", ms(self.delay_ms)] + ([ms(self.jitter_ms)] if self.jitter_ms else [])
            words += ["distribution", self.distribution] if self.distribution else []
        if self.loss_pct:
            words += ["loss", pct(self.loss_pct)] + (["burst", f"{self.loss_burst:g}"]
                                                     if self.loss_burst else [])
        for name, value in (("duplicate", self.duplicate_pct), ("reorder", self.reorder_pct)):
            words += [name, pct(value)] if value else []
        words += ["gap", str(self.reorder_gap)] if self.reorder_gap else []
        words += ["corrupt", pct(self.corrupt_pct)] if self.corrupt_pct else []
        if self.rate_bit:
            words += ["rate", f"{self.rate_bit}bit"] + (["limit", str(self.limit)] if self.limit else [])
        words += ["seed", str(self.seed)] if self.seed is not None else []
        return " ".join(words)


def ms(value: float) -> str:
    return f"{value:.6g}ms"


def pct(value: float) -> str:
    return f"{value:.6g}%"


def field_names() -> list[str]:
    return [f.name for f in fields(Impairment)]


# -- words and units ----------------------------------------------------------------------
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
    bits = round(value * _RATE_UNITS[unit])
    if not 8_000 <= bits <= 100 * 10**9:  # checked here: a rate of 0 would read as "no rate"
        raise ShapeError(f"rate {word} is out of range: use 8kbit-100gbit (no limit: leave rate out)")
    return bits


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
    """A spec (and packet-exact faults, as dicts) -> a validated Impairment; ShapeError (one
    line) on anything wrong."""
    from .faults import parse_faults  # faults.py reads times with this module's parse_time

    parse_faults(list(faults))
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
    if values and not imp.params():
        raise ShapeError(f"`{text.strip()}` changes nothing: every value in it is zero; give at "
                         "least one that is not (e.g. delay 100ms)")
    validate(imp)
    return imp


def _delay(words: _Words) -> dict:
    out: dict[str, float | str] = {"delay_ms": parse_time(words.next("the delay"), "delay")}
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
    """Every rule a spec must keep, checked before anything is applied (one-line errors).
    The host side, lab-shape and lab-nfq all call this one function."""
    if not imp.params():
        raise ShapeError("the spec is empty: give at least one of " + ", ".join(KEYWORDS[:-1]))
    for name in ("loss", "duplicate", "reorder", "corrupt"):
        value = getattr(imp, f"{name}_pct")
        if not 0 <= value <= 100:
            raise ShapeError(f"{name} {value:g}% is out of range: use 0-100%")
    if imp.delay_ms > 60_000 or imp.jitter_ms > 60_000:
        raise ShapeError(f"delay {ms(max(imp.delay_ms, imp.jitter_ms))} is out of range: use 0-60s")
    _check_combinations(imp)
    if imp.rate_bit and not 8_000 <= imp.rate_bit <= 100 * 10**9:
        raise ShapeError(f"rate {imp.rate_bit}bit is out of range: use 8kbit-100gbit")
    if imp.limit and not 1 <= imp.limit <= 100_000:
        raise ShapeError(f"limit {imp.limit} is out of range: use 1-100000 packets")
    if imp.reorder_gap > 1_000_000:
        raise ShapeError(f"gap {imp.reorder_gap} is out of range: use 1-1000000 packets")
    if imp.seed is not None and not 0 <= imp.seed < 2**32:
        raise ShapeError(f"seed {imp.seed} is out of range: use 0-{2**32 - 1}")
    if imp.loss_burst:
        gilbert_p(imp.loss_pct, imp.loss_burst)


def _check_combinations(imp: Impairment) -> None:
    rules = [
        (imp.jitter_ms > imp.delay_ms, f"jitter {ms(imp.jitter_ms)} is larger than the delay "
         f"{ms(imp.delay_ms)}: the delay would be cut at 0; use a jitter up to the delay"),
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
        (imp.seed is not None and not imp.random_params(), "seed needs something random to seed "
         "(jitter, loss, duplicate, reorder or corrupt)"),
    ]
    for broken, message in rules:
        if broken:
            raise ShapeError(message)


def gilbert_p(loss_pct: float, burst: float) -> float:
    """The simple Gilbert model's Good->Bad probability (0-1) for a long-run loss of
    `loss_pct` with bursts of `burst` packets on average (Bad->Good is 1/burst)."""
    loss = loss_pct / 100
    p = (loss / burst) / (1 - loss)
    if p > 1:
        raise ShapeError(f"loss {pct(loss_pct)} burst {burst:g} is impossible: with {pct(loss_pct)} "
                         f"lost, bursts average at least {loss / (1 - loss):.3g} packets")
    return p


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
