"""The exercises, in the order a course meets them, and how to find one by name."""

from __future__ import annotations

from socketlab.exercises import shaped, tcp, udp
from socketlab.exercises.model import Exercise, ExerciseError

EXERCISES: tuple[Exercise, ...] = (tcp.HANDSHAKE, tcp.BYTESTREAM, udp.TRUNCATION, udp.FRAGMENTS,
                                   shaped.LOSS, shaped.SYNACK, tcp.WINDOW)


def get(name: str) -> Exercise:
    found = next((e for e in EXERCISES if e.name == name), None)
    if found is None:
        raise ExerciseError(f"no exercise named {name!r}",
                            hint=f"choose one of {', '.join(e.name for e in EXERCISES)} "
                                 "(`socketlab exercise list`)")
    return found
