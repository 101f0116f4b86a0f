"""Every exercise started for two students in one real lab: different captures and different
answers, the key scores full marks, the dissection agrees with Wireshark's (tshark) field by
field on those pcaps, and one worksheet is drawn in headless Chromium (and printed to PDF)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from socketlab.exercises import EXERCISES, load, mark, start
from socketlab.exercises.marking import Answers
from socketlab.exercises.render import find_browser, write_pdf
from socketlab.lab.lab import Lab
from socketlab.observe.analysis import Segment, tcp_flow
from socketlab.observe.pcap import read_pcap

pytestmark = pytest.mark.integration
SEED = "integration-course"
STUDENTS = ("alice", "bob")
NAMES = [e.name for e in EXERCISES]


@pytest.fixture(scope="module")
def course(lab: Lab, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("course")
    for exercise in EXERCISES:
        for student in STUDENTS:
            start(lab, exercise.name, student, seed=SEED, base_dir=base)
    return base


@pytest.mark.parametrize("name", NAMES)
def test_two_students_get_their_own_capture_and_answers_and_the_key_is_full_marks(course, name):
    alice, bob = (load(course, name, s, seed=SEED) for s in STUDENTS)
    assert alice.params != bob.params
    assert alice.pcaps["client"] != bob.pcaps["client"]
    keys = [{q: a.value for q, a in ws.key().items()} for ws in (alice, bob)]
    assert keys[0] != keys[1]
    for ws, key in zip((alice, bob), keys, strict=True):
        marking = mark(ws, Answers(ws.folder / "answers.toml", name, ws.student, key))
        assert marking.full, [m.note for m in marking.marks if not m.right]
        assert {"worksheet.md", "worksheet.html", "answers.toml", "client.pcap",
                "server.pcap"} <= {p.name for p in ws.folder.iterdir()}
    assert not [p for p in course.iterdir() if p.name.startswith(".")]  # no work folder left


# ---------------------------------------------------------------- against Wireshark
FIELDS = ("frame.number", "ip.len", "ip.id", "ip.flags.mf", "ip.frag_offset", "tcp.seq_raw",
          "tcp.seq", "tcp.ack", "tcp.len", "tcp.window_size_value", "tcp.window_size",
          "tcp.options.mss_val", "tcp.analysis.retransmission",
          "tcp.analysis.fast_retransmission", "tcp.analysis.spurious_retransmission",
          "tcp.analysis.out_of_order", "udp.length")
RESENT = FIELDS[12:16]  # tshark's names for a segment below the highest sequence already seen


@pytest.fixture(scope="module")
def tshark() -> str:
    found = shutil.which("tshark")
    if found:
        return found
    reason = "tshark is not installed (apt-get install tshark)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def tshark_fields(tshark: str, pcap: Path) -> dict[int, dict[str, str]]:
    argv = [tshark, "-r", str(pcap), "-n", "-o", "ip.defragment:FALSE", "-o",
            "tcp.desegment_tcp_streams:FALSE", "-T", "fields", "-E", "separator=|",
            "-E", "occurrence=f"]
    for name in FIELDS:
        argv += ["-e", name]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    rows = (line.split("|") for line in done.stdout.splitlines())
    return {int(r[0]): dict(zip(FIELDS, r, strict=True)) for r in rows}


def number(text: str) -> int | None:
    return None if text == "" else int(text, 16) if text.startswith("0x") else int(text)


def ours(pkt, seg: Segment | None) -> dict[str, int | None]:
    """Our dissection of one packet, in tshark's field names."""
    row = {"ip.len": pkt.ip_len, "ip.id": pkt.ip_id, "ip.flags.mf": int(pkt.mf)}
    if pkt.proto == "udp" and pkt.frag_offset == 0:
        row["udp.length"] = pkt.udp_len + 8
    if pkt.proto == "tcp" and not pkt.is_fragment:
        row |= {"tcp.seq_raw": pkt.seq, "tcp.len": pkt.length, "tcp.window_size_value": pkt.window,
                "tcp.options.mss_val": pkt.mss}
    if seg is not None:
        row |= {"tcp.seq": seg.rel_seq, "tcp.window_size": seg.window}
        if "A" in pkt.flags:
            row["tcp.ack"] = seg.rel_ack
    return row


def test_dissection_agrees_with_tshark_on_every_worksheet_pcap(course, tshark):
    checked = 0
    for pcap in sorted(course.glob("*/*.pcap")):
        theirs = tshark_fields(tshark, pcap)
        pkts = read_pcap(pcap)
        port = load(course, *pcap.parent.name.split("-", 1), seed=SEED).port
        server = next(p.dst for p in pkts if p.dport == port)
        flow = tcp_flow(pkts, (server, port))
        segs = {s.pkt.index: s for s in flow.segments} if flow else {}
        for p in pkts:
            row, seg = theirs[p.index + 1], segs.get(p.index)
            for name, value in ours(p, seg).items():
                assert number(row[name]) == value, f"{pcap} frame {p.index + 1} {name}"
            offset = number(row["ip.frag_offset"]) or 0
            assert p.frag_offset in (offset, offset * 8), f"{pcap} frame {p.index + 1}"
            if seg is not None:
                flagged = any(row[name] for name in RESENT)
                assert seg.retransmission == flagged, f"{pcap} frame {p.index + 1} retx"
            checked += 1
    assert checked > 300


# ---------------------------------------------------------------- in a browser
@pytest.mark.browser
def test_a_worksheet_in_headless_chromium(course, tmp_path):
    browser = find_browser()
    if browser is None:
        reason = "no chromium on PATH (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    ws = load(course, "synack", "alice", seed=SEED)
    page = (ws.folder / "worksheet.html").as_uri()
    base = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    for q in ws.exercise.questions:
        assert f'<li id="{q.id}">' in dom
    for host, digest in ws.pcaps.items():
        assert f'<a href="{host}.pcap">' in dom
        assert digest in dom
    assert "drop tcp flags=SA" in dom  # what was done to the link is on the sheet
    shot = tmp_path / "sheet.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1000,1400", page],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000  # drawn, not blank
    pdf = write_pdf(ws)
    assert pdf.read_bytes()[:5] == b"%PDF-"
