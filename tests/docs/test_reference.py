"""The command reference is the parser's own help: every command and subcommand on the page,
each exactly as `socketlab COMMAND --help` prints it (no Docker)."""

from __future__ import annotations

import importlib.util
import io
import os

import pytest

from socketlab.cli import app
from tests.docs.pages import ROOT

_spec = importlib.util.spec_from_file_location("docs_commands_hook", ROOT / "docs/hooks/commands.py")
hook = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hook)


def test_the_reference_page_asks_for_the_generated_help():
    assert hook.MARKER in (ROOT / "docs/reference/commands.md").read_text()


def test_every_command_is_on_the_page_as_its_help_prints_it(monkeypatch):
    page = hook.render()
    progs = [prog for prog, _ in hook.helps()]
    for name in app.COMMANDS:  # every command the CLI knows
        assert f"socketlab {name}" in progs
    for sub in ("exercise start", "exercise check", "sandbox up", "bench"):
        assert f"socketlab {sub}" in progs
    monkeypatch.setenv("COLUMNS", hook.WIDTH)
    for argv in (["run", "--help"], ["exercise", "summary", "--help"], ["--help"]):
        out = io.StringIO()
        assert app.main(argv, out=out, err=io.StringIO()) == 0
        assert out.getvalue().rstrip() in page, argv


@pytest.mark.parametrize("columns", ["40", "200"])
def test_the_page_does_not_depend_on_the_builders_terminal(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    assert hook.render() == (monkeypatch.setenv("COLUMNS", "80") or hook.render())
    assert os.environ["COLUMNS"] == "80"  # put back as it was
