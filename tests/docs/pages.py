"""The documentation read as tests (pure: no Docker, no processes).

Every page (README.md, then docs/*.md in the site's order) is read for its fenced blocks:
- ```console: lines starting with `$ ` are commands (a line ending in `\\` goes on with the next
  one), the lines after each are the output the page shows; `...` on a line of its own matches
  any lines (none included), `...` inside a line any text; numbers and runs of spaces match
  numbers and spaces of any width (times, ports, addresses and the table widths they cause).
- ```python: run as written.
- a block right after the line `<!-- docs-test: skip -->` is not run; its page says why.
Other fences (text, yaml, toml, ...) are pictures and file contents: `lint` makes sure no shell
or Python example hides in one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = "<!-- docs-test: skip -->"
RUN = ("console", "python")
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int      # the opening fence's line, 1-based
    lang: str
    text: str
    skip: bool

    @property
    def include(self) -> str | None:
        """The file a block shows, when it is only a snippet line (`--8<-- "path"`)."""
        found = re.fullmatch(r'\s*--8<--\s+"([^"]+)"\s*', self.text)
        return found.group(1) if found else None

    @property
    def runs(self) -> bool:
        return self.lang in RUN and not self.skip and self.include is None

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


@dataclass(frozen=True)
class Command:
    line: int
    cmd: str
    expected: tuple[str, ...]


def pages(root: Path = ROOT) -> list[Path]:
    """README.md, then the site's pages in the order of mkdocs.yml's nav, then any other."""
    import yaml

    nav = yaml.safe_load((root / "mkdocs.yml").read_text()).get("nav", [])
    ordered: list[Path] = [root / "README.md"]

    def walk(items) -> None:
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            if isinstance(value, list):
                walk(value)
            elif isinstance(value, str) and value.endswith(".md"):
                ordered.append(root / "docs" / value)

    walk(nav)
    rest = sorted(p for p in (root / "docs").rglob("*.md") if p not in ordered)
    return [p for p in dict.fromkeys(ordered + rest) if p.exists()]


def blocks(page: Path) -> list[Block]:
    """The page's fenced blocks, in order."""
    found, lines = [], page.read_text().splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i].lstrip())
        if not opened:
            i += 1
            continue
        fence, lang, start = opened.group(1), opened.group(2).lower(), i
        indent = len(lines[i]) - len(lines[i].lstrip())
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[indent:] if not indent or line[:indent].isspace() else line.lstrip())
            i += 1
        skip = start > 0 and lines[start - 1].strip() == SKIP
        found.append(Block(page, start + 1, lang, "\n".join(body), skip))
        i += 1
    return found


def commands(block: Block) -> list[Command]:
    """A console block's commands, each with the output lines the page shows under it."""
    found: list[Command] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            if found or lines[i].strip():
                raise ValueError(f"{block.where}: output before any `$ ` command: {lines[i]!r}")
            i += 1
            continue
        start, cmd = i, lines[i][2:]
        while cmd.endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd = cmd[:-1] + "\n" + lines[i].removeprefix("> ")
        i += 1
        out = []
        while i < len(lines) and not lines[i].startswith("$ "):
            out.append(lines[i].rstrip())
            i += 1
        while out and not out[-1]:
            out.pop()
        found.append(Command(block.line + 1 + start, cmd, tuple(out)))
    return found


_BOX = "─━═"
_TOKEN = re.compile(r"(\.\.\.|\d+(?:[.,]\d+)*|\s+|[" + _BOX + r"]+)")


@functools.lru_cache(maxsize=4096)
def _pattern(expected: str) -> re.Pattern:
    parts = []
    for piece in _TOKEN.split(expected):
        if not piece:
            continue
        if piece == "...":
            parts.append(".*?")
        elif piece[0].isdigit():
            parts.append(r"\d+(?:[.,]\d+)*")
        elif piece.isspace():
            parts.append(r"\s*")
        elif piece[0] in _BOX:
            parts.append(f"[{_BOX}]+")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def line_matches(expected: str, actual: str) -> bool:
    expected, actual = expected.rstrip(), actual.rstrip()
    return expected == actual or _pattern(expected).fullmatch(actual) is not None


def output_matches(expected: tuple[str, ...] | list[str], actual: list[str]) -> bool:
    """The actual lines as the page shows them: line by line, `...` lines matching any run."""
    exp = list(expected)

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(actual)
        if exp[i].strip() == "...":
            return any(match(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and line_matches(exp[i], actual[j]) and match(i + 1, j + 1)

    return match(0, 0)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def output_lines(text: str) -> list[str]:
    """A command's output as a page shows it: lines, no colours, no trailing blanks."""
    lines = [line.rstrip() for line in _ANSI.sub("", text).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


# Shell and Python that must be in a console or python block (so they run), never hidden in
# a text one.
_SHELLISH = re.compile(r"^\s*(\$ |\./scripts/|socketlab |docker |docker-compose |pip |pytest |python3? -m )")


def lint(page: Path) -> list[str]:
    """What is wrong with a page as a test: a shell line in a block that is not run, a console
    block that does not parse, a skip with no visible reason before it."""
    problems = []
    lines = page.read_text().splitlines()
    for block in blocks(page):
        if block.include is not None:
            if not (ROOT / block.include).is_file():
                problems.append(f"{block.where}: shows {block.include}, which does not exist")
            continue
        if block.lang not in RUN:
            shell = [ln for ln in block.text.splitlines() if _SHELLISH.match(ln)]
            if shell:
                problems.append(f"{block.where}: a shell example in a ```{block.lang or 'plain'} "
                                f"block (make it ```console): {shell[0]!r}")
        elif block.lang == "console":
            try:
                if not commands(block):
                    problems.append(f"{block.where}: a console block with no `$ ` command")
            except ValueError as e:
                problems.append(str(e))
        if block.skip:
            before = [ln.strip() for ln in lines[:block.line - 2] if ln.strip()]
            if not before or before[-1].startswith(("```", "~~~", "<!--", "#", "|")):
                problems.append(f"{block.where}: skipped with no sentence before it saying why")
    return problems
