"""Shaping: delay, loss, duplication, reordering, corruption and rate on a lab host's link.

    shape(lab, "client", "delay 100ms 10ms loss 5%")             # what leaves the client
    shape(lab, "server", "rate 1mbit limit 50", "ingress")       # what arrives at the server
    done = shape(lab, "client", "loss 5%", for_s=30)             # reverts by itself in 30 s
    wait_reverted(lab, done)                                     # "reverted", when it has
    print(show(lab, "client")); state(lab, "client"); clear(lab, "client")
    with shaped(lab, "server", faults=["drop tcp flags=SA nth=1"]) as rec:
        ...                                                      # cleared on the way out;
    rec["nfq_faults"]                                            # the faults that fired

The work is done in the host by `lab-shape` (images/lab/bin), with netem where the kernel
has it and iptables + NFQUEUE + tbf where it does not. This side loads the very same
package (images/lab/labshape) to parse and validate a spec before anything is touched, so
a bad spec is refused here with the message the host would give, and nothing is applied.
A SIGINT or SIGTERM while the host applies or clears waits until it is done (the host's
step is whole either way), then is raised as Interrupted saying what is in place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from socketlab.errors import ConfigError, LabError
from socketlab.lab import signals
from socketlab.lab.lab import Lab
from socketlab.lab.process import PlacedHosts
from socketlab.lab.shapespec import labshape

DIRECTIONS = ("egress", "ingress")
BACKENDS = ("auto", "netem", "engine")
EXIT_REFUSED = 2  # lab-shape's exit code for a spec or backend it cannot honour
MAX_FOR_S = 7 * 86400
NFQ_LOG = "/run/socketlab/nfq-{queue}.log"  # lab-nfq's JSON lines in the host
STATE_FILE = "/run/socketlab/shape-{direction}.json"  # what lab-shape applied (labshape.paths.state)


class ShapeFailed(LabError):
    """A step of the shaping failed in the host; what was there before has been put back."""

    hint = "see `socketlab shape HOST --show`, and `socketlab shape HOST --backends`"


@dataclass(frozen=True)
class Shaped:
    host: str
    direction: str
    spec: str
    backend: str
    for_s: float | None = None  # a bounded shaping: the host reverts it after this long
    token: str = ""             # names a bounded shaping (wait_reverted follows it)

    def describe(self) -> str:
        bounded = f", for {self.for_s:g} s" if self.for_s is not None else ""
        return f"{self.host} {self.direction}: {self.spec or 'faults only'} (backend {self.backend}{bounded})"


def parse(spec: str, faults: list | None = None) -> Any:
    """A spec (and faults: lab-nfq's dicts, or their compact form "drop tcp flags=SA nth=1")
    -> labshape's Impairment; ConfigError (one line) if it is not valid."""
    ls = labshape()
    faults = [parse_fault(f) if isinstance(f, str) else f for f in faults or ()]
    try:
        return ls.parse(spec, faults)
    except ls.ShapeError as e:
        raise ConfigError(str(e), hint="e.g. `delay 100ms 10ms loss 5% rate 1mbit`") from None


def check_request(host: str, direction: str | None, backend: str = "auto",
                  lab: PlacedHosts | None = None) -> None:
    """The request is one the lab can do (the host is one of its hosts: asked of its topology)."""
    if lab is not None:
        lab.topology.host(host)  # UnknownHost names the lab's hosts
    if direction is not None and direction not in DIRECTIONS:
        raise ConfigError(f"unknown direction {direction!r}", hint="use egress or ingress")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")


def parse_duration(text: str) -> float:
    """'30s', '2min' is not a unit, '500ms' -> seconds; ConfigError (one line) if not valid."""
    ls = labshape()
    try:
        seconds = ls.parse_time(text, "--for") / 1000
    except ls.ShapeError as e:
        raise ConfigError(str(e), hint="e.g. --for 30s") from None
    if not 0.1 <= seconds <= MAX_FOR_S:
        raise ConfigError(f"--for {text} is out of range: use 100ms-7d", hint="e.g. --for 30s")
    return seconds


def apply_argv(impairment: Any, direction: str, backend: str, for_s: float | None = None,
               token: str = "") -> list[str]:
    """The command run in the host (pure): the spec in its canonical spelling."""
    argv = ["lab-shape", "apply", "--dir", direction, "--backend", backend]
    if impairment.faults:
        argv += ["--faults", json.dumps(list(impairment.faults))]
    if for_s is not None:
        argv += ["--for", f"{for_s * 1000:.0f}ms", "--token", token]
    return [*argv, impairment.to_spec()]


def shape(lab: PlacedHosts, host: str, spec: str | Any, direction: str = "egress",
          backend: str = "auto", *, faults: list | None = None, for_s: float | None = None) -> Shaped:
    """Replace `host`'s shaping of `direction` by `spec` (text or an Impairment); with
    `for_s`, a timer in the host reverts it after that many seconds (whatever this side does).

    Everything is validated first; in the host, a step that fails puts back what was
    there (ShapeFailed), a parameter no backend there can honour is refused (LabError: the
    value is good, this host cannot serve it)."""
    check_request(host, direction, backend, lab)
    impairment = parse(spec, faults) if isinstance(spec, str) else spec
    if faults and not isinstance(spec, str):
        impairment = parse(impairment.to_spec(), faults)
    import secrets  # here: only a bounded shaping needs a token

    token = secrets.token_hex(6) if for_s is not None else ""
    argv = apply_argv(impairment, direction, backend, for_s, token)
    with signals.deferred(raise_after=False) as held:  # the host's apply is whole either way
        result = lab.exec(host, argv, timeout=60, instruments=True)
    if result.exit_code != 0:
        message = _last_line(result.stderr or result.stdout).removeprefix("lab-shape: ")
        if held:
            raise signals.Interrupted(f"{host} {direction}: nothing changed ({message})")
        if result.exit_code == EXIT_REFUSED:
            raise LabError(f"{host}: {message}", hint="see `socketlab shape HOST --backends`")
        raise ShapeFailed(f"{host}: {message}")
    done = Shaped(host, direction, impairment.to_spec(), _backend_of(result.stdout, backend), for_s, token)
    if held:
        raise signals.Interrupted(f"the shaping was finished first and is in place: {done.describe()}; "
                                  f"`socketlab shape {host} --clear` removes it")
    return done


def wait_reverted(lab: PlacedHosts, done: Shaped, *, slack: float = 15.0) -> str:
    """Wait until the host has reverted a bounded shaping: "reverted", or "replaced" (another
    shaping took its place first), or "still there" (not gone `slack` s after its time)."""
    if done.for_s is None:
        raise ConfigError("this shaping is not bounded in time", hint="shape it with for_s")
    argv = ["lab-shape", "wait-reverted", "--dir", done.direction, "--token", done.token,
            "--timeout", f"{done.for_s + slack:g}"]
    result = lab.exec(done.host, argv, timeout=done.for_s + slack + 10, instruments=True)
    return {0: "reverted", 3: "replaced"}.get(result.exit_code, "still there")


def state(lab: Lab, host: str) -> dict[str, dict | None]:
    """What is in place in the host, per direction: {"spec", "faults", "backend"[, "until"]}
    or None (not shaped)."""
    check_request(host, None, lab=lab)
    text = _run(lab, host, ["lab-shape", "show", "--json"])
    try:
        found = json.loads(text or "{}")
        return {d: found.get(d) for d in DIRECTIONS}
    except (ValueError, AttributeError):
        raise ShapeFailed(f"{host}: `lab-shape show --json` said {_last_line(text)!r}") from None


def shaped_now(lab: Lab) -> dict[str, dict[str, dict | None]]:
    """Every host's shaping as it is now: host -> what state(lab, host) says, read from
    lab-shape's state files, all hosts at once. No process starts in a host for it (a file
    that is not there costs the engine about 2 ms), so a run can ask before every exchange."""
    from socketlab.meanwhile import Meanwhile

    def ask(host: str) -> Meanwhile[dict[str, dict | None]]:
        return Meanwhile(lambda: read_states(lambda path: lab.read_file(host, path,
                                                                       instruments=True)))

    asking = {host: ask(host) for host in lab.topology.names}
    return {host: question.answer() for host, question in asking.items()}


def read_states(read: Callable[[str], bytes | None]) -> dict[str, dict | None]:
    """What is in place per direction, from lab-shape's state files as `read(path)` gets them
    out of the host (None: no such file)."""
    return {d: parse_state(read(STATE_FILE.format(direction=d))) for d in DIRECTIONS}


def parse_state(raw: bytes | None) -> dict | None:
    """A state file's content as lab-shape reads it (pure): None when absent or unreadable."""
    try:
        found = json.loads(raw) if raw else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def shaped_lines(found: dict[str, dict[str, dict | None]]) -> list[str]:
    """shaped_now's answer as lines (pure): empty when nothing is shaped."""
    return [line for host, st in found.items() for line in describe_state(host, st)]


def describe_state(host: str, found: dict[str, dict | None]) -> list[str]:
    """One line per shaped direction (pure), e.g. "client egress: delay 100ms (backend engine)"."""
    lines = []
    for direction, st in found.items():
        if st:
            words = [st.get("spec") or ""] + [f"fault {labshape().fault_text(f)}"
                                              for f in st.get("faults") or []]
            lines.append(f"{host} {direction}: {'; '.join(w for w in words if w)} (backend {st['backend']})")
    return lines


def _backend_of(output: str, default: str) -> str:
    """lab-shape prints `DIR: SPEC (backend NAME)`."""
    if "(backend " not in output:
        return default
    return output.rsplit("(backend ", 1)[1].split(")", 1)[0]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _run(lab: PlacedHosts, host: str, argv: list[str]) -> str:
    result = lab.exec(host, argv, timeout=60, instruments=True)
    if result.exit_code != 0:
        raise ShapeFailed(f"{host}: `{' '.join(argv)}` failed: {_last_line(result.stderr or result.stdout)}")
    return result.stdout


def clear(lab: PlacedHosts, host: str, direction: str | None = None) -> None:
    """Remove the host's shaping (both directions by default): qdiscs, ifb, rules, lab-nfq."""
    check_request(host, direction, lab=lab)
    with signals.deferred(raise_after=False) as held:  # the host's clear is whole either way
        _run(lab, host, ["lab-shape", "clear", *(["--dir", direction] if direction else [])])
    if held:
        raise signals.Interrupted(f"{host}: the shaping ({direction or 'both directions'}) was "
                                  f"cleared first (`socketlab shape {host} --show` shows the host)")


@contextmanager
def shaped(lab: Lab, host: str, spec: str = "", direction: str = "egress", *,
           faults: list | None = None, backend: str = "auto",
           progress: Callable[[str], None] = lambda _msg: None) -> Iterator[dict[str, Any]]:
    """Shape `host` for the block; cleared in `finally`. The record it yields gets, on the way
    out, lab-nfq's log of this shaping (`nfq_faults`: the faults that fired, `nfq_losses`: the
    packets lost at random, `nfq_summary`)
    and `left`: what `lab-shape show` still reports after the clear (empty: nothing)."""
    check_request(host, direction, backend, lab)  # refused before anything is touched,
    impairment = parse(spec, faults)               # the host's shaping as it was included
    record: dict[str, Any] = {"host": host, "direction": direction, "spec": spec,
                              "faults": list(impairment.faults), "backend": None}
    try:
        done = shape(lab, host, impairment, direction, backend)
        record["backend"] = done.backend
        progress(f"{host} {direction}: {spec or 'faults only'} (backend {done.backend})")
        yield record
    finally:
        clear(lab, host)
        log = lab.exec(host, ["sh", "-c", f"cat {NFQ_LOG.format(queue=0)} 2>/dev/null"],
                       timeout=10, instruments=True).stdout
        record.update(nfq_records(log))
        record["left"] = shaping_left(show(lab, host))


def nfq_records(log: str) -> dict[str, Any]:
    """lab-nfq's JSON lines since its last start (pure): the faults that fired, the packets
    it lost at random, its summary."""
    lines = []
    for text in log.splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    starts = [i for i, r in enumerate(lines) if r.get("event") == "start"]
    mine = lines[starts[-1]:] if starts else []
    summary = next((r for r in reversed(mine) if r.get("event") == "summary"), None)
    return {"nfq_faults": [r for r in mine if r.get("event") == "fault"],
            "nfq_losses": [r for r in mine if r.get("event") == "loss"],
            "nfq_summary": summary}


def shaping_left(show: str) -> list[str]:
    """What `lab-shape show` still reports after a clear (pure; empty: nothing is left)."""
    left = [line for line in show.splitlines()
            if line.startswith(("egress:", "ingress:")) and "not shaped" not in line]
    left += [line for line in show.splitlines()
             if line.startswith("lab-nfq queue") or "SOCKETLAB-" in line
             or line.startswith(("qdisc htb", "qdisc tbf", "qdisc netem"))]
    return left


def show(lab: PlacedHosts, host: str) -> str:
    """What is in place in the host, with tc's and iptables' counters."""
    check_request(host, None, lab=lab)
    return _run(lab, host, ["lab-shape", "show"])


def backends(lab: PlacedHosts, host: str) -> str:
    """Which backend can serve which parameter in that host (probed there, for real)."""
    check_request(host, None, lab=lab)
    return _run(lab, host, ["lab-shape", "backends"])


def plan(lab: PlacedHosts, host: str, spec: str, direction: str = "egress", backend: str = "auto",
         faults: list | None = None) -> str:
    """The commands an apply would run in the host (nothing is changed)."""
    check_request(host, direction, backend, lab)
    impairment = parse(spec, faults)
    argv = apply_argv(impairment, direction, backend)
    return _run(lab, host, ["lab-shape", "plan", *argv[2:]])


# -- packet-exact faults: the compact syntax is labshape's (faults.parse_fault_text) -----------
def parse_fault(text: str) -> dict:
    """`ACTION [TIME] [PROTO] [KEY=VALUE ...]` -> the fault dict lab-nfq takes; ConfigError.

    "drop tcp flags=SA nth=1" -> {"match": {"proto": "tcp", "flags": "SA", "nth": 1},
    "action": "drop"}."""
    ls = labshape()
    try:
        return ls.parse_fault_text(text)
    except ls.ShapeError as e:
        raise ConfigError(str(e), hint=ls.faults.FAULT_EXAMPLES) from None
