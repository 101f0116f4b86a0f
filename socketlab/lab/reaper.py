"""The reaper: labs whose owner is gone (killed, crashed) or whose time to live has passed,
found by their labels and removed; never anyone else's (socketlab.lab.owner has the rule).

    for lab in reap(DockerHTTP.from_env()):      # what `socketlab reap` and pytest's start do
        print(lab.project, lab.reason, lab.removed)

A lab counts as stale only if every one of its containers and networks names an owner and the
rule finds each of them stale: one object without owner labels (made by an older socketlab, or
by hand) keeps the whole lab.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from socketlab.lab.composefile import LAB_LABEL
from socketlab.lab.engine_compose import PROJECT_LABEL
from socketlab.lab.owner import HOST_LABEL, PID_LABEL, Machine, Owner, stale

Labels = Mapping[str, str]


class Listing(Protocol):
    """What the reaper asks of an engine (DockerHTTP answers it): two listings."""

    def containers(self, *, all: bool = False, filters: Any = None) -> list[dict]: ...

    def networks(self, *, filters: Any = None) -> list[dict]: ...


@dataclass(frozen=True)
class Stale:
    project: str
    reason: str
    removed: tuple[str, ...] = ()  # "container NAME" / "network NAME"
    error: str = ""  # why it could not be removed (it is then still there)

    def __str__(self) -> str:
        """One line: what was found, why, and what became of it."""
        if self.error:
            return f"stale lab {self.project!r} ({self.reason}) could not be removed: {self.error}"
        if not self.removed:
            return f"stale lab {self.project!r} ({self.reason})"
        kinds = [r.split(" ", 1)[0] for r in self.removed]
        parts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind in ("container", "network")
                 if (n := kinds.count(kind))]
        return f"removed stale lab {self.project!r} ({self.reason}): {', '.join(parts)}"


def stale_labs(labels: Iterable[Labels], machine: Machine, now: float) -> list[Stale]:
    """The stale labs among the labelled objects given (pure but for `machine`'s questions)."""
    by_project: dict[str, list[Labels]] = defaultdict(list)
    for found in labels:
        if found.get(PROJECT_LABEL):
            by_project[found[PROJECT_LABEL]].append(found)
    out = []
    for project, objects in sorted(by_project.items()):
        reasons = {stale(Owner.from_labels(o), machine, now) for o in objects}
        if None not in reasons:
            out.append(Stale(project, sorted(r for r in reasons if r)[0]))
    return out


def lab_labels(engine: Listing) -> list[Labels]:
    """The labels of every container and network of every lab on the engine."""
    flt = {"label": LAB_LABEL}
    return [c.get("Labels") or {} for c in engine.containers(all=True, filters=flt)] + \
        [n.get("Labels") or {} for n in engine.networks(filters=flt)]


def labs_of(engine: Listing, pids: Iterable[int], host: str) -> list[str]:
    """The labs on the engine that these processes of this host own (anything of them left)."""
    wanted = {str(p) for p in pids}
    return sorted({labels.get(PROJECT_LABEL, "?") for labels in lab_labels(engine)
                   if labels.get(HOST_LABEL) == host and labels.get(PID_LABEL) in wanted})


def reap(engine: Listing, *, machine: Machine | None = None,
         remove: Callable[[str], list[str]] | None = None,
         now: Callable[[], float] = time.time, dry_run: bool = False) -> list[Stale]:
    """Remove every stale lab on the engine; what was found, and what became of each."""
    found = stale_labs(lab_labels(engine), machine or Machine.here(), now())
    if dry_run:
        return found
    remove = remove or _remove
    done = []
    for lab in found:
        try:
            done.append(Stale(lab.project, lab.reason, tuple(remove(lab.project))))
        except Exception as e:  # one lab that resists must not keep the others
            done.append(Stale(lab.project, lab.reason, error=str(e).splitlines()[0]))
    return done


def _remove(project: str) -> list[str]:
    from socketlab.lab.engine import make_engine

    return make_engine("compose", project).remove()
