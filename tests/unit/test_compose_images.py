"""A compose file's own images (image: + build:) built once, again only when their folder
changed: what the pytest plugin does before a topology's first lab. A fake engine records
the builds."""

from __future__ import annotations

import docker.errors
import pytest

from socketlab.errors import ConfigError
from socketlab.lab import images

COMPOSE = """
x-kv: &kv
  image: example/kv:latest
  build:
    context: ./kv
    args:
      BASE: ${KV_BASE:-python:3.12-slim}
services:
  server: {<<: *kv, command: [python3, /app/kv_server.py]}
  client: {<<: *kv, command: [sleep, infinity]}
  plain: {image: example/other:1}
  short: {image: example/short:1, build: ./kv}
"""


class FakeImage:
    def __init__(self, labels: dict) -> None:
        self.labels, self.id, self.attrs = labels, "sha256:1", {"Size": 1}


class FakeEngine:
    """images.get and api.build, as much as ensure_image uses."""

    def __init__(self) -> None:
        self.built: dict[str, dict] = {}
        self.calls: list[tuple[str, dict, str]] = []
        self.images, self.api = self, self

    def get(self, tag):
        if tag not in self.built:
            raise docker.errors.ImageNotFound(tag)
        return FakeImage(self.built[tag])

    def build(self, *, path, tag, buildargs, labels, **_options):
        self.calls.append((tag, buildargs, path))
        self.built[tag] = labels
        yield {"stream": "Step 1/3 : FROM base"}


def test_each_built_image_once_with_its_args_and_context(tmp_path, monkeypatch):
    monkeypatch.setenv("KV_BASE", "local/python:3")
    (tmp_path / "kv").mkdir()
    (tmp_path / "kv" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    (tmp_path / "compose.yml").write_text(COMPOSE)
    engine, said = FakeEngine(), []
    done = images.ensure_compose_images(tmp_path / "compose.yml", engine, said.append)
    assert [(i.tag, i.built) for i in done] == [("example/kv:latest", True), ("example/short:1", True)]
    assert engine.calls[0] == ("example/kv:latest", {"BASE": "local/python:3"}, str(tmp_path / "kv"))
    assert engine.calls[1][1] == {}
    assert any("building example/kv:latest" in line for line in said)

    again = images.ensure_compose_images(tmp_path / "compose.yml", engine, said.append)
    assert [i.built for i in again] == [False, False]  # nothing changed: nothing built
    (tmp_path / "kv" / "kv_server.py").write_text("print('changed')\n")
    changed = images.ensure_compose_images(tmp_path / "compose.yml", engine, said.append)
    assert [i.built for i in changed] == [True, True]
    assert len(engine.calls) == 4


@pytest.mark.parametrize(("image", "context", "refused"), [
    ("socketlab/lab:mine", "./kv", "the lab image is built from socketlab's images/lab only"),
    ("socketlab/base:bookworm", "./kv", "a build would take the tag of one of socketlab's own"),
    ("example/etc:1", "/etc", "is not inside the topology's folder"),
])
def test_a_build_that_would_replace_socketlabs_images_or_read_the_machine_is_refused(
        tmp_path, monkeypatch, image, context, refused):
    monkeypatch.setenv("SOCKETLAB_IMAGE", "socketlab/lab:mine")
    (tmp_path / "kv").mkdir()
    (tmp_path / "compose.yml").write_text(f"services:\n  s: {{image: '{image}', build: '{context}'}}\n")
    engine = FakeEngine()

    with pytest.raises(ConfigError, match=refused):
        images.ensure_compose_images(tmp_path / "compose.yml", engine, lambda _msg: None)
    assert engine.calls == []
