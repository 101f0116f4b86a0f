"""The catalogue: every experiment by id, in the post's order, and the choice of some.

    select(["c4", "S1"])      # [C4, S1]; an unknown id is refused before anything starts
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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


def described(known: Mapping[str, Experiment] | None = None) -> str:
    """The catalogue (or `known`) in a few words, for the help: "C1-C10, P1 and S1-S3 (14; S3
    takes minutes)"."""
    known = catalogue() if known is None else known
    runs: list[list[str]] = []
    for eid in known:  # consecutive ids of one letter make one run
        last = runs[-1][-1] if runs else ""
        if last[:1] == eid[:1] and int(last[1:]) + 1 == int(eid[1:]):
            runs[-1].append(eid)
        else:
            runs.append([eid])
    spans = [r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs]
    listed = spans[0] if len(spans) == 1 else f"{', '.join(spans[:-1])} and {spans[-1]}"
    slow = [e.id for e in known.values() if e.slow]
    verb = "takes" if len(slow) == 1 else "take"
    said = f"; {', '.join(slow)} {verb} minutes" if slow else ""
    return f"{listed} ({len(known)}{said})"


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
