"""MkDocs hook: the command reference, written from socketlab's own argparse parser as the site
is built, so `socketlab COMMAND --help` and the page cannot disagree.

A page holds the line `<!-- socketlab: commands -->`; the build puts there every command's help,
exactly as `--help` prints it (at 100 columns), subcommands (exercise, bench, sandbox, ...) too.
"""

from __future__ import annotations

import argparse
import os

MARKER = "<!-- socketlab: commands -->"
WIDTH = "100"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public way to list a parser's subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def helps(parser: argparse.ArgumentParser | None = None) -> list[tuple[str, str]]:
    """(command line, its help text) for socketlab and every command under it, in the help's
    order, depth first."""
    if parser is None:
        from socketlab.cli.app import build_parser

        parser = build_parser()
    found = [(parser.prog, parser.format_help())]
    for sub in dict.fromkeys(_subparsers(parser).values()):
        found += helps(sub)
    return found


def render() -> str:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps at the terminal's width: the page's is fixed
    try:
        parts = []
        for prog, text in helps():
            depth = "#" * min(prog.count(" ") + 1, 4)
            parts.append(f"{depth} `{prog}`\n\n```text\n{text.rstrip()}\n```\n")
        return "\n".join(parts)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
