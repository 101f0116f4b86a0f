"""Where the lab's own files are: the compose file (the default topology), the other example
topologies (topologies/*.yml) and the image's build context.

One rule, for a checkout and an installed package alike: the files live in the first of these
folders that holds docker-compose.yml,
  - socketlab/_assets/ inside the package (a wheel carries them there: pyproject.toml's
    force-include, with the checkout's own layout), then
  - the checkout's root (an editable install, or running from the source tree).
"""

from __future__ import annotations

from pathlib import Path

COMPOSE_NAME = "docker-compose.yml"
_PACKAGE = Path(__file__).resolve().parent.parent
CANDIDATES = (_PACKAGE / "_assets", _PACKAGE.parent)


def find_root(candidates: tuple[Path, ...] = CANDIDATES) -> Path:
    """The folder holding the compose file and images/ (the first candidate that has it)."""
    for folder in candidates:
        if (folder / COMPOSE_NAME).is_file():
            return folder
    return candidates[-1]  # a broken install: the paths then name files that are missing


ROOT = find_root()
COMPOSE_FILE = ROOT / COMPOSE_NAME
IMAGE_CONTEXT = ROOT / "images" / "lab"
TOPOLOGIES = ROOT / "topologies"
