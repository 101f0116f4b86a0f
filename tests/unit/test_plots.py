"""The report's plots, drawn in-house: every series, titles whole, axes titled, a log scale where
the x values span decades, and nothing drawn outside the picture."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from socketlab.present.plots import CHAR, Axis, label, plot_svg

NS = {"s": "http://www.w3.org/2000/svg"}
C6 = [{"rcvbuf": 2304, "sent": 50000, "delivered": 1200, "rcvbuf_errors": 48800},
      {"rcvbuf": 32768, "sent": 50000, "delivered": 9000, "rcvbuf_errors": 41000},
      {"rcvbuf": 212992, "sent": 50000, "delivered": 50000, "rcvbuf_errors": 0}]
LONG = ("50,000 datagrams at full speed against a slow reader: what the receive buffer keeps, and "
        "what the kernel drops when it is full")


def texts(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(".//s:text", NS)


def test_every_series_is_a_line_through_its_points():
    root = ET.fromstring(plot_svg(C6, "rcvbuf", ["sent", "delivered", "rcvbuf_errors"]))
    lines = root.findall("s:polyline", NS)
    assert len(lines) == 3
    assert all(len(line.get("points").split()) == 3 for line in lines)


def test_a_long_title_wraps_instead_of_being_cut():
    svg = plot_svg(C6, "rcvbuf", ["sent"], title=LONG)
    bold = [t.text for t in texts(svg) if t.get("font-size") == "15"]
    assert len(bold) > 1
    assert " ".join(bold) == LONG


def test_no_text_runs_past_the_picture():
    svg = plot_svg(C6, "rcvbuf", ["sent", "delivered", "rcvbuf_errors"], title=LONG,
                   x_title="the receiver's SO_RCVBUF (bytes)", y_title="datagrams")
    width = float(ET.fromstring(svg).get("width"))
    for t in texts(svg):
        if t.get("transform"):
            continue  # the rotated y title: checked by its height below
        half = len(t.text) * CHAR / 2
        start = float(t.get("x")) - {"middle": half, "end": 2 * half}.get(t.get("text-anchor"), 0)
        assert start >= 0, t.text
        assert start + 2 * half <= width, t.text


def test_both_axes_are_titled():
    names = [t.text for t in texts(plot_svg(C6, "rcvbuf", ["sent"], x_title="SO_RCVBUF (bytes)",
                                            y_title="datagrams"))]
    assert "SO_RCVBUF (bytes)" in names
    assert "datagrams" in names
    shared = [t.text for t in texts(plot_svg([{"loss": 1, "measured Mbit/s": 3, "model Mbit/s": 2}],
                                             "loss", ["measured Mbit/s", "model Mbit/s"]))]
    assert "loss" in shared
    assert "Mbit/s" in shared  # the series' shared unit titles the y axis


def test_x_values_that_span_decades_get_a_log_scale():
    ticks = [t.text for t in texts(plot_svg(C6, "rcvbuf", ["sent"]))
             if t.get("text-anchor") == "middle" and re.fullmatch(r"[\d.]+[kM]?", t.text or "")]
    assert ticks == ["2k", "5k", "10k", "20k", "50k", "100k", "200k", "500k"]


def test_a_log_scale_places_each_decade_equally():
    axis = Axis.of([10, 10000], log=True)
    assert axis.where(10) == pytest.approx(0)
    assert axis.where(100) - axis.where(10) == pytest.approx(axis.where(1000) - axis.where(100))


def test_values_in_a_narrow_range_stay_linear():
    axis = Axis.of([0.5, 1, 2, 5], log=False)
    assert not axis.log
    assert axis.ticks() == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(("value", "text"), [(0, "0"), (2.5, "2.5"), (2000, "2k"), (32768, "32.8k"),
                                             (200000, "200k"), (1500000, "1.5M"), (0.001, "0.001")])
def test_tick_labels_are_short(value, text):
    assert label(value) == text


def test_no_points_says_so():
    svg = plot_svg([], "x", ["y"], title="empty")
    assert "no points to draw" in svg
    ET.fromstring(svg)


def test_the_same_points_draw_the_same_picture():
    assert plot_svg(C6, "rcvbuf", ["sent"]) == plot_svg(C6, "rcvbuf", ["sent"])
