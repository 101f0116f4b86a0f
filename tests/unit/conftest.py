"""Fixtures the unit tests share: a fake lab for `socketlab shape` run in-process."""

from __future__ import annotations

import io
import os

import pytest

from socketlab.cli import common
from socketlab.cli.app import main
from socketlab.lab.assets import COMPOSE_FILE
from socketlab.lab.composefile import read_topology
from socketlab.lab.config import LabConfig
from socketlab.lab.process import ExecResult

# The post's two hosts as a topology: what a fake lab answers for `lab.topology`.
POST = read_topology(COMPOSE_FILE, LabConfig().compose_env(), lab_image=LabConfig().image)


class FakeLab:
    """Records exec calls; answers as lab-shape would (set .answer to change that)."""

    def __init__(self) -> None:
        self.config = LabConfig()
        self.topology = POST
        self.calls: list[tuple[str, list[str]]] = []
        self.opened: list[bool] = []
        self.answer = ExecResult(0, "egress: delay 100ms loss 5% (backend engine)\n", "", 0.1)

    def exec(self, host: str, argv, *, timeout=None, instruments=False) -> ExecResult:
        self.calls.append((host, list(argv)))
        return self.answer


@pytest.fixture
def lab(monkeypatch) -> FakeLab:
    """The lab `socketlab shape` gets, with no SOCKETLAB_* variable from this environment."""
    for name in list(os.environ):
        if name.startswith("SOCKETLAB_"):
            monkeypatch.delenv(name)
    fake = FakeLab()

    def running_lab(_args, _err):
        fake.opened.append(True)
        return fake

    monkeypatch.setattr(common, "running_lab", running_lab)
    return fake


def no_engine_here(monkeypatch) -> None:
    """No SOCKETLAB_* setting of the machine's, an engine that cannot be reached, a wide
    terminal: the CLI as a test sees it, whatever the machine running the tests has."""
    for name in list(os.environ):
        if name.startswith("SOCKETLAB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("COLUMNS", "200")


def cli(*argv: str) -> tuple[int, str, str]:
    """socketlab in-process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def loaded_after(statements: str) -> set[str]:
    """The modules a fresh interpreter has loaded once `statements` have run (in this checkout)."""
    import subprocess
    import sys
    from pathlib import Path

    code = f"import sys\n{statements}\nprint('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parents[2])
    return set(done.stdout.split())
