"""Work done beside the caller's own: `Meanwhile(work)` runs `work()` in a thread of its own
while the caller waits on the engine; `answer()` waits for it and gives its result, or raises
what it raised, in the caller's thread.

    asking = Meanwhile(lambda: shaped_now(lab))   # while the exchange runs
    ...
    shaping = asking.answer()
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Meanwhile(Generic[T]):
    def __init__(self, work: Callable[[], T]) -> None:
        self._value: list[T] = []  # filled by the thread: its one result, or
        self._error: list[BaseException] = []  # what it raised
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._value.append(work())
        except BaseException as e:  # noqa: BLE001  (raised in the caller's thread, by answer)
            self._error.append(e)

    def answer(self) -> T:
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._value[0]


def load_meanwhile(*modules: str) -> Meanwhile[None]:
    """Import `modules` while the caller waits on the engine (answer() before relying on
    them). An import error shows where they are used, not here."""
    import importlib

    def load() -> None:
        for module in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(module)

    return Meanwhile(load)
