"""Reports from synthetic results: one claim per verdict status, ladders as small files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from socketlab.experiments.base import Evidence, Experiment, Result, Verdict
from socketlab.observe.ladder import Arrow, Host, Ladder, Note, render_svg, render_text
from socketlab.present import report

META = {"date": "2024-05-01T12:00:00", "kernel": "6.1.0-test", "docker": "27.3.1",
        "compose": "2.29.7"}
SWEEP = {"x": "rate", "series": ["sent", "delivered", "dropped"], "title": "UDP under load",
         "points": [{"rate": r, "sent": r, "delivered": min(r, 800), "dropped": max(0, r - 800)}
                    for r in (200, 400, 800, 1600)]}


def _ladder() -> Ladder:
    rows = (Arrow(0.0, True, "SYN seq=0 win=64240"), Arrow(0.1, False, "SYN,ACK seq=0 ack=1"),
            Arrow(0.2, True, "ACK seq=1 ack=1"), Note(0.3, True, "accept() returned"),
            Arrow(0.4, True, 'PSH,ACK seq=1 ack=1 len=11 "hello world"'),
            Arrow(0.5, True, "UDP len=1400", dropped=True),
            Note(0.6, True, 'recv(3) -> "hel"'))
    return Ladder(Host("client", "192.168.33.6"), Host("server", "192.168.33.5"), rows, 0.0)


def _result(run_dir: Path, cid: str, title: str, status: str, summary: str,
            facts: dict | None = None) -> Result:
    folder = run_dir / cid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tcp-ladder.txt").write_text(render_text(_ladder()))
    (folder / "tcp-ladder.svg").write_text(render_svg(_ladder()))
    (folder / "server.pcap").write_bytes(b"")
    artifacts = {"tcp ladder (text)": str(folder / "tcp-ladder.txt"),
                 "tcp ladder (SVG)": str(folder / "tcp-ladder.svg"),
                 "server capture": str(folder / "server.pcap")}
    evidence = Evidence(cid, facts or {"sent": "hello world"},
                        (f"{cid}: client sent 'hello world' with one sendall()",
                         "server's recv(3) calls returned 'hel', 'lo ', 'wor', 'ld'"),
                        artifacts=artifacts)
    experiment = Experiment(cid, title, f"The post says {title.lower()}.",
                            run=lambda _ctx: evidence, judge=lambda _ev: verdict)
    verdict = Verdict(cid, status, summary)
    return Result(experiment, evidence, verdict, 1.25)


def synthetic_results(run_dir: Path) -> list[Result]:
    """Four claims, one per status; C6 carries a plot, C9's summary tries to inject a script."""
    return [
        _result(run_dir, "C4", "TCP is a byte stream", "holds",
                "the 11 bytes crossed the wire as [11] and the server read them in 4 recv(3) calls"),
        _result(run_dir, "C6", "UDP drops under load", "holds in part",
                "above 800 datagrams/s the receiver dropped some", {"plot": SWEEP}),
        _result(run_dir, "C7", "UDP reports no errors", "does not hold",
                "connect() made send() fail with ECONNREFUSED"),
        _result(run_dir, "C9", "Odd <b>text</b> & more", "inconclusive",
                "the capture dropped packets <script>alert(1)</script>"),
    ]


@pytest.fixture
def results(tmp_path: Path) -> list[Result]:
    return synthetic_results(tmp_path)


# ---------------------------------------------------------------- JSON
def test_json_round_trips_statuses_and_relative_artifacts(results, tmp_path):
    doc = json.loads(report.to_json(results, META, tmp_path))
    assert doc["meta"] == META
    assert [(r["id"], r["verdict"]["status"]) for r in doc["results"]] == [
        ("C4", "holds"), ("C6", "holds in part"), ("C7", "does not hold"), ("C9", "inconclusive")]
    assert doc["counts"] == {"holds": 1, "holds in part": 1, "does not hold": 1, "inconclusive": 1}
    c4 = doc["results"][0]
    assert c4["title"] == "TCP is a byte stream"
    assert c4["artifacts"]["tcp ladder (SVG)"] == "C4/tcp-ladder.svg"
    assert c4["observations"][0].startswith("C4: client sent")
    assert c4["facts"] == {"sent": "hello world"}
    assert c4["seconds"] == 1.25
    assert doc["results"][1]["facts"]["plot"]["x"] == "rate"


