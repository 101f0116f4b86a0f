"""SIGINT and SIGTERM during a lab's lifecycle: a step that changes Docker runs to its end.

`kill PID`, `timeout` and CI runners signal the main process alone, at any moment. Python turns
that into an exception wherever the main thread happens to be, which could be half-way through
creating a network or removing a container: a rollback from there can miss what the engine
finishes a moment later. So every step that creates or removes something runs under
`deferred()`: a signal that arrives during it is held until the step is done, then raised as
`Interrupted`, and the caller rolls back from a state it knows.

    with deferred():            # compose creates the network and the hosts, whole
        ...
    # a signal held during the block is raised here, as Interrupted

`Interrupted.outcome` is what the interrupted command leaves behind, said only once checked
(e.g. "lab 'x' was removed; nothing of it is left"); the CLI prints it as its last line.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM, with what it left behind (empty: nothing was said about it)."""

    def __init__(self, outcome: str = "") -> None:
        super().__init__(outcome)
        self.outcome = outcome


@dataclass
class Held:
    """The signals that arrived during a deferred block."""

    signals: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.signals)


@contextlib.contextmanager
def deferred(*, raise_after: bool = True) -> Iterator[Held]:
    """Hold SIGINT and SIGTERM until the block ends; then raise Interrupted if one came
    (unless raise_after is False: the caller looks at the Held itself). The block's own
    exception, if it raised one, goes first: the caller rolls back for it just the same.
    Outside the main thread signals never arrive, and this does nothing."""
    held = Held()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {signum: signal.signal(signum, lambda s, _f: held.signals.append(s))
                for signum in HANDLED}
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if held and raise_after:
        raise Interrupted()


def outcome_of(exc: BaseException) -> str:
    """What an interrupted command left behind, as far as it was checked ("" if unknown)."""
    return getattr(exc, "outcome", "") or ""
