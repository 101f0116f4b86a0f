"""The example suite's one helper: run the service's client in the lab's client host.

socketlab's pytest plugin (installed with socketlab) brings the fixtures: lab, lab_factory,
capture, shape, fault, counters. Nothing else is needed here.
"""

from __future__ import annotations

import pytest

KV_CLIENT = ["python3", "/app/kv_client.py", "--port", "7000"]


@pytest.fixture
def kv():
    """`kv(lab, "set", "colour", "blue")`: the client's exit code, stdout and stderr."""
    def run(lab, *words: str, timeout: float = 120):
        server = lab.topology.ip("server")
        return lab.exec("client", [*KV_CLIENT, "--host", server, *words], timeout=timeout)
    return run
