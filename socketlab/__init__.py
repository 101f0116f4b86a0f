"""socketlab: a containerized network lab that makes a post on TCP and UDP sockets real.

    from socketlab import Lab, LabConfig, Options, run_pair
    with Lab() as lab:           # its own name, a free subnet; always removed at the end
        run = run_pair(lab, Options(proto="tcp"))

The names below are imported on first use, so `import socketlab` (and the CLI's start-up)
does not pay for the Docker SDK until a lab is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Lab": "socketlab.lab.lab",
    "LabConfig": "socketlab.lab.config",
    "LabError": "socketlab.errors",
    "Options": "socketlab.act.programs",
    "PairRun": "socketlab.act.programs",
    "run_commands": "socketlab.act.programs",
    "run_pair": "socketlab.act.programs",
    "wait_for": "socketlab.act.waits",
    "PortOpen": "socketlab.act.waits",
    "LogLine": "socketlab.act.waits",
    "CommandSucceeds": "socketlab.act.waits",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'socketlab' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
