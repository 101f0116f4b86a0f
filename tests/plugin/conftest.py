"""The pytest plugin tested as its users meet it: suites run by pytester (registered in the
top-level conftest: pytest takes pytest_plugins there only), with real labs."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="session")
def kv_base(docker_client) -> str:
    """An image with python3 for the example's own image (KV_BASE): python:3.12-slim where it
    is at hand, else (no registry) socketlab's own Debian base, made by the lab image's build."""
    from socketlab.lab.images import OWN_BASE, local_image

    for tag in ("python:3.12-slim", OWN_BASE):
        if local_image(docker_client, tag) is not None:
            return tag
    pytest.fail(f"no local image with python3 for the example (python:3.12-slim or {OWN_BASE})")
