"""Run folders: one per capture or run, base/<YYYYmmdd-HHMMSS>-<name>, marked incomplete until
every file of it is written (a run that fails or is killed half-way says so; `report` skips it)."""

from __future__ import annotations

import time
from pathlib import Path

from socketlab.errors import CaptureError

INCOMPLETE = ".incomplete"  # in a run folder until all its files are written
_INCOMPLETE_TEXT = ("This run did not finish (it failed or was stopped): its files may be partial, "
                    "and `socketlab report` skips it.\n")


def new_run_dir(base: str | Path, name: str) -> Path:
    """base/<YYYYmmdd-HHMMSS>-<name>, made now (a -2, -3... suffix if that exists already),
    marked incomplete until mark_complete(): a run that fails or is killed half-way leaves a
    folder that says so, and that `report` skips."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    for n in range(1, 1000):
        path = Path(base) / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as e:
            raise CaptureError(f"cannot make a run folder under {base}: {e.strerror}",
                               hint="give a folder you can write to") from None
        (path / INCOMPLETE).write_text(_INCOMPLETE_TEXT)
        return path
    raise CaptureError(f"cannot make a run folder under {base}")


def mark_complete(run_dir: Path) -> None:
    """Every file of the run is written: it no longer says it is incomplete."""
    (Path(run_dir) / INCOMPLETE).unlink(missing_ok=True)


def is_complete(run_dir: Path) -> bool:
    return Path(run_dir).is_dir() and not (Path(run_dir) / INCOMPLETE).exists()
