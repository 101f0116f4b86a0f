"""Plots for the report: a line chart of measured points, as SVG text."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any


def plot_svg(points: Sequence[Mapping[str, Any]], x_label: str, y_labels: Sequence[str], *,
             title: str = "") -> str:
    """A line chart of `points` (dicts) as an SVG string: x from `x_label`, one line per y label.

    Drawn on a bare matplotlib Figure (no pyplot, so no GUI backend and no global state); text
    stays text in the SVG, ids are stable from run to run.
    """
    import matplotlib  # here, not at the top: reports without plots need no matplotlib
    from matplotlib.figure import Figure

    nan = float("nan")
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "socketlab",
                                "font.size": 11}):
        fig = Figure(figsize=(7.2, 3.6), layout="constrained")
        ax = fig.add_subplot()
        xs = [p.get(x_label, nan) for p in points]
        for name in y_labels:
            ax.plot(xs, [p.get(name, nan) for p in points], marker="o", label=name)
        ax.set_xlabel(x_label)
        if title:
            ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
