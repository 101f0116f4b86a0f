"""The worksheet as a student reads it: Markdown and one self-contained HTML page (links to the
pcaps beside it), and the answers form to fill in. Both are written from the same sections."""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import Any

from socketlab.exercises.marking import answers_text
from socketlab.exercises.model import KIND_WORDS, visible
from socketlab.exercises.sheet import Worksheet

ANSWERS = "answers.toml"
FOLD = 30  # an events table longer than this can be folded in the HTML (open at first, and printed)
RULE = ("Sequence and acknowledgement numbers: a question that says raw wants the raw number, "
        "one that says relative wants Wireshark's relative one, one that says \"raw or "
        "relative\" takes either. Percentages may be written 33.33 or \"33.33%\".")
TIME_TIP = ("Frame numbers are Wireshark's. The programs' times are seconds since 1970 (UTC); to "
            "compare, set Wireshark's View → Time Display Format → Seconds Since 1970-01-01.")


def write_sheets(ws: Worksheet) -> dict[str, Path]:
    paths = {"markdown": ws.folder / "worksheet.md", "html": ws.folder / "worksheet.html",
             "answers": ws.folder / ANSWERS}
    paths["markdown"].write_text(to_markdown(ws), encoding="utf-8")
    paths["html"].write_text(to_html(ws), encoding="utf-8")
    paths["answers"].write_text(answers_text(ws, None), encoding="utf-8")
    return paths


def captures(ws: Worksheet) -> list[list[str]]:
    """The pcaps handed out: file, host, address, SHA-256 (no packet count: questions ask
    how many datagrams a capture shows)."""
    return [[f"{h}.pcap", h, ws.hosts[h], digest] for h, digest in ws.pcaps.items()]


def event_rows(ws: Worksheet) -> list[list[str]]:
    """Every event the worksheet shows (questions count them: none is left out), without the
    fields that answer a question (the exercise's `hide`, applied again here: a worksheet made
    before a field was held back does not hand it out either)."""
    shown = visible(ws.events, ws.exercise.hide)
    return [[host, "" if e.get("t") is None else f"{e['t']:.6f}", e["event"],
             " ".join(f"{k}={_value(k, v)}" for k, v in e.items() if k not in ("event", "t"))]
            for host, events in shown.items() for e in events]


def _value(key: str, v: Any) -> str:
    return json.dumps(v) if key in ("data", "msg") or (isinstance(v, str) and " " in v) else str(v)


def question_lines(ws: Worksheet) -> list[tuple[str, str, str]]:
    out = []
    for q in ws.exercise.questions:
        what = KIND_WORDS[q.kind] + (f", in {q.unit}" if q.unit else "")
        if q.choices:
            what += "; " + "; ".join(f"{k}) {v}" for k, v in q.choices.items())
        out.append((q.id, q.ask(ws.params), what))
    return out


def _intro(ws: Worksheet) -> str:
    return ws.exercise.intro.format(**ws.params)


def _footer(ws: Worksheet) -> str:
    return (f"Write your answers in `{ANSWERS}` (in this folder) and hand it in. Your teacher "
            f"checks it with `socketlab exercise check {ws.exercise.name} {ANSWERS} --student "
            f"{ws.student}`: every answer is computed from the pcaps above, so the hashes must "
            "match.")


# ---------------------------------------------------------------- Markdown
def to_markdown(ws: Worksheet) -> str:
    def table(head: list[str], rows: list[list[str]]) -> list[str]:
        cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                *("| " + " | ".join(cell(c) for c in r) + " |" for r in rows)]

    lines = [f"# {ws.exercise.title}", "",
             f"Student **{ws.student}** · exercise `{ws.exercise.name}` · made {ws.created}", "",
             _intro(ws), "", "## Your captures", "",
             *table(["file", "host", "address", "SHA-256"],
                    [[f"[{c[0]}]({c[0]})", c[1], c[2], f"`{c[3]}`"] for c in captures(ws)]),
             "", TIME_TIP, "", RULE, ""]
    if ws.notes:
        lines += ["## On the link", "", *(f"- {n}" for n in ws.notes), ""]
    lines += ["## What the programs printed", "",
              *table(["host", "time (s since 1970)", "event", "details"], event_rows(ws)), "",
              "## Questions", ""]
    lines += [f"{i}. **{qid}**: {text} _({what})_" for i, (qid, text, what)
              in enumerate(question_lines(ws), 1)]
    return "\n".join([*lines, "", "## Answering", "", _footer(ws), ""])


