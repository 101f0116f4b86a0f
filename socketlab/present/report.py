"""Reports of a run: verdicts as JSON, JUnit XML, Markdown and one self-contained HTML page.

Renderers over a list of `Result` plus `meta` (what the caller measured about the machine: date,
host kernel, Docker and compose versions; shown and stored as given). They return strings and
never touch the network; Markdown and HTML read the ladder files an experiment left in the run
folder so the page carries them inline. `write_report` writes all four files into the run folder.

Artifact paths are written relative to the run folder, so the folder can be moved or zipped and
its links (pcaps for Wireshark, SVG ladders) still work.

    paths = write_report(results, {"date": "...", "kernel": "6.1.0", "docker": "27.3"}, run_dir)
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from socketlab.experiments.base import STATUSES, Result, Status
from socketlab.present.plots import plot_svg

SUITE = "socketlab.experiments"
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0


class _File(NamedTuple):
    name: str  # the experiment's name for it, e.g. "tcp ladder (SVG)"
    path: Path  # where to read it
    rel: str  # how the report links it (relative to the run folder, POSIX separators)


def tally(results: Iterable[Result]) -> dict[Status, int]:
    """How many claims got each verdict, every status listed (zeros too), in STATUSES order."""
    counts = dict.fromkeys(STATUSES, 0)
    for r in results:
        counts[r.verdict.status] += 1
    return counts


def _files(result: Result, run_dir: Path | None) -> list[_File]:
    """The experiment's artifacts; relative paths are taken as relative to the run folder."""
    out = []
    for name, raw in result.evidence.artifacts.items():
        path = Path(raw)
        if run_dir is not None and not path.is_absolute() and not path.exists():
            path = Path(run_dir) / path
        rel = Path(os.path.relpath(path, run_dir)) if run_dir is not None else path
        out.append(_File(name, path, rel.as_posix()))
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _slug(status: str) -> str:
    return status.replace(" ", "-")


# ---------------------------------------------------------------- JSON
def to_json(results: Sequence[Result], meta: Mapping[str, Any], run_dir: Path | None = None) -> str:
    """Every claim with its verdict, facts, observations, artifacts and time, plus `meta`."""
    doc = {"meta": dict(meta), "counts": tally(results),
           "results": [_result_doc(r, run_dir) for r in results]}
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


def _result_doc(r: Result, run_dir: Path | None) -> dict[str, Any]:
    e = r.experiment
    return {"id": e.id, "title": e.title, "claim": e.claim,
            "verdict": {"status": r.verdict.status, "summary": r.verdict.summary},
            "facts": dict(r.evidence.facts), "observations": list(r.evidence.observations),
            "artifacts": {f.name: f.rel for f in _files(r, run_dir)},
            "seconds": round(r.seconds, 3)}


# ---------------------------------------------------------------- JUnit
def to_junit(results: Sequence[Result], meta: Mapping[str, Any], *,
             fail_on: Iterable[str] = ("does not hold",),
             error_on: Iterable[str] = ("inconclusive",)) -> str:
    """JUnit XML: one testsuite "socketlab.experiments", one testcase per claim ("C4 <title>").

    How verdicts map (CI colours follow it):
      holds          -> passed
      holds in part  -> passed, with <system-out> saying "holds in part: ..." (the lab exists
                        to find out, not to agree, so a partial answer keeps CI green)
      does not hold  -> <failure> whose message is the verdict's summary
      inconclusive   -> <error> (the experiment could not tell: the lab, not the claim, failed)
    A status in `fail_on` becomes a failure (e.g. fail_on=("does not hold", "holds in part")
    for a strict run), else one in `error_on` an error; any other status passes.
    Every testcase's <system-out> holds the verdict and the observations.
    """
    fail_on, error_on = set(fail_on), set(error_on)
    suite = ET.Element("testsuite", name=SUITE, tests=str(len(results)), skipped="0",
                       time=f"{sum(r.seconds for r in results):.3f}")
    if meta:
        props = ET.SubElement(suite, "properties")
        for key, value in meta.items():
            ET.SubElement(props, "property", name=_x(key), value=_x(value))
    kinds = [_testcase(suite, r, fail_on, error_on) for r in results]
    suite.set("failures", str(kinds.count("failure")))
    suite.set("errors", str(kinds.count("error")))
    root = ET.Element("testsuites", name="socketlab", tests=suite.get("tests", "0"),
                      failures=suite.get("failures", "0"), errors=suite.get("errors", "0"),
                      time=suite.get("time", "0"))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _testcase(suite: ET.Element, r: Result, fail_on: set[str], error_on: set[str]) -> str:
    """Adds r's testcase to the suite; returns "failure", "error" or "pass"."""
    status, summary = r.verdict.status, r.verdict.summary
    case = ET.SubElement(suite, "testcase", classname=SUITE,
                         name=_x(f"{r.experiment.id} {r.experiment.title}"),
                         time=f"{r.seconds:.3f}")
    kind = "failure" if status in fail_on else "error" if status in error_on else "pass"
    if kind != "pass":
        bad = ET.SubElement(case, kind, message=_x(summary), type=status)
        bad.text = _x(f"{status}: {summary}")
    lines = [f"{status}: {summary}", f"claim: {r.experiment.claim}",
             *(f"- {o}" for o in r.evidence.observations)]
    ET.SubElement(case, "system-out").text = _x("\n".join(lines))
    return kind


