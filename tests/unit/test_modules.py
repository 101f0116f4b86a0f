"""Every module of the package imports: a module only a rare command loads (a bench, the
sandbox) breaks here, not in a user's hands, when something it imports moves."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import socketlab

MODULES = sorted(m.name for m in pkgutil.walk_packages(socketlab.__path__, "socketlab.")
                 if not m.name.endswith("__main__"))  # that one runs the command


def test_the_package_has_its_modules():
    assert {"socketlab.tools.bench_swarm", "socketlab.cli.app", "socketlab.lab.sandbox"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_the_module_imports(name):
    importlib.import_module(name)
