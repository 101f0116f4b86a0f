"""Plots for the report: a line chart of measured points, as SVG text made here (no plotting
library: two line charts did not pay for 165 MB of numpy and matplotlib).

    svg = plot_svg(points, "rcvbuf", ["sent", "delivered"], title="...", x_title="SO_RCVBUF (bytes)")

The title wraps instead of being cut, both axes carry a title, and an x axis whose values span
a decade and a half or more is drawn on a log scale (C6's receive buffers: 2 KiB to 208 KiB). The
output is the same for the same points (no ids from a clock, no random salt).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 400
FONT = 13
CHAR = 0.6 * FONT  # the average width of a character of the sans-serif font, as drawn
COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")  # tell-apart palette
LEFT, RIGHT, PLOT_HEIGHT = 78, 24, 250


def plot_svg(points: Sequence[Mapping[str, Any]], x_label: str, y_labels: Sequence[str], *,
             title: str = "", x_title: str | None = None, y_title: str | None = None,
             log_x: bool | None = None, log_y: bool = False) -> str:
    """A line chart of `points` (dicts): x from `x_label`, one line per name in `y_labels`.
    log_x: None decides from the values (log where they span a decade and a half)."""
    series = {name: [(x, y) for p in points if (x := _number(p.get(x_label))) is not None
                     and (y := _number(p.get(name))) is not None] for name in y_labels}
    xs = [x for line in series.values() for x, _ in line]
    ys = [y for line in series.values() for _, y in line]
    x_axis = Axis.of(xs, _spans_decades(xs) if log_x is None else log_x)
    y_axis = Axis.of(ys, bool(log_y), from_zero=True)
    heading = textwrap.wrap(title, int((WIDTH - 20) / (CHAR * 1.1))) if title else []
    top = 16 + 20 * len(heading)
    box = (LEFT, top, WIDTH - RIGHT, top + PLOT_HEIGHT)
    height = box[3] + 74
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
           f'width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="{FONT}">',
           f"<title>{escape(title or ', '.join(y_labels))}</title>",
           f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>']
    out += [f'<text x="{WIDTH / 2:g}" y="{18 + 20 * i}" text-anchor="middle" font-size="{FONT + 2}" '
            f'font-weight="bold">{escape(line)}</text>' for i, line in enumerate(heading)]
    out += _grid(box, x_axis, y_axis)
    out += _axis_titles(box, x_title or x_label, y_title or _common_title(y_labels))
    if not xs:
        out.append(f'<text x="{WIDTH / 2:g}" y="{(box[1] + box[3]) / 2:g}" text-anchor="middle" '
                   'fill="#6e7781">no points to draw</text>')
    for i, (name, line) in enumerate(series.items()):
        out += _line(box, x_axis, y_axis, name, line, COLOURS[i % len(COLOURS)], x_label)
    out += _legend(box, list(series), height)
    return "\n".join([*out, "</svg>"]) + "\n"


class Axis:
    """A linear or log scale over a range, with the ticks a reader expects (1-2-5, decades)."""

    def __init__(self, low: float, high: float, log: bool, step: float = 1.0) -> None:
        self.low, self.high, self.log, self.step = low, high, log, step

    @classmethod
    def of(cls, values: Sequence[float], log: bool, from_zero: bool = False) -> Axis:
        if log and values and min(values) > 0:
            steps = [m * 10 ** d for d in range(math.floor(math.log10(min(values))),
                                                 math.ceil(math.log10(max(values))) + 1) for m in (1, 2, 5)]
            return cls(max(t for t in steps if t <= min(values)), min(t for t in steps if t >= max(values)),
                       True)
        low, high = (min(values), max(values) * 1.02) if values else (0.0, 1.0)  # the top line shows
        if from_zero and low >= 0:
            low = 0.0
        if high == low:
            low, high = low - 1, high + 1
        step = _nice_step((high - low) / 5)
        return cls(math.floor(low / step) * step, math.ceil(high / step) * step, False, step)

    def where(self, value: float) -> float:
        """0 (low end) to 1 (high end)."""
        if self.log:
            return (math.log10(value) - math.log10(self.low)) / (math.log10(self.high) - math.log10(self.low))
        return (value - self.low) / (self.high - self.low)

    def ticks(self) -> list[float]:
        if self.log:
            decades = range(math.floor(math.log10(self.low)), math.ceil(math.log10(self.high)) + 1)
            steps = (1, 2, 5) if len(decades) <= 4 else (1,)
            return [t for d in decades for m in steps
                    if self.low * 0.9999 <= (t := m * 10 ** d) <= self.high * 1.0001]
        count = round((self.high - self.low) / self.step)
        return [self.low + i * self.step for i in range(count + 1)]


def _nice_step(rough: float) -> float:
    if rough <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough)


def _spans_decades(values: Sequence[float]) -> bool:
    """Positive values whose largest is 30 times the smallest or more (a decade and a half): a
    log scale shows them; a linear one would crowd the small ones into a corner."""
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 30


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def label(value: float) -> str:
    """A tick's text: 2, 0.5, 32k, 1.5M (short enough to sit under a tick)."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _grid(box, x_axis: Axis, y_axis: Axis) -> list[str]:
    left, top, right, bottom = box
    out = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
           'stroke="#8c959f"/>']
    for value in x_axis.ticks():
        x = left + x_axis.where(value) * (right - left)
        out += [f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#eaeef2"/>',
                f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{label(value)}</text>']
    for value in y_axis.ticks():
        y = bottom - y_axis.where(value) * (bottom - top)
        out += [f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eaeef2"/>',
                f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{label(value)}</text>']
    return out


def _axis_titles(box, x_title: str, y_title: str) -> list[str]:
    left, top, right, bottom = box
    middle = (top + bottom) / 2
    return [f'<text x="{(left + right) / 2:g}" y="{bottom + 40}" text-anchor="middle" '
            f'font-weight="bold">{escape(x_title)}</text>',
            f'<text x="18" y="{middle:g}" text-anchor="middle" font-weight="bold" '
            f'transform="rotate(-90 18 {middle:g})">{escape(y_title)}</text>']


def _common_title(names: Sequence[str]) -> str:
    """A y axis title from the series' names: their shared unit (`measured Mbit/s`, `model
    Mbit/s` -> Mbit/s), else the names themselves."""
    units = {name.rsplit(" ", 1)[-1] for name in names if " " in name}
    return units.pop() if len(units) == 1 and all(" " in n for n in names) else ", ".join(names)


def _line(box, x_axis: Axis, y_axis: Axis, name: str, line: list[tuple[float, float]], colour: str,
          x_label: str) -> list[str]:
    left, top, right, bottom = box
    at = [(left + x_axis.where(x) * (right - left), bottom - y_axis.where(y) * (bottom - top), x, y)
          for x, y in sorted(line)]
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in at)
    out = [f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'] if at else []
    out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"><title>{escape(x_label)} '
            f"{x:g}: {escape(name)} {y:g}</title></circle>" for px, py, x, y in at]
    return out


def _legend(box, names: list[str], height: int) -> list[str]:
    """One row under the plot: a swatch and each series' name."""
    out, x, y = [], float(box[0]), height - 10
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        out += [f'<line x1="{x:g}" y1="{y - 4}" x2="{x + 22:g}" y2="{y - 4}" stroke="{colour}" '
                'stroke-width="2"/>', f'<circle cx="{x + 11:g}" cy="{y - 4}" r="3.5" fill="{colour}"/>',
                f'<text x="{x + 28:g}" y="{y}">{escape(name)}</text>']
        x += 28 + len(name) * CHAR + 24
    return out