def _x(value: Any) -> str:
    """Text XML 1.0 can carry (ElementTree escapes <, & and quotes, not control characters)."""
    return _XML_BAD.sub("\ufffd", str(value))


# ---------------------------------------------------------------- Markdown
def to_markdown(results: Sequence[Result], meta: Mapping[str, Any], run_dir: Path) -> str:
    """A verdict table, then per claim: the claim, the verdict, the evidence, the ladder, files."""
    lines = ["# socketlab report", ""]
    lines += [f"- **{_md(k)}**: {_md(v)}" for k, v in meta.items()] + [""]
    lines += ["| Claim | Title | Verdict | Why | s |", "|---|---|---|---|---:|"]
    lines += [f"| {r.experiment.id} | {_md(r.experiment.title)} | **{r.verdict.status}** | "
              f"{_md(r.verdict.summary)} | {r.seconds:.1f} |" for r in results]
    for r in results:
        lines += ["", *_md_section(r, run_dir)]
    return "\n".join(lines).rstrip() + "\n"


def _md_section(r: Result, run_dir: Path) -> list[str]:
    e, files = r.experiment, _files(r, run_dir)
    lines = [f"## {e.id} · {_md(e.title)}", "", f"**Claim.** {_md(e.claim)}", "",
             f"**Verdict: {r.verdict.status}.** {_md(r.verdict.summary)}", ""]
    if r.evidence.observations:
        lines += ["Evidence:", "", *(f"- {_md(o)}" for o in r.evidence.observations), ""]
    for f in files:
        text = _read(f.path) if f.path.suffix == ".txt" else None
        if text is not None:
            fence = "```"
            while fence in text:
                fence += "`"
            lines += [f"{_md(f.name)}:", "", fence + "text", text.rstrip("\n"), fence, ""]
    lines += _md_plot(r.evidence.facts)
    if files:
        lines.append("Files: " + " · ".join(f"[{_md(f.name)}]({quote(f.rel)})" for f in files))
    return lines


def _md(value: Any) -> str:
    """Text safe in a Markdown paragraph or table cell: one line, markup characters escaped."""
    text = " ".join(str(value).split())
    return re.sub(r"([\\`*\[\]<|])", r"\\\1", text)


