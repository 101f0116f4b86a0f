"""Installable: the lab's files found in a checkout or an installed package by one rule, one
version, and `Lab()` with no arguments on a lab of its own."""

from __future__ import annotations

import io
import re
from pathlib import Path

from socketlab import __version__
from socketlab.cli.app import main
from socketlab.lab import assets
from socketlab.lab.config import AUTO, DEFAULT_SUBNET, LabConfig, unique_project
from socketlab.lab.lab import Lab

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkout_is_found_when_no_package_data_is_there(tmp_path):
    assert assets.find_root((tmp_path / "_assets", ROOT)) == ROOT
    assert assets.COMPOSE_FILE.is_file()
    assert (assets.IMAGE_CONTEXT / "Dockerfile").is_file()
    assert (assets.TOPOLOGIES / "router.yml").is_file()


def test_package_data_wins_over_the_checkout(tmp_path):
    packaged = tmp_path / "_assets"
    packaged.mkdir()
    (packaged / "docker-compose.yml").write_text("services: {}\n")
    assert assets.find_root((packaged, ROOT)) == packaged


def test_the_wheel_carries_the_files_where_assets_looks():
    text = (ROOT / "pyproject.toml").read_text()
    for source in ("docker-compose.yml", "images/lab", "topologies"):
        assert f'"{source}" = "socketlab/_assets/{source}"' in text
    assert assets.CANDIDATES[0].name == "_assets"


def test_version_has_one_source():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text
    assert re.search(r'^\[tool\.hatch\.version\]\npath = "socketlab/__init__.py"', text, re.M)
    out = io.StringIO()
    assert main(["--version"], out=out) == 0
    assert out.getvalue().strip() == f"socketlab {__version__}"


def test_lab_with_no_arguments_is_a_lab_of_its_own(monkeypatch):
    monkeypatch.setenv("SOCKETLAB_PROJECT", "shared")
    monkeypatch.setenv("SOCKETLAB_SUBNET", DEFAULT_SUBNET)
    monkeypatch.setenv("SOCKETLAB_SERVER_IP", "192.168.33.5")
    monkeypatch.setenv("SOCKETLAB_IMAGE", "mine/lab:1")
    one, two = Lab().config, Lab().config
    assert one.subnet == two.subnet == AUTO
    assert one.project != two.project
    assert one.project.startswith("socketlab-")
    assert one.image == "mine/lab:1"  # the rest still from the environment
    assert LabConfig.from_env().project == "shared"  # what the CLI uses: unchanged


def test_unique_project_names_are_valid_and_distinct():
    names = {unique_project("socketlab-pytest-gw0") for _ in range(50)}
    assert len(names) == 50
    for name in names:
        LabConfig(project=name, subnet=AUTO)  # valid, or ConfigError
