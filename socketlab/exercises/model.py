"""What an exercise is: questions whose answers are computed from a student's own capture.

An `Exercise` varies its run per student (`vary`, from a random generator seeded by the course
seed and the student's id), runs it in the lab (`run`: the experiments' machinery, Capture and
run_pair), and asks `Question`s. A question's `solve` reads the `Material` of one worksheet (its
pcaps, dissected by socketlab.observe, and what the programs printed) and returns the `Answer`
with the packet that decides it: nothing is stored in advance, the key is recomputed from the
capture every time. `Answer.accept` holds the other spellings Wireshark also shows (relative
and absolute sequence numbers, offsets in bytes or in 8-byte units).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from socketlab.act.programs import PairRun
from socketlab.errors import ConfigError, LabError, ProgramFailed
from socketlab.observe.capture import Capture, default_filter
from socketlab.observe.observation import Context, events_of
from socketlab.observe.pcap import Pkt

T = TypeVar("T")

Kind = Literal["int", "frame", "num", "text", "yesno", "ints", "choice"]
KIND_WORDS = {"int": "a whole number", "frame": "a frame number", "num": "a number",
              "text": "text, in quotes", "yesno": "yes or no",
              "ints": "a list of whole numbers, e.g. [1, 2]", "choice": "one letter"}
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class ExerciseError(ConfigError):
    """A worksheet, an answers file or a request that cannot be used; nothing was changed."""


class Unanswerable(LabError):
    """The capture lacks what a question needs (a packet missed, a program that failed)."""

    hint = "start the exercise again for this student: the run did not show what it asks about"


@dataclass(frozen=True)
class Material:
    """One worksheet's evidence: the pcaps dissected, the programs' events, the run's values."""

    exercise: str
    student: str
    params: Mapping[str, Any]
    hosts: Mapping[str, str]  # host name -> address
    port: int
    pcaps: Mapping[str, list[Pkt]]  # host name -> packets of <host>.pcap
    events: Mapping[str, list[dict[str, Any]]]  # host name -> events (as the worksheet shows)
    notes: tuple[str, ...] = ()  # what else the run did (shaping), as the worksheet says it

    def frame(self, host: str, pkt: Pkt) -> str:
        """How the worksheet names a packet: its frame number as Wireshark counts them."""
        return f"frame {pkt.index + 1} of {host}.pcap"

    def frames(self, host: str, pkts: Sequence[Pkt], most: int = 8) -> str:
        numbers = [str(p.index + 1) for p in pkts]
        shown = ", ".join(numbers[:most]) + (", ..." if len(numbers) > most else "")
        return f"frame{'s' if len(numbers) != 1 else ''} {shown} of {host}.pcap"

    def sent_by(self, host: str, src: str, proto: str | None = None) -> list[Pkt]:
        """Packets in `host`'s capture whose source is host `src`."""
        ip = self.hosts[src]
        return [p for p in self.pcaps[host] if p.src == ip and (proto is None or p.proto == proto)]

    def event(self, host: str, name: str, nth: int = 1) -> dict[str, Any]:
        found = [e for e in self.events.get(host, []) if e["event"] == name]
        if len(found) < nth:
            raise Unanswerable(f"the {host}'s program printed {len(found)} `{name}` events, "
                               f"the question needs #{nth}")
        return found[nth - 1]

    def all_events(self, host: str, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events.get(host, []) if e["event"] == name]


@dataclass(frozen=True)
class Answer:
    value: Any  # int, float (ms), str, bool, list[int] or a letter
    evidence: str  # the deciding packet(s) and how the value follows from them
    accept: tuple[Any, ...] = ()  # other right spellings (relative numbers, 8-byte units)
    near: tuple[tuple[Any, str], ...] = ()  # wrong, but a known slip: (value, what it is)


@dataclass(frozen=True)
class Question:
    id: str  # "q1"
    text: str  # may name the run's values: {bufsize}, {port}, ... from Material.params
    kind: Kind
    solve: Callable[[Material], Answer]
    choices: Mapping[str, str] = field(default_factory=dict)  # letter -> text, for "choice"
    unit: str = ""  # "num": what the number counts ("ms", "%")
    tolerance: float = 0.2  # "num": right within this many units, or within tolerance_pct %
    tolerance_pct: float = 2.0

    def within(self, value: float) -> float:
        """How far from `value` a "num" answer may be and still be right."""
        return max(self.tolerance, abs(value) * self.tolerance_pct / 100)

    def ask(self, params: Mapping[str, Any]) -> str:
        return self.text.format(**params)


