"""A student's worksheet: the run in the lab, the folder handed out, and reading it back.

    ws = start(lab, "handshake", "alice", seed="spring-course", base_dir="exercises")
    ws.folder            # exercises/handshake-alice/: client.pcap, server.pcap, worksheet.md,
                         # worksheet.html, worksheet.json, answers.toml (to fill in)
    load("exercises", "handshake", "alice", seed="spring-course").key()  # from the pcaps

`worksheet.json` holds what the run was (the student's values, addresses, the programs' events
as the worksheet shows them, the pcaps' SHA-256) and no answer: `key()` dissects the pcaps
every time. The file is sealed with an HMAC keyed by the course seed, so an edited worksheet,
a pcap that is not the one handed out, or another course's seed is refused by name.
A worksheet is made in a hidden folder beside its final place and renamed into place only
when whole: a failed or interrupted run leaves nothing, and an existing worksheet is never
overwritten.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socketlab import __version__
from socketlab.exercises.catalogue import get
from socketlab.exercises.model import (
    Answer,
    Exercise,
    ExerciseError,
    Material,
    Unanswerable,
    check_student,
    student_rng,
    visible,
)
from socketlab.observe.observation import Context
from socketlab.observe.pcap import read_pcap

MANIFEST = "worksheet.json"
FORMAT = 1
DEFAULT_SEED = "socketlab"  # a course should set its own (SOCKETLAB_COURSE_SEED)
HOSTS = ("client", "server")
ATTEMPTS = 2  # a run whose capture misses what a question needs is run once more


@dataclass(frozen=True)
class Worksheet:
    folder: Path
    exercise: Exercise
    student: str
    params: dict[str, Any]
    hosts: dict[str, str]
    port: int
    pcaps: dict[str, str]  # host -> SHA-256 of <host>.pcap
    events: dict[str, list[dict[str, Any]]]
    notes: tuple[str, ...] = ()
    created: str = ""
    _material: list[Material] = field(default_factory=list, compare=False, repr=False)

    def pcap(self, host: str) -> Path:
        return self.folder / f"{host}.pcap"

    def material(self) -> Material:
        if not self._material:
            self._material.append(Material(
                self.exercise.name, self.student, self.params, self.hosts, self.port,
                {h: read_pcap(self.pcap(h)) for h in self.pcaps}, self.events, self.notes))
        return self._material[0]

    def key(self) -> dict[str, Answer]:
        """Every question's answer, computed from this worksheet's own pcaps now."""
        m = self.material()
        return {q.id: q.solve(m) for q in self.exercise.questions}


def folder_for(base_dir: str | Path, exercise: str, student: str) -> Path:
    return Path(base_dir) / f"{exercise}-{student}"


def start(lab: Any, name: str, student: str, *, seed: str = DEFAULT_SEED,
          base_dir: str | Path = "exercises",
          progress: Callable[[str], None] = lambda _m: None, pdf: bool = False) -> Worksheet:
    """Run exercise `name` for `student` in the (running) lab and write the worksheet folder
    (with `pdf`, worksheet.pdf too, printed before the folder is renamed into place)."""
    exercise, student = get(name), check_student(student)
    final = folder_for(base_dir, name, student)
    if final.exists():
        raise ExerciseError(f"{final} already exists: a worksheet is never overwritten",
                            hint="hand out the one there, remove it first, or use another --dir")
    params = exercise.vary(student_rng(seed, name, student))
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        progress(f"{name} for {student}: {exercise.varies or 'the run'} of their own")
        for attempt in range(1, ATTEMPTS + 1):
            try:
                manifest = _record(lab, exercise, student, params, work, progress)
                ws = _worksheet(work, manifest)
                ws.key()  # every question is answered by this capture, or no worksheet
                break
            except Unanswerable as e:
                if attempt == ATTEMPTS:
                    raise
                progress(f"{name} for {student}: {e}; running it again")
        (work / MANIFEST).write_text(json.dumps({**manifest, "seal": seal(manifest, seed)},
                                                indent=1) + "\n")
        from socketlab.exercises.render import write_sheets

        write_sheets(ws)
        if pdf:
            from socketlab.exercises.render import write_pdf

            write_pdf(ws)
        shutil.rmtree(work / "run")
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _worksheet(final, manifest)


def _record(lab: Any, exercise: Exercise, student: str, params: dict[str, Any], work: Path,
            progress: Callable[[str], None]) -> dict[str, Any]:
    """One run of the exercise: its pcaps copied into `work`, the manifest (without seal)."""
    shutil.rmtree(work / "run", ignore_errors=True)
    rec = exercise.run(Context(lab, work / "run", progress), params)
    if rec.dropped:
        raise Unanswerable(f"tcpdump dropped {rec.dropped} packets: the capture is not whole")
    hashes = {}
    for host in HOSTS:
        shutil.copyfile(rec.pcaps[host], work / f"{host}.pcap")
        hashes[host] = sha256(work / f"{host}.pcap")
    cfg = lab.config
    return {"format": FORMAT, "exercise": exercise.name, "student": student, "params": params,
            "hosts": {"client": cfg.client_ip, "server": cfg.server_ip},
            "port": params.get("port", cfg.port), "pcaps": hashes,
            "events": visible(rec.events, exercise.hide), "notes": list(rec.notes),
            "created": _now(), "socketlab": __version__}


def load(base_dir: str | Path, name: str, student: str, *, seed: str = DEFAULT_SEED) -> Worksheet:
    """The worksheet of `student` for exercise `name`, checked: its seal, then its pcaps."""
    get(name)
    folder = folder_for(base_dir, name, check_student(student))
    path = folder / MANIFEST
    if not path.is_file():
        raise ExerciseError(f"no worksheet for {student} in {folder}",
                            hint=f"start it with `socketlab exercise start {name} --student "
                                 f"{student}`, or point --dir at the course's folder")
    try:
        manifest = json.loads(path.read_text())
        sealed = manifest.pop("seal")
    except (ValueError, KeyError, AttributeError):
        raise ExerciseError(f"{path} is not a worksheet socketlab wrote",
                            hint="use the teacher's copy of the worksheet folder") from None
    if not hmac.compare_digest(str(sealed), seal(manifest, seed)):
        raise ExerciseError(f"{path} does not match its seal: it was edited, or it was made "
                            "with another course seed",
                            hint="use the teacher's copy and the course's seed "
                                 "(--seed or SOCKETLAB_COURSE_SEED)")
    if (manifest.get("exercise"), manifest.get("student")) != (name, student):
        raise ExerciseError(f"{path} is {manifest.get('exercise')!r} for "
                            f"{manifest.get('student')!r}, not {name!r} for {student!r}")
    ws = _worksheet(folder, manifest)
    for host, digest in ws.pcaps.items():
        if not ws.pcap(host).is_file() or sha256(ws.pcap(host)) != digest:
            raise ExerciseError(f"{ws.pcap(host)} is not the capture handed out (its SHA-256 "
                                f"differs from {digest[:16]}... in the worksheet)",
                                hint="the answers are checked against the capture the worksheet "
                                     "names: restore the teacher's copy of the folder")
    return ws


def _worksheet(folder: Path, manifest: dict[str, Any]) -> Worksheet:
    return Worksheet(folder, get(manifest["exercise"]), manifest["student"], manifest["params"],
                     manifest["hosts"], int(manifest["port"]), manifest["pcaps"],
                     manifest["events"], tuple(manifest.get("notes", ())),
                     manifest.get("created", ""))


def seal(manifest: dict[str, Any], seed: str) -> str:
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(seed.encode(), body, hashlib.sha256).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def worksheets(base_dir: str | Path, name: str) -> list[str]:
    """The students with a worksheet for exercise `name` under base_dir."""
    prefix = f"{name}-"
    return sorted(p.name[len(prefix):] for p in Path(base_dir).glob(f"{name}-*")
                  if (p / MANIFEST).is_file())