# ---------------------------------------------------------------- plots
def _plot_spec(facts: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """facts["plot"] = {"x", "series", "points", "title"?, "x_title"?, "y_title"?} when it is there
    and well formed (the axes' titles default to the x key and the series' shared unit)."""
    spec = facts.get("plot")
    ok = (isinstance(spec, Mapping) and isinstance(spec.get("x"), str)
          and isinstance(spec.get("series"), (list, tuple)) and isinstance(spec.get("points"), list)
          and all(isinstance(p, Mapping) for p in spec["points"]))
    return spec if ok else None


def _html_plot(facts: Mapping[str, Any], cid: str) -> list[str]:
    if "plot" not in facts:
        return []
    spec = _plot_spec(facts)
    if spec is None:
        return ['<p class="note">facts["plot"] is not {"x", "series", "points"}: no plot drawn.</p>']
    svg = plot_svg(spec["points"], spec["x"], spec["series"], title=str(spec.get("title", "")),
                   x_title=spec.get("x_title"), y_title=spec.get("y_title"))
    return [f'<h3>Plot</h3><figure class="plot">{_inline_svg(svg, f"{cid}-plot")}</figure>']


def _md_plot(facts: Mapping[str, Any]) -> list[str]:
    """The plot's points as a table (the HTML page draws them)."""
    spec = _plot_spec(facts)
    if spec is None:
        return []
    cols = [spec["x"], *spec["series"]]
    rows = [f"| {' | '.join(_md(p.get(c, '')) for c in cols)} |" for p in spec["points"]]
    return [f"Plot data{': ' + _md(spec['title']) if spec.get('title') else ''}:", "",
            f"| {' | '.join(_md(c) for c in cols)} |", "|" + "---:|" * len(cols), *rows, ""]


# ---------------------------------------------------------------- HTML
_CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
 background:#f6f8fa}
header,main,footer{max-width:1120px;margin:0 auto;padding:.8rem 1rem}
header{border-bottom:1px solid #d0d7de}
h1{font-size:1.6rem;margin:.2rem 0}
h2{font-size:1.25rem;margin:0 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .3rem;color:#57606a}
dl.meta{display:flex;flex-wrap:wrap;gap:.2rem 1.4rem;margin:.4rem 0;color:#57606a;font-size:.9rem}
dl.meta div{display:flex;gap:.4rem}dt{font-weight:600}dd{margin:0}
.scroll{overflow-x:auto}
table.verdicts{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#eef1f4;font-size:.9rem}td.num{text-align:right;font-variant-numeric:tabular-nums}
td a{font-weight:600;text-decoration:none}
.badge{display:inline-block;padding:.05rem .6rem;border-radius:999px;font-size:.85rem;
 font-weight:600;white-space:nowrap;color:#fff;background:#6e7781}
.badge.holds{background:#1a7f37}.badge.holds-in-part{background:#e3a008;color:#2b1d00}
.badge.does-not-hold{background:#cf222e}
section.experiment{background:#fff;border:1px solid #d0d7de;border-left:6px solid #6e7781;
 border-radius:8px;padding:1rem 1.2rem;margin:1.2rem 0}
section.holds{border-left-color:#1a7f37}section.holds-in-part{border-left-color:#e3a008}
section.does-not-hold{border-left-color:#cf222e}
.claim{font-style:italic;margin:.2rem 0}.verdict{margin:.5rem 0}
ul{margin:.2rem 0;padding-left:1.3rem}li{margin:.15rem 0}
figure{margin:.4rem 0}figcaption{font-size:.85rem;color:#57606a}.hint{display:none}
.ladder svg{display:block;height:auto;max-width:none}.plot svg{display:block;max-width:100%;height:auto}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.6rem;overflow-x:auto;font-size:.8rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em;
 background:#eff1f3;border-radius:4px;padding:.05em .3em}pre code{background:none;padding:0}
summary{cursor:pointer;color:#57606a;font-size:.9rem}.note{color:#57606a;font-style:italic}
footer{color:#57606a;font-size:.85rem}
@media (max-width:640px){body{font-size:15px}.why{display:none}.hint{display:block}
 th,td{padding:.35rem .4rem}
 section.experiment{padding:.8rem;border-radius:0}header,main,footer{padding:.6rem}}
"""


def to_html(results: Sequence[Result], meta: Mapping[str, Any], run_dir: Path) -> str:
    """One self-contained page: meta, verdict table, one section per claim with its evidence."""
    counts = " ".join(f'<span class="badge {_slug(s)}">{s}: {n}</span>'
                      for s, n in tally(results).items() if n)
    claims = f"{len(results)} claim{'' if len(results) == 1 else 's'}"
    meta_html = "".join(f"<div><dt>{_h(k)}</dt><dd>{_h(v)}</dd></div>" for k, v in meta.items())
    body = [f"<header><h1>socketlab report</h1><p>{claims}: {counts}</p>"
            f'<dl class="meta">{meta_html}</dl></header>', "<main>", _html_table(results)]
    body += [_html_section(r, Path(run_dir)) for r in results]
    body += ["</main>", "<footer>Made by socketlab. The pcap files open in Wireshark; the links are "
             "relative to this page, so keep the run folder together.</footer>"]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>socketlab report: {claims}</title>\n<style>{_CSS}</style>\n"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _html_table(results: Sequence[Result]) -> str:
    rows = "".join(
        f'<tr><td><a href="#{_h(r.experiment.id)}">{_h(r.experiment.id)}</a></td>'
        f"<td>{_h(r.experiment.title)}</td><td>{_badge(r.verdict.status)}</td>"
        f'<td class="why">{_hc(r.verdict.summary)}</td><td class="num">{r.seconds:.1f}</td></tr>'
        for r in results)
    return ('<div class="scroll"><table class="verdicts"><thead><tr><th>Claim</th><th>Title</th>'
            '<th>Verdict</th><th class="why">Why</th><th class="num">s</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def _badge(status: str) -> str:
    return f'<span class="badge {_slug(status)}">{_h(status)}</span>'


def _html_section(r: Result, run_dir: Path) -> str:
    e, ev, files = r.experiment, r.evidence, _files(r, run_dir)
    out = [f'<section class="experiment {_slug(r.verdict.status)}" id="{_h(e.id)}">',
           f"<h2>{_h(e.id)} · {_hc(e.title)}</h2>", f'<p class="claim">{_hc(e.claim)}</p>',
           f'<p class="verdict">{_badge(r.verdict.status)} {_hc(r.verdict.summary)}</p>']
    if ev.observations:
        out += ["<h3>Evidence</h3><ul>", *(f"<li>{_hc(o)}</li>" for o in ev.observations), "</ul>"]
    out += _html_figures(e.id, files)
    out += _html_plot(ev.facts, e.id)
    if files:
        out += ["<h3>Files</h3><ul>", *(f'<li><a href="{_h(quote(f.rel))}">{_h(f.name)}</a> '
                                        f"<code>{_h(f.rel)}</code></li>" for f in files), "</ul>"]
    if ev.facts:
        facts = json.dumps(dict(ev.facts), indent=1, ensure_ascii=False, default=str)
        out.append(f"<details><summary>facts (JSON)</summary><pre>{_h(facts)}</pre></details>")
    return "\n".join(out + ["</section>"])


def _html_figures(cid: str, files: list[_File]) -> list[str]:
    """SVG artifacts inline (ladders); text artifacts folded away as preformatted text."""
    out = []
    for i, f in enumerate(files):
        text = _read(f.path) if f.path.suffix in (".svg", ".txt") else None
        if text is None:
            continue
        if f.path.suffix == ".svg":
            out.append(f'<h3>{_h(f.name)}</h3><figure class="ladder"><div class="scroll">'
                       f"{_inline_svg(text, f'{cid}-{i}')}</div>"
                       '<figcaption class="hint">wider than the screen: scroll sideways'
                       "</figcaption></figure>")
        else:
            out.append(f"<details><summary>{_h(f.name)}</summary><pre>{_h(text)}</pre></details>")
    return out


_SVG_ID = re.compile(r'\bid="([^"]+)"')
_SVG_REF = re.compile(r'(url\(#|href="#)([^")]+)')
_SVG_ACTIVE = re.compile(r"<script|<foreignObject|<[^>]*\son\w+\s*=", re.IGNORECASE)


def _inline_svg(svg: str, prefix: str) -> str:
    """SVG markup to put in the page: prolog dropped, ids made unique in the page.

    An SVG that could run code (scripts, event handlers) is never inlined: it becomes an <img>
    with a data: URI, where a browser runs nothing.
    """
    start = svg.find("<svg")
    if start < 0 or _SVG_ACTIVE.search(svg):
        data = base64.b64encode(svg.encode()).decode()
        return f'<img alt="" src="data:image/svg+xml;base64,{data}">'
    body = _SVG_ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg[start:])
    return _SVG_REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", body)


def _h(value: Any) -> str:
    return html.escape(str(value), quote=True)


_CODE = re.compile(r"`([^`\n]+)`")


def _hc(value: Any) -> str:
    """Prose for the page: escaped, and its `backticked` words set as code, as Markdown shows
    them (the same sentences go into report.md unchanged)."""
    return _CODE.sub(r"<code>\1</code>", _h(value))


# ---------------------------------------------------------------- files
def write_report(results: Sequence[Result], meta: Mapping[str, Any], run_dir: Path, *,
                 fail_on: Iterable[str] = ("does not hold",)) -> dict[str, Path]:
    """report.html, report.md, verdicts.json and junit.xml in run_dir; their paths by kind."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    texts = {"html": ("report.html", to_html(results, meta, run_dir)),
             "markdown": ("report.md", to_markdown(results, meta, run_dir)),
             "json": ("verdicts.json", to_json(results, meta, run_dir)),
             "junit": ("junit.xml", to_junit(results, meta, fail_on=fail_on))}
    paths = {}
    for kind, (name, text) in texts.items():
        paths[kind] = run_dir / name
        paths[kind].write_text(text, encoding="utf-8")
    return paths


# ---------------------------------------------------------------- a stored run
def load_run(run_dir: Path) -> tuple[list[Result], dict[str, Any]]:
    """A run's results read back from its verdicts.json, each verdict computed again from the
    stored facts by today's judge (so a report always follows from its evidence)."""
    from socketlab.experiments.base import Evidence, Experiment, Verdict
    from socketlab.experiments.registry import catalogue

    doc = json.loads((run_dir / "verdicts.json").read_text())
    known = catalogue()
    results = []
    for item in doc["results"]:
        artifacts = {name: str(run_dir / rel) for name, rel in item["artifacts"].items()}
        evidence = Evidence(item["id"], item["facts"], tuple(item["observations"]), {}, artifacts)
        stored = Verdict(item["id"], item["verdict"]["status"], item["verdict"]["summary"])
        exp = known.get(item["id"]) or Experiment.replayed(item["id"], item["title"], item["claim"],
                                                            evidence, stored)
        results.append(Result(exp, evidence, _judged(exp, evidence), item["seconds"]))
    return results, doc["meta"]


def _judged(exp, evidence):
    """Today's verdict on stored evidence; evidence today's judge cannot read (a run from an
    older version, a hand-edited file) is inconclusive, and says why."""
    from socketlab.experiments.base import Verdict

    try:
        return exp.judge(evidence)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        return Verdict(evidence.claim, "inconclusive",
                       f"the stored evidence does not fit today's judge ({type(e).__name__}: {e})")
