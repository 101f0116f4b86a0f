"""Where the lab's own files are: the compose file (the topology) and the image's build context."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGE_CONTEXT = ROOT / "images" / "lab"
