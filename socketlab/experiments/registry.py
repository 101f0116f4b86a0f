"""The catalogue: every experiment by id, in the post's order, and the choice of some.

    select(["c4", "S1"])      # [C4, S1]; an unknown id is refused before anything starts
"""

from __future__ import annotations

from collections.abc import Iterable

from socketlab.errors import ConfigError
from socketlab.experiments.base import Experiment
from socketlab.experiments.congestion import EXPERIMENTS as _CONGESTION
from socketlab.experiments.load import EXPERIMENTS as _LOAD
from socketlab.experiments.pmtu import EXPERIMENTS as _PMTU
from socketlab.experiments.sending import EXPERIMENTS as _SENDING
from socketlab.experiments.shaped import EXPERIMENTS as _SHAPED
from socketlab.experiments.tcp import EXPERIMENTS as _TCP
from socketlab.experiments.udp import EXPERIMENTS as _UDP

EXPERIMENTS = (*_TCP, *_UDP, *_LOAD, *_SENDING, *_SHAPED, *_CONGESTION, *_PMTU)


def catalogue() -> dict[str, Experiment]:
    """Every experiment, by claim id, in the post's order."""
    return {e.id: e for e in sorted(EXPERIMENTS, key=lambda e: (e.id[0], int(e.id[1:])))}


def select(ids: Iterable[str] | None) -> list[Experiment]:
    """The experiments named (case-insensitive, e.g. c4 or C4), or all; unknown ids refused."""
    known = catalogue()
    ids = list(ids or [])
    if not ids:
        return list(known.values())
    if any(not i.strip() for i in ids):
        raise ConfigError("an empty experiment id", hint=f"the experiments are {', '.join(known)}")
    wanted = [i.strip().upper() for i in ids]
    unknown = [i for i in wanted if i not in known]
    if unknown:
        raise ConfigError(f"no experiment {', '.join(unknown)}",
                          hint=f"the experiments are {', '.join(known)}")
    return [known[i] for i in wanted]
