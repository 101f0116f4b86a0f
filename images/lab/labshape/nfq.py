"""lab-nfq's decisions: what happens to each packet (pure: no sockets, no clock, no files).

lab-nfq (images/lab/bin) does the netlink plumbing: it reads each packet the kernel queues,
asks a Decider what to do with it, and tells the kernel the verdict. The Decider reads the
one Impairment (spec.py) as netem reads the same words:
  delay, jitter          hold each packet delay +- jitter drawn from the distribution
                         (uniform by default; normal, pareto, paretonormal); jitter reorders
                         packets, as in netem: each is sent at its own time
  loss                   drop this % of packets at random (each on its own: Bernoulli), or
  loss .. burst B        the simple Gilbert model (netem's `loss gemodel P R`): a Good state
                         that never loses, a Bad state that always loses; Bad->Good with
                         R = 1/B, Good->Bad with P = R * loss / (1 - loss) (spec.gilbert_p)
  duplicate, corrupt     send this % twice; flip one random bit in this % (see corrupt_bit)
  reorder P [gap G]      netem's reorder (needs a delay): after G-1 delayed packets, each is
                         sent at once with probability P, the rest are delayed; G defaults to 1
  seed                   one random.Random(seed) makes every random choice: the same seed
                         and the same packets give the same decisions
  faults                 packet-exact faults (faults.py)
Faults are decided first, on every packet, so their ordinals never depend on chance.
A packet a fault fired on is never lost at random (the fault happens exactly as written);
it still gets the random delay, duplication and corruption like any other packet.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .faults import Fault, Packet, corrupt_bit, parse_faults
from .spec import Impairment, gilbert_p


# -- the decisions ----------------------------------------------------------------------------
@dataclass
class Decision:
    """What to do with one packet: drop it, or accept it after `delay_ms`, with `copies`
    extra copies, with bit `corrupt_bit` flipped (-1: none). `fired` is (fault, ordinal)
    for every fault that fired; `random` names the random impairments that struck."""

    drop: bool = False
    delay_ms: float = 0.0
    copies: int = 0
    corrupt_bit: int = -1
    fired: list[tuple[Fault, int]] = field(default_factory=list)
    random: list[str] = field(default_factory=list)


class Decider:
    """Decides, packet by packet, with one seeded random.Random for every random choice."""

    def __init__(self, imp: Impairment, seed: int | None = None) -> None:
        self.imp = imp
        self.faults = parse_faults(list(imp.faults))
        self.rng = random.Random(imp.seed if seed is None else seed)
        self.ordinals = [0] * len(self.faults)  # packets each fault's match has seen
        self.bad_state = False  # Gilbert model: in a loss burst
        self.since_reorder = 0  # netem's reorder counter
        self.gilbert_p = gilbert_p(imp.loss_pct, imp.loss_burst) if imp.loss_burst else 0.0

    def decide(self, packet: Packet) -> Decision:
        decision = Decision()
        self._apply_faults(packet, decision)
        if decision.drop:
            return decision
        if not decision.fired and self._lost():
            decision.drop = True
            decision.random.append("loss")
            return decision
        self._apply_random(packet, decision)
        return decision

    def _apply_faults(self, packet: Packet, decision: Decision) -> None:
        for fault in self.faults:
            if not fault.match.fits(packet):
                continue
            self.ordinals[fault.index] += 1
            ordinal = self.ordinals[fault.index]
            if fault.match.nth is not None and ordinal not in fault.match.nth:
                continue
            decision.fired.append((fault, ordinal))
            if fault.action == "drop":
                decision.drop = True
            elif fault.action == "delay":
                decision.delay_ms += fault.ms
            elif fault.action == "duplicate":
                decision.copies += 1
            elif decision.corrupt_bit < 0:  # corrupt: one bit, even if two faults say so
                decision.corrupt_bit = corrupt_bit(packet, self.rng)

    def _apply_random(self, packet: Packet, decision: Decision) -> None:
        c = self.imp
        if c.duplicate_pct and self._chance(c.duplicate_pct):
            decision.copies += 1
            decision.random.append("duplicate")
        if c.corrupt_pct and self._chance(c.corrupt_pct) and decision.corrupt_bit < 0:
            decision.corrupt_bit = corrupt_bit(packet, self.rng)
            decision.random.append("corrupt")
        if c.delay_ms or c.jitter_ms:
            if self._reordered():
                decision.random.append("reorder")
            else:
                decision.delay_ms += self.delay()

    def _chance(self, pct: float) -> bool:
        return self.rng.random() * 100 < pct

    def _lost(self) -> bool:
        """Bernoulli loss, or with loss_burst the simple Gilbert model (see the docstring)."""
        c = self.imp
        if not c.loss_pct:
            return False
        if not c.loss_burst:
            return self._chance(c.loss_pct)
        r = 1 / c.loss_burst
        if self.bad_state:
            self.bad_state = self.rng.random() >= r  # stay Bad with 1 - R
        else:
            self.bad_state = self.rng.random() < self.gilbert_p
        return self.bad_state

    def _reordered(self) -> bool:
        """netem: the first gap-1 packets are delayed; then each is sent at once with
        probability reorder_pct (and the count starts again), or delayed like the rest."""
        c = self.imp
        gap = max(c.reorder_gap, 1)
        if not c.reorder_pct or self.since_reorder < gap - 1 or not self._chance(c.reorder_pct):
            self.since_reorder += 1
            return False
        self.since_reorder = 0
        return True

    def delay(self) -> float:
        """One delay in ms: delay_ms +- jitter_ms from the distribution, never below 0."""
        c, rng = self.imp, self.rng
        if not c.jitter_ms:
            return c.delay_ms
        if c.distribution in ("", "uniform"):  # uniform: netem's default
            offset = rng.uniform(-1, 1)
        elif c.distribution == "normal":
            offset = rng.gauss(0, 1)
        elif c.distribution == "pareto":
            offset = _pareto(rng)
        else:  # paretonormal, as iproute2 builds its table: 1/4 pareto + 3/4 normal
            offset = 0.25 * _pareto(rng) + 0.75 * rng.gauss(0, 1)
        return max(0.0, c.delay_ms + c.jitter_ms * offset)


def _pareto(rng: random.Random) -> float:
    """A Pareto(alpha 3) draw moved to mean 0 and scaled to standard deviation 1:
    mostly a little early, now and then very late (a long right tail)."""
    alpha = 3.0
    mean = alpha / (alpha - 1)
    sd = (alpha / ((alpha - 1) ** 2 * (alpha - 2))) ** 0.5
    return (rng.paretovariate(alpha) - mean) / sd
