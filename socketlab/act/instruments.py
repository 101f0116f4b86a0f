"""The lab's instruments (images/lab/instruments): small measuring programs, not teaching
ones: a UDP echo and pinger, a numbered UDP blaster and its sink, a TCP sink and sender.
Each is bounded in count and time and prints event lines like the programs do, its last
one `summary ...`; experiments, the shaping bench and the tests run them by these argv
builders (pure), in a lab host (`/lab`) or anywhere the image context is (`root=`).

    argv("udp_sink", 6666, numbered=True, idle=0.5)
      -> ["python3", "/lab/instruments/udp_sink.py", "6666", "--numbered", "--idle", "0.5"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from socketlab.errors import ProgramFailed
from socketlab.observe.events import Event

IN_HOST = "/lab"
NAMES = ("udp_echo", "udp_ping", "udp_blast", "udp_sink", "tcp_sink", "tcp_send")


def argv(name: str, *args: object, root: str = IN_HOST, **options: Any) -> list[str]:
    """The command for instrument `name`: positional `args`, then `--option value` for each
    option (underscores become dashes; True is a bare flag; False and None are left out)."""
    if name not in NAMES:
        raise ValueError(f"unknown instrument {name!r}: one of {', '.join(NAMES)}")
    out = ["python3", f"{root}/instruments/{name}.py", *(str(a) for a in args)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not None and value is not False:
            out += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return out


def summary(events: Sequence[Event], who: str = "instrument") -> dict[str, Any]:
    """The fields of the last `summary` line; ProgramFailed if there is none."""
    found = [e for e in events if e.name == "summary"]
    if not found:
        raise ProgramFailed(f"the {who} printed no summary", hint="run again with --debug")
    return dict(found[-1].fields)


def numbers(field: object) -> list[float]:
    """A comma-separated list field (udp_ping's rtts) as numbers ("-": none)."""
    text = str(field)
    return [] if text in ("", "-") else [float(x) for x in text.split(",")]