# ---------------------------------------------------------------- HTML
_CSS = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
        "line-height:1.45;color:#222}table{border-collapse:collapse;margin:.5rem 0}"
        "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}"
        "code,.hash{font-family:monospace}.hash{font-size:.85em;word-break:break-all}"
        "ol.questions li{margin:.4rem 0}.kind{color:#666;font-style:italic}"
        ".meta{color:#555}@media print{body{margin:0}}")


def code(text: str) -> str:
    """Escaped for HTML, with `backticks` (as the Markdown has them) set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def to_html(ws: Worksheet) -> str:
    def table(cls: str, head: list[str], rows: list[list[str]]) -> str:
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return (f'<table class="{cls}"><tr>' + "".join(f"<th>{escape(h)}</th>" for h in head)
                + f"</tr>{body}</table>")

    caps = [[f'<a href="{escape(c[0])}">{escape(c[0])}</a>', escape(c[1]), escape(c[2]),
             f'<span class="hash">{c[3]}</span>'] for c in captures(ws)]
    events = [[escape(c) for c in r] for r in event_rows(ws)]
    questions = "".join(f'<li id="{qid}"><b>{qid}</b>: {code(text)} '
                        f'<span class="kind">({code(what)})</span></li>'
                        for qid, text, what in question_lines(ws))
    notes = "".join(f"<li>{code(n)}</li>" for n in ws.notes)
    footer = code(_footer(ws)).replace(f"<code>{ANSWERS}</code>",
                                       f'<a href="{ANSWERS}"><code>{ANSWERS}</code></a>')
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
             f"<title>{escape(ws.exercise.title)}: {escape(ws.student)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{escape(ws.exercise.title)}</h1>",
             f'<p class="meta">Student <b>{escape(ws.student)}</b> · exercise '
             f"<code>{escape(ws.exercise.name)}</code> · made {escape(ws.created)}</p>",
             f"<p>{code(_intro(ws))}</p>", "<h2>Your captures</h2>",
             table("captures", ["file", "host", "address", "SHA-256"], caps),
             f"<p>{escape(TIME_TIP)}</p>", f"<p>{escape(RULE)}</p>",
             f"<h2>On the link</h2><ul>{notes}</ul>" if notes else "",
             "<h2>What the programs printed</h2>",
             (f"<details open><summary>{len(events)} events</summary>" if len(events) > FOLD
              else "") + table("events", ["host", "time (s since 1970)", "event", "details"],
                               events) + ("</details>" if len(events) > FOLD else ""),
             f'<h2>Questions</h2><ol class="questions">{questions}</ol>',
             f"<h2>Answering</h2><p>{footer}</p></body></html>"]
    return "\n".join(p for p in parts if p) + "\n"


# ---------------------------------------------------------------- PDF
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    import shutil

    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def write_pdf(ws: Worksheet) -> Path:
    """The HTML worksheet printed to PDF by headless Chromium (its own profile, removed after)."""
    import subprocess
    import tempfile

    from socketlab.exercises.model import ExerciseError

    browser, pdf = find_browser(), ws.folder / "worksheet.pdf"
    if browser is None:
        raise ExerciseError("printing to PDF needs chromium (or google-chrome) on PATH")
    with tempfile.TemporaryDirectory(prefix="socketlab-pdf-") as profile:
        done = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox",
                               "--no-first-run", f"--user-data-dir={profile}",
                               "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                               (ws.folder / "worksheet.html").resolve().as_uri()],
                              capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not pdf.is_file():
        raise ExerciseError(f"chromium could not print {ws.folder / 'worksheet.html'}: "
                            f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return pdf
