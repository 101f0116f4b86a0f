"""The HTML report in a real browser: headless Chromium draws it and reads its DOM.

Needs Debian's `chromium` package (or any chromium / google-chrome on PATH). Without one the
tests skip, except in CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from socketlab.present.report import write_report
from tests.unit.test_report import META, synthetic_results

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BADGES = {"holds": (0x1A, 0x7F, 0x37), "holds in part": (0xE3, 0xA0, 0x08),
          "does not hold": (0xCF, 0x22, 0x2E), "inconclusive": (0x6E, 0x77, 0x81)}


@pytest.fixture(scope="module")
def chromium() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found:
        return found
    reason = f"no headless browser on PATH (looked for {', '.join(BROWSERS)}; apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    return write_report(synthetic_results(tmp_path), META, tmp_path)["html"]


def _run(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{argv} exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def _has_colour(counts: dict[tuple[int, int, int], int], rgb: tuple[int, int, int],
                at_least: int = 50) -> bool:
    near = sum(n for colour, n in counts.items()
               if all(abs(a - b) <= 3 for a, b in zip(colour, rgb, strict=True)))
    return near >= at_least


def test_screenshot_is_drawn_with_the_badges(chromium, page, tmp_path):
    shot = tmp_path / "report.png"
    _run(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1200,2000",
         "--hide-scrollbars", page.as_uri())
    assert shot.exists(), "chromium wrote no screenshot"
    with Image.open(shot) as image:
        assert image.size == (1200, 2000)
        counts = {rgb: n for n, rgb in image.convert("RGB").getcolors(maxcolors=1 << 24)}
    assert len(counts) > 1, "the screenshot is blank"
    missing = [status for status, rgb in BADGES.items() if not _has_colour(counts, rgb)]
    assert not missing, f"no badge colour on screen for {missing}"


class _Table(HTMLParser):
    """The cells of the verdict table (table.verdicts), row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.inside = False

    def handle_starttag(self, tag, attrs):
        if tag == "table" and "verdicts" in (dict(attrs).get("class") or "").split():
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th") and self.rows:
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        self.inside = self.inside and tag != "table"

    def handle_data(self, data):
        if self.inside and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def test_dom_shows_the_verdict_table(chromium, page, tmp_path):
    dom = _run(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout
    table = _Table()
    table.feed(dom)
    assert table.rows[0][:3] == ["Claim", "Title", "Verdict"]
    assert [row[:3] for row in table.rows[1:]] == [
        ["C4", "TCP is a byte stream", "holds"], ["C6", "UDP drops under load", "holds in part"],
        ["C7", "UDP reports no errors", "does not hold"],
        ["C9", "Odd <b>text</b> & more", "inconclusive"]]
    assert "<script>alert(1)" not in dom
