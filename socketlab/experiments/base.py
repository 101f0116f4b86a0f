"""Experiment, Evidence, Verdict: each claim of the post, checked in the lab.

An experiment sets up what it needs, runs the post's programs (or a plain variant), captures,
reads the kernel's counters, and returns Evidence: plain data, nothing rendered. Its `judge`
is a pure function of that Evidence, so a test can hand it altered evidence and watch the
verdict change. The verdict says whether the claim holds, holds in part, or does not hold on
the running kernel, and why, in one sentence built from the observed values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from socketlab.lab.lab import Lab
from socketlab.observe.observation import Context

Status = Literal["holds", "holds in part", "does not hold", "inconclusive"]
STATUSES: tuple[Status, ...] = ("holds", "holds in part", "does not hold", "inconclusive")


@dataclass(frozen=True)
class Evidence:
    """What one experiment observed, as data.

    facts:         the measured values a verdict reads (JSON-able: numbers, strings, lists)
    observations:  the evidence as a person reads it (output lines, packets, counter deltas)
    events:        per host, the programs' events ({"event": name, **fields, "t": time})
    artifacts:     name -> file in the run folder (pcaps, SVG ladders, plots)
    """

    claim: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    observations: tuple[str, ...] = ()
    events: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    artifacts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    claim: str
    status: Status
    summary: str  # one sentence from the observed values: what the claim meets on this kernel

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}")


@dataclass(frozen=True)
class Experiment:
    id: str               # "C4"
    title: str            # "TCP is a byte stream"
    claim: str            # what the post says, in a sentence
    run: Callable[[Context], Evidence]
    judge: Callable[[Evidence], Verdict]
    topology: str = ""    # the lab it needs: a file in topologies/ ("" the post's two hosts)
    slow: bool = False    # takes minutes, not seconds (the help says so)

    @classmethod
    def replayed(cls, id: str, title: str, claim: str, evidence: Evidence, verdict: Verdict) -> Experiment:
        """An experiment as a run stored it (one no longer in the catalogue): it gives back its
        evidence, and judges it as it was judged."""
        def run(_ctx: Context) -> Evidence:
            return evidence

        def judge(_ev: Evidence) -> Verdict:
            return verdict

        return cls(id, title, claim, run=run, judge=judge)


@dataclass(frozen=True)
class Result:
    experiment: Experiment
    evidence: Evidence
    verdict: Verdict
    seconds: float


def run_experiment(experiment: Experiment, lab: Lab, run_dir: Path,
                   progress: Callable[[str], None] = lambda _m: None) -> Result:
    """Run one experiment in its own folder under run_dir; the verdict follows the evidence."""
    folder = run_dir / experiment.id
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    evidence = experiment.run(Context(lab, folder, progress))
    return Result(experiment, evidence, experiment.judge(evidence), time.monotonic() - start)


def _engine_meta(lab: Lab) -> dict[str, str]:
    """On swarm: which swarm, and which node ran which host."""
    from socketlab.lab.swarm_lab import SwarmLab

    if not isinstance(lab, SwarmLab):
        return {}
    placement = lab.placement()
    return {"engine": f"swarm ({lab.swarm.source})",
            "nodes": ", ".join(f"{host} on {node}" for host, node in placement.items())}


def run_meta(lab: Lab) -> dict[str, str]:
    """Where a run happened: date, the hosts' kernel, the engine and compose versions; on
    swarm, which node ran which host."""
    import datetime

    kernel = lab.exec("server", ["uname", "-sr"], timeout=10).stdout.strip()
    unsealed = [h.name for h in lab.topology.hosts if h.unsealed]
    return {**_engine_meta(lab),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": kernel,
        **lab.engine.describe(),
        "lab": f"{lab.config.project} on {lab.config.subnet} (server {lab.config.server_ip}, "
               f"client {lab.config.client_ip}, port {lab.config.port})",
        "shaping at the start": _shaping_meta(lab),
        **({"UNSEALED hosts (--unsealed)": ", ".join(unsealed)} if unsealed else {}),
    }


def _shaping_meta(lab: Lab) -> str:
    """The hosts' shaping when the run began ("none"; the experiments' own is in their facts)."""
    from socketlab.act import shaping
    from socketlab.errors import LabError

    try:
        return "; ".join(shaping.shaped_lines(shaping.shaped_now(lab))) or "none"
    except LabError as e:
        return f"unknown ({e})"
