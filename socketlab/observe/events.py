"""Parse the lab programs' output: one event per line, ``EVENT key=value ... t=UNIXTIME``.

The programs in ``images/lab/programs`` print lines such as::

    listening addr=0.0.0.0:6666 backlog=5 t=1700000000.123456
    recv n=3 data="hel" t=1700000000.223456
    error op=connect errno=ECONNREFUSED msg="Connection refused" t=1700000000.323456

A value is either a bare token (no spaces, ``"`` or ``=``) or a JSON string.  Payload data
is a JSON string of the bytes decoded as latin-1 (one character per byte), so
:func:`payload` recovers the exact bytes.  ``t`` is ``time.time()`` when the line was
printed, just after the socket call returned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

Value = str | int | float

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_FIELD = re.compile(r' +(?P<key>[a-z_][a-z0-9_]*)=(?P<value>"(?:[^"\\]|\\.)*"|[^\s"=]+)')
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?\d+\.\d+")


@dataclass(frozen=True)
class Event:
    """One parsed line: its name, its fields (without ``t``), its time and the line itself."""

    name: str
    fields: dict[str, Value]
    t: float | None
    raw: str


def _value(token: str) -> Value:
    """Decode one value: a JSON string, an int, a float, or else the bare token itself."""
    if token.startswith('"'):
        return json.loads(token)
    if _INT.fullmatch(token):
        return int(token)
    if _FLOAT.fullmatch(token):
        return float(token)
    return token


def parse_line(line: str) -> Event | None:
    """Parse one output line; return None when it is not in the event format."""
    text = line.strip()
    name = _NAME.match(text)
    if name is None:
        return None
    fields: dict[str, Value] = {}
    pos = name.end()
    while pos < len(text):
        field = _FIELD.match(text, pos)
        if field is None:
            return None
        try:
            fields[field["key"]] = _value(field["value"])
        except json.JSONDecodeError:
            return None
        pos = field.end()
    t = fields.pop("t", None)
    if t is not None and not isinstance(t, (int, float)):
        return None
    return Event(name=name.group(), fields=fields, t=None if t is None else float(t), raw=text)


def parse_output(text: str) -> list[Event]:
    """Parse a program's whole output, skipping lines that are not events."""
    events = (parse_line(line) for line in text.splitlines())
    return [event for event in events if event is not None]


def payload(events: Iterable[Event], name: str) -> bytes:
    """Join the ``data`` of the events called ``name``, e.g. every ``recv`` piece, as bytes."""
    pieces = []
    for event in events:
        if event.name != name or "data" not in event.fields:
            continue
        data = event.fields["data"]
        if not isinstance(data, str):
            raise TypeError(f"data of {event.raw!r} is not a quoted string")
        pieces.append(data.encode("latin-1"))
    return b"".join(pieces)
