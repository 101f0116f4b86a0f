"""The user-mode kernel's files: those of a kernel whose owner has ended are removed, no others."""

from __future__ import annotations

import os
import subprocess

from socketlab.tools.uml import WORK_PREFIX, remove_orphans


def test_only_the_files_of_an_ended_owner_are_removed(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    folders = {name: tmp_path / f"{WORK_PREFIX}{name}" for name in ("orphan", "mine", "booting", "odd")}
    for folder in folders.values():
        folder.mkdir()
    (folders["orphan"] / "owner.pid").write_text(f"{gone.pid}\n")
    (folders["mine"] / "owner.pid").write_text(f"{os.getpid()}\n")
    (folders["odd"] / "owner.pid").write_text("not a pid\n")
    (tmp_path / "other").mkdir()
    assert remove_orphans(str(tmp_path)) == [folders["orphan"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{WORK_PREFIX}mine", f"{WORK_PREFIX}booting", f"{WORK_PREFIX}odd", "other"])
