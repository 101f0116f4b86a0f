"""A lab that tests share, put back to a known state between them (what `lab-reset` does in
each host, in parallel): processes started since the lab was marked ended, shaping and faults
cleared, connection tracking, neighbour and route caches flushed.

    mark(lab)                 # once, when the lab is up
    took, done = reset(lab)   # before each later test: seconds, and each host's report
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from socketlab.errors import LabError
from socketlab.lab.lab import Lab

RESET_S = 30.0  # the most one host's reset may take


def _each_host(lab: Lab, argv: list[str]) -> dict[str, str]:
    """Run argv in every host's instruments at once; each host's output."""
    def one(host: str) -> str:
        done = lab.exec(host, argv, timeout=RESET_S, instruments=True)
        if done.exit_code != 0:
            raise LabError(f"{' '.join(argv)} failed in {host}: "
                           f"{done.stderr.strip() or f'exit {done.exit_code}'}",
                           hint="is the lab image current? (`socketlab build`)")
        return done.stdout

    hosts = lab.topology.names
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return dict(zip(hosts, pool.map(one, hosts), strict=True))


def mark(lab: Lab) -> None:
    """Remember what runs in every host now: the state a reset returns to."""
    _each_host(lab, ["lab-reset", "--mark"])


def reset(lab: Lab) -> tuple[float, dict[str, dict[str, Any]]]:
    """Every host back to its marked state; how long it took, and what was done in each."""
    start = time.monotonic()
    out = _each_host(lab, ["lab-reset"])
    return time.monotonic() - start, {h: json.loads(text.strip().splitlines()[-1])
                                      for h, text in out.items()}
