"""docs/sealed.md shows the code's allowlist: the page's tables and the code's table are one
(regenerate the block with `python -c "from socketlab.lab.allowlist import table_markdown;
print(table_markdown())"`), and the page's count of hostile files is the suite's."""

from __future__ import annotations

import re

from socketlab.lab.allowlist import table_markdown
from socketlab.lab.assets import ROOT

PAGE = ROOT / "docs" / "sealed.md"


def test_the_pages_allowlist_is_the_codes():
    text = PAGE.read_text()
    block = re.search(r"<!-- allowlist: begin -->\n(.*)<!-- allowlist: end -->", text, re.S)
    assert block is not None, "docs/sealed.md lost its allowlist markers"
    assert block.group(1) == table_markdown()


def test_the_page_counts_the_hostile_files_the_suite_has():
    count = len(list((ROOT / "tests" / "data" / "hostile").glob("*.yml")))
    assert f"({count} of them;" in PAGE.read_text()