@dataclass(frozen=True)
class Exercise:
    name: str  # "handshake"
    title: str
    intro: str  # what the run did and what the student is to find, in a paragraph
    vary: Callable[[random.Random], dict[str, Any]]  # the student's run values
    run: Callable[[Context, Mapping[str, Any]], Recording]
    questions: tuple[Question, ...]
    hide: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # event -> fields withheld
    varies: str = ""  # what differs between students, in a few words (for `exercise list`)

    def question(self, qid: str) -> Question | None:
        return next((q for q in self.questions if q.id == qid), None)


@dataclass(frozen=True)
class Recording:
    """What one run left: the pcaps (host -> path), the programs' events, notes on the run."""

    pcaps: Mapping[str, str]
    events: Mapping[str, list[dict[str, Any]]]
    notes: tuple[str, ...] = ()
    dropped: int = 0  # packets tcpdump itself dropped (a worksheet needs whole captures)


def questions(*specs: tuple) -> tuple[Question, ...]:
    """Questions numbered q1, q2, ... in order: each spec is (text, kind, solve[, options])."""
    out = []
    for i, spec in enumerate(specs, 1):
        text, kind, solve, *rest = spec
        out.append(Question(f"q{i}", text, kind, solve, **(rest[0] if rest else {})))
    return tuple(out)


def record(ctx: Context, action: Callable[[], PairRun], name: str, port: int,
           **capture: Any) -> Recording:
    """Run `action` (a pair of programs) under a capture on both hosts, as the experiments do
    (no counters: no question reads them, and each snapshot costs an exec per host); a program
    that failed is a failed run, not a worksheet."""
    hosts = ctx.lab.topology.names  # the post's two hosts
    ctx.progress(f"{name}: capturing on {', '.join(hosts)}")
    with Capture(ctx.lab, hosts, ctx.run_dir, name=name, bpf=default_filter(port),
                 **capture) as cap:
        run = action()
    if not run.ok:
        error = run.error()
        what = error.raw if error else f"exit {run.client_exit} (client), {run.server_exit} (server)"
        raise ProgramFailed(f"the exercise's programs failed: {what}",
                            hint="see `socketlab doctor`, then start the exercise again")
    return Recording({h: str(cap.result[h].pcap) for h in hosts}, events_of(run), (),
                     cap.result.dropped)


def check_student(student: str) -> str:
    if not isinstance(student, str) or not STUDENT_ID.fullmatch(student):
        raise ExerciseError(f"student id {student!r} cannot name a worksheet",
                            hint="use 1-64 letters, digits, '.', '_', '@' or '-', starting with "
                                 "a letter or digit")
    return student


def student_rng(seed: str, exercise: str, student: str) -> random.Random:
    """The one source of a student's variation: the course seed, the exercise, the student."""
    digest = hmac.new(seed.encode(), f"{exercise}\0{student}".encode(), hashlib.sha256).digest()
    return random.Random(int.from_bytes(digest, "big"))


def words(rng: random.Random, count: int) -> str:
    """A short message of `count` words, different per student, printable in any capture."""
    pool = ("amber", "basil", "cedar", "delta", "ember", "fjord", "gale", "harbor", "iris",
            "juniper", "kelp", "lumen", "maple", "nova", "opal", "pine", "quartz", "river",
            "sage", "tide", "umber", "vale", "willow", "xenon", "yarrow", "zephyr")
    return ",".join(rng.choice(pool) for _ in range(count))


def seq_answer(m: Material, host: str, pkt: Pkt, value: int, relative: int, what: str
               ) -> Answer:
    """A sequence or acknowledgement number where the question says "raw or relative": both
    right (the sheet's one rule: a question that names one form wants that form only)."""
    return Answer(value, f"{m.frame(host, pkt)} ({what}) carries {value} (relative {relative})",
                  (relative,))


def ms_between(t0: float, t1: float) -> float:
    return round((t1 - t0) * 1e3, 3)


def only(pkts: Sequence[T], what: str) -> T:
    if not pkts:
        raise Unanswerable(f"the capture has no {what}")
    return pkts[0]


def visible(events: Mapping[str, list[dict[str, Any]]], hide: Mapping[str, tuple[str, ...]]
            ) -> dict[str, list[dict[str, Any]]]:
    """The events as the worksheet shows them: the fields a question asks about withheld."""
    return {host: [{k: v for k, v in e.items() if k not in hide.get(e["event"], ())}
                   for e in evs] for host, evs in events.items()}
