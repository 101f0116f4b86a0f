"""Labs that tests share (the plugin's `reuse="module"` / `reuse="session"`): made on first
use, put back to a known state before each later test (socketlab.act.reset), removed when
the module (or the run, per pytest-xdist worker) ends. A test may wait for its lab to be ready
(`ready=[PortOpen(...), ...]`, socketlab.act.waits) whether the lab is fresh or reused."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

SCOPES = ("module", "session")
RESET_PROPERTY = "socketlab-reset-seconds"  # in JUnit: what the reset before the test took


class SharedLabs:
    """One scope's labs, by their settings."""

    def __init__(self, make: Callable[..., contextlib.AbstractContextManager[Any]]) -> None:
        self.make = make
        self.stack = contextlib.ExitStack()
        self.labs: dict[str, Any] = {}

    def get(self, settings: dict[str, Any]) -> tuple[Any, float | None]:
        """The lab for these settings, and how long its reset took (None: it is new)."""
        from socketlab.act.reset import mark, reset

        key = repr(sorted(settings.items()))
        if key not in self.labs:
            lab = self.stack.enter_context(self.make(**settings))
            mark(lab)
            self.labs[key] = lab
            return lab, None
        took, _ = reset(self.labs[key])
        return self.labs[key], took

    def close(self) -> None:
        self.labs.clear()
        self.stack.close()


@contextlib.contextmanager
def shared(make: Callable[..., contextlib.AbstractContextManager[Any]]) -> Iterator[SharedLabs]:
    labs = SharedLabs(make)
    try:
        yield labs
    finally:
        labs.close()


def ready(lab: Any, conditions: Sequence[Any], timeout: float) -> None:
    """Wait for the test's readiness conditions (none: nothing to wait for)."""
    if conditions:
        from socketlab.act.waits import wait_for

        wait_for(lab, *conditions, timeout=timeout)


def scope_of(reuse: object) -> str:
    if reuse not in SCOPES:
        pytest.fail(f"socketlab: reuse={reuse!r} is not a scope a lab can be shared in; "
                    f"use reuse=\"module\" or reuse=\"session\"", pytrace=False)
    return str(reuse)
