"""Where lab-shape keeps its state in a host: one folder (SOCKETLAB_RUN_DIR, default
/run/socketlab), so two hosts that share a filesystem (two namespaces in one user-mode
kernel) each keep their own."""

from __future__ import annotations

import os

RUN_DIR = os.environ.get("SOCKETLAB_RUN_DIR") or "/run/socketlab"
QUEUES = {"egress": 0, "ingress": 1}  # lab-nfq's netfilter queue per direction


def state(direction: str) -> str:
    """What is applied in `direction` (spec, faults, backend; and until when, if bounded)."""
    return f"{RUN_DIR}/shape-{direction}.json"


def pidfile(direction: str) -> str:
    return f"{RUN_DIR}/nfq-{QUEUES[direction]}.pid"


def nfq_log(direction: str) -> str:
    return f"{RUN_DIR}/nfq-{QUEUES[direction]}.log"


def timer_pidfile(direction: str) -> str:
    """The timer that reverts a bounded shaping (`lab-shape apply --for`)."""
    return f"{RUN_DIR}/timer-{direction}.pid"


def probe_cache() -> str:
    """What the kernel offers, as first probed (lab-shape backends probes again)."""
    return f"{RUN_DIR}/probe.json"