# ---------------------------------------------------------------- JUnit
def _cases(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["socketlab.experiments"]
    return {c.get("name"): c for c in suites[0].findall("testcase")}


def test_junit_fails_only_does_not_hold_and_errors_inconclusive(results):
    xml = report.to_junit(results, META)
    cases = _cases(xml)
    assert list(cases) == ["C4 TCP is a byte stream", "C6 UDP drops under load",
                           "C7 UDP reports no errors", "C9 Odd <b>text</b> & more"]
    failed = [n for n, c in cases.items() if c.find("failure") is not None]
    errored = [n for n, c in cases.items() if c.find("error") is not None]
    assert failed == ["C7 UDP reports no errors"]
    assert errored == ["C9 Odd <b>text</b> & more"]
    failure = cases["C7 UDP reports no errors"].find("failure")
    assert failure.get("message") == "connect() made send() fail with ECONNREFUSED"
    assert cases["C6 UDP drops under load"].find("system-out").text.startswith("holds in part:")
    suite = ET.fromstring(xml).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["kernel"] == "6.1.0-test"


def test_junit_fail_on_is_configurable(results):
    cases = _cases(report.to_junit(results, META, fail_on=("does not hold", "holds in part")))
    failed = [n for n, c in cases.items() if c.find("failure") is not None]
    assert failed == ["C6 UDP drops under load", "C7 UDP reports no errors"]


def test_junit_survives_control_characters(tmp_path):
    bad = _result(tmp_path, "C1", "nul \x00 byte", "does not hold", "read b'\x00\x01'")
    assert ET.fromstring(report.to_junit([bad], {})).find(".//failure") is not None


# ---------------------------------------------------------------- Markdown
def test_markdown_has_table_rows_sections_ladder_and_links(results, tmp_path):
    md = report.to_markdown(results, META, tmp_path)
    assert "| Claim | Title | Verdict | Why | s |" in md
    assert "| C4 | TCP is a byte stream | **holds** |" in md
    assert "| C7 | UDP reports no errors | **does not hold** |" in md
    assert "## C6 · UDP drops under load" in md
    assert "**Verdict: holds in part.**" in md
    assert "- C4: client sent 'hello world' with one sendall()" in md
    assert "```text\n" in md
    assert "SYN seq=0 win=64240" in md
    assert "(C4/server.pcap)" in md
    assert "(C4/tcp-ladder.svg)" in md
    assert "| 1600 | 1600 | 800 | 800 |" in md  # the plot's points as a table
    assert r"\<script>alert(1)\</script>" in md  # CommonMark shows it as text


# ---------------------------------------------------------------- HTML
class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, cls: str = "") -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and cls in (a.get("class") or "").split()
                or t == tag and not cls]


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


def test_html_is_one_page_with_badges_inline_svg_and_relative_links(results, tmp_path):
    page = report.to_html(results, META, tmp_path)
    tags = _parse(page)
    assert tags.find("table", "verdicts")
    for cls in ("holds", "holds-in-part", "does-not-hold", "inconclusive"):
        assert tags.find("span", cls), cls
    assert len(tags.find("section", "experiment")) == 4
    assert len(tags.find("svg")) >= 4  # every ladder inline
    hrefs = [a["href"] for a in tags.find("a")]
    assert "C4/server.pcap" in hrefs
    assert "#C7" in hrefs
    assert not tags.find("link")
    assert not tags.find("script")
    assert not [a for _, a in tags.tags if (a.get("src") or "").startswith("http")]
    assert "6.1.0-test" in "".join(tags.text)


def test_html_escapes_text(results, tmp_path):
    page = report.to_html(results, META, tmp_path)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Odd &lt;b&gt;text&lt;/b&gt; &amp; more" in page


def test_html_draws_a_plot_only_when_facts_carry_one(results, tmp_path):
    sections = report.to_html(results, META, tmp_path).split("<section")[1:]
    with_plot = [s for s in sections if 'class="plot"' in s]
    assert len(with_plot) == 1
    assert 'id="C6"' in with_plot[0]
    assert "<svg" in with_plot[0]
    assert "delivered" in with_plot[0]


def test_html_notes_a_malformed_plot(tmp_path):
    odd = _result(tmp_path, "C6", "UDP drops", "holds", "fine", {"plot": {"x": "rate"}})
    page = report.to_html([odd], {}, tmp_path)
    assert "no plot drawn" in page
    assert 'class="plot"' not in page


def test_inline_svg_ids_are_unique_in_the_page(results, tmp_path):
    page = report.to_html(results, META, tmp_path)
    ids = [a["id"] for a in _parse(page).find("marker")]
    assert ids
    assert len(ids) == len(set(ids))
    assert 'url(#C4-1-head-arrow)' in page


def test_svg_that_could_run_code_is_not_inlined():
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><rect onload="alert(1)"/></svg>'
    out = report._inline_svg(svg, "x")
    assert out.startswith('<img alt="" src="data:image/svg+xml;base64,')
    assert "onload" not in out


def test_plot_svg_is_an_svg_with_every_series():
    svg = report.plot_svg(SWEEP["points"], "rate", ["sent", "dropped"], title="load")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert all(word in svg for word in ("rate", "sent", "dropped", "load"))


# ---------------------------------------------------------------- files
def test_write_report_writes_the_four_files(results, tmp_path):
    paths = report.write_report(results, META, tmp_path)
    assert {p.name for p in paths.values()} == {"report.html", "report.md", "verdicts.json",
                                                 "junit.xml"}
    assert all(p.parent == tmp_path and p.stat().st_size > 0 for p in paths.values())
    ET.parse(paths["junit"])
    assert json.loads(paths["json"].read_text())["results"][0]["id"] == "C4"


def test_backticks_in_prose_are_code_in_the_html(tmp_path):
    html = report._hc("`ss -tan` shows <b> & `recv(3)`")
    assert html == "<code>ss -tan</code> shows &lt;b&gt; &amp; <code>recv(3)</code>"
    assert report._hc("a lone ` stays") == "a lone ` stays"
