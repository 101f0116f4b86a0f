"""The docs harness itself, and every page read as a test (no Docker)."""

from __future__ import annotations

import pytest

from tests.docs.pages import ROOT, SKIP, blocks, commands, line_matches, lint, output_matches, pages

PAGE = f"""# A page

```console
$ ./scripts/lab up
lab 'x' on 192.168.33.0/24
...
$ ./scripts/lab run tcp \\
> --count 2
TCP is a byte stream: nothing lost.
```

Not run here: it needs root.
{SKIP}
```console
$ ./scripts/lab sandbox up
```

```python
print("hi")
```
"""


def test_a_page_reads_as_blocks_and_commands(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(PAGE)
    found = blocks(page)
    assert [(b.lang, b.skip) for b in found] == [("console", False), ("console", True), ("python", False)]
    first = commands(found[0])
    assert [c.cmd for c in first] == ["./scripts/lab up", "./scripts/lab run tcp \n--count 2"]
    assert first[0].expected == ("lab 'x' on 192.168.33.0/24", "...")
    assert first[0].line == 4
    assert first[1].line == 7
    assert lint(page) == []


@pytest.mark.parametrize(("expected", "actual", "ok"), [
    ("lab 'x' on 192.168.33.0/24", "lab 'x' on 192.168.231.0/24   ", True),   # numbers, trailing space
    ("│ 10.3 │ connect()  │", "│ 9.87 │ connect() │", True),                # widths move with numbers
    ("┏━━━━┳━━┓", "┏━━━━━━┳━━┓", True),
    ("runs/...-run-tcp/ladder.svg", "runs/20261208-051500-run-tcp/ladder.svg", True),
    ("TCP is a byte stream", "UDP is a byte stream", False),                 # words must match
    ("recv(3) -> \"hel\"", "recv(3) -> \"he\"", False),
    ("sent 11 bytes", "sent bytes", False),                                  # a number is needed
])
def test_a_line_matches_in_meaning_not_in_digits(expected, actual, ok):
    assert line_matches(expected, actual) is ok


def test_dots_match_any_lines_and_nothing_else_is_skipped():
    assert output_matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert output_matches(["a", "...", "z"], ["a", "z"])
    assert output_matches(["..."], [])
    assert not output_matches(["a", "z"], ["a", "b", "z"])       # a line the page does not show
    assert not output_matches(["a", "...", "z"], ["a", "b"])     # a line the page shows, missing
    assert not output_matches([], ["something"])


def test_a_shell_example_cannot_hide_in_a_text_block(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("```\n./scripts/lab up\n```\n\n```console\nsome output\n```\n\n"
                    f"{SKIP}\n```console\n$ x\n```\n")
    problems = lint(page)
    assert len(problems) == 3, problems
    assert "make it ```console" in problems[0]
    assert "output before any" in problems[1]
    assert "no sentence before it" in problems[2]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_page_is_a_test(page):
    assert lint(page) == []


def test_the_pages_are_read_in_the_sites_order():
    found = [str(p.relative_to(ROOT)) for p in pages()]
    assert found[0] == "README.md"
    assert found[1] == "docs/index.md"
    assert "docs/reference/commands.md" in found
