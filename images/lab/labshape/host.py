"""Apply, clear and show a host's shaping, remembering what is in place (paths.state):
an apply that fails half-way puts back what was there; a bounded one (`for_s`) reverts
by itself, from a timer process of its own in the host."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import time

from . import paths
from .backends import DEV, IFB, build_plan, choose_backend, clear_plan
from .backends.engine import CHAINS
from .backends.tc import FRAME
from .faults import fault_text
from .pidfiles import live_pid
from .spec import DEFAULT_LIMIT, DIRECTIONS, Impairment, parse
from .steps import Runner, run_plan, run_step

MAX_FOR_S = 7 * 86400


class ApplyFailed(RuntimeError):
    """A step of an apply failed; what was there before has been put back."""


def run_clear(direction: str, dev: str = DEV, run: Runner = run_step) -> None:
    """Remove the direction's shaping, its timer and its state (absent parts are fine)."""
    for argv in clear_plan(direction, dev):
        run(argv)
    _remove(paths.state(direction))


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def read_state(direction: str) -> dict | None:
    try:
        with open(paths.state(direction)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_state(direction: str, imp: Impairment, backend: str, until: float | None = None,
                token: str | None = None) -> None:
    os.makedirs(paths.RUN_DIR, exist_ok=True)
    state: dict = {"spec": imp.to_spec(), "faults": list(imp.faults), "backend": backend}
    if until is not None:
        state |= {"until": until, "token": token}
    with open(paths.state(direction), "w") as f:
        json.dump(state, f)


def apply(imp: Impairment, direction: str, backend: str, caps: frozenset[str], dev: str = DEV,
          run: Runner = run_step, *, for_s: float | None = None, token: str | None = None) -> str:
    """Replace the direction's shaping by `imp`; the backend used. On a failing step, what was
    there before is put back and ApplyFailed says which step failed and why. With `for_s`, a
    timer in the host clears it after that many seconds (unless it was replaced meanwhile)."""
    chosen = choose_backend(imp, direction, backend, caps)
    plan = build_plan(imp, direction, chosen, dev, caps)
    if for_s is not None:
        token = token or secrets.token_hex(6)
        plan += timer_steps(direction, dev, for_s, token)
    previous = read_state(direction)
    run_clear(direction, dev, run)
    # written first: a half-done apply is never shown as "not shaped", and the timer finds it
    write_state(direction, imp, chosen, *((time.time() + for_s, token) if for_s is not None else ()))
    failed = run_plan(plan, run)
    if failed is None:
        return chosen
    run_clear(direction, dev, run)
    restored = _restore(previous, direction, caps, dev, run)
    last = failed.output.splitlines()[-1] if failed.output else f"exit code {failed.code}"
    raise ApplyFailed(f"step `{' '.join(failed.argv)}` failed: {last}; {restored}")


def _restore(previous: dict | None, direction: str, caps: frozenset[str], dev: str,
             run: Runner) -> str:
    if not previous:
        return f"{direction} is left unshaped, as it was"
    imp = parse(previous["spec"], previous.get("faults", ()))
    until = previous.get("until")
    left = until - time.time() if until else None
    if left is not None and left <= 0:
        return f"{direction} is left unshaped: the previous shaping's time was up"
    plan = build_plan(imp, direction, previous["backend"], dev, caps)
    if left is not None:
        plan += timer_steps(direction, dev, left, previous["token"])
    write_state(direction, imp, previous["backend"], until, previous.get("token"))
    if run_plan(plan, run) is None:
        return f"the previous {direction} shaping ({previous['spec']}) is back"
    run_clear(direction, dev, run)
    return f"the previous {direction} shaping could not be restored either: {direction} is unshaped"


# -- bounded shaping: a timer in the host reverts it ----------------------------------------------
def timer_steps(direction: str, dev: str, seconds: float, token: str) -> list[list[str]]:
    """Start the timer in its own session (it outlives lab-shape), then wait until it runs."""
    return [["mkdir", "-p", paths.RUN_DIR],
            ["setsid", "-f", "lab-shape", "expire", "--dir", direction, "--dev", dev,
             "--after", f"{seconds:.3f}", "--token", token],
            ["lab-shape", "wait-pidfile", paths.timer_pidfile(direction)]]


def expire(direction: str, dev: str, after: float, token: str, run: Runner = run_step) -> bool:
    """The timer: sleep `after` seconds, then clear the direction if its shaping is still the
    one that started this timer (the token). True when it cleared."""
    with open(paths.timer_pidfile(direction), "w") as f:
        f.write(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: _stop_timer(direction))
    time.sleep(max(0.0, after))
    state = read_state(direction)
    _remove(paths.timer_pidfile(direction))  # run_clear must not stop this very process
    if not state or state.get("token") != token:
        return False
    run_clear(direction, dev, run)
    return True


def _stop_timer(direction: str) -> None:
    _remove(paths.timer_pidfile(direction))
    raise SystemExit(0)


def wait_reverted(direction: str, token: str, timeout: float) -> str:
    """"reverted" once the shaping with `token` is gone, "replaced" if another took its
    place, "timeout" if it is still there after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(direction)
        if state is None:
            return "reverted"
        if state.get("token") != token:
            return "replaced"
        time.sleep(0.1)
    return "timeout"


# -- drain: let what the shaper holds leave, then clear --------------------------------------------
def holding_s(state: dict) -> float:
    """How long the shaping in `state` may hold a packet, at most (delay, jitter, fault
    delays; a rate's full queue), bounded to a minute."""
    imp = parse(state["spec"], state.get("faults", ()))
    held_ms = imp.delay_ms + imp.jitter_ms + sum(f.get("ms", 0) for f in imp.faults)
    if imp.rate_bit:
        held_ms += (imp.limit or DEFAULT_LIMIT) * FRAME * 8 / imp.rate_bit * 1000
    return min(60.0, held_ms / 1000)


def drain(dev: str = DEV, run: Runner = run_step, sleep=time.sleep) -> float:
    """Wait as long as the shaping in place may hold a packet (plus 0.2 s), then clear both
    directions: the last packets of a program that has ended still leave. The seconds waited."""
    states = [s for s in (read_state(d) for d in DIRECTIONS) if s]
    wait = max((holding_s(s) for s in states), default=0.0) + (0.2 if states else 0.0)
    sleep(wait)
    for direction in DIRECTIONS:
        run_clear(direction, dev, run)
    return wait


# -- show ---------------------------------------------------------------------------------------
def show(dev: str = DEV, run: Runner = run_step) -> str:
    parts = []
    for direction in DIRECTIONS:
        state = read_state(direction)
        parts.append(f"{direction}: " + (describe_state(state) if state else "not shaped"))
    commands = [["tc", "-s", "qdisc", "show", "dev", dev], ["tc", "-s", "qdisc", "show", "dev", IFB],
                *[["iptables", "-t", "mangle", "-L", c, "-v", "-n", "-x"] for c in CHAINS.values()]]
    for argv in commands:
        result = run(argv)
        if result.code == 0 and result.output:
            parts.append(f"$ {' '.join(argv)}\n{result.output}")
    for direction in DIRECTIONS:
        pid = live_pid(paths.pidfile(direction))
        if pid:
            parts.append(f"lab-nfq queue {paths.QUEUES[direction]}: running (pid {pid})")
        parts += _fired_faults(direction)
    return "\n".join(parts)


def describe_state(state: dict, now: float | None = None) -> str:
    words = [state["spec"]] if state.get("spec") else []
    words += [f"fault {fault_text(f)}" for f in state.get("faults") or []]
    text = f"{'; '.join(words) or 'nothing'} (backend {state['backend']})"
    if state.get("until"):
        left = max(0.0, state["until"] - (time.time() if now is None else now))
        text += f", reverts by itself in {left:.0f} s"
    return text


def _fired_faults(direction: str, most: int = 20) -> list[str]:
    """The faults lab-nfq logged as fired in this direction (the last `most`)."""
    try:
        with open(paths.nfq_log(direction)) as f:
            fired = [json.loads(line) for line in f if '"event": "fault"' in line]
    except (OSError, ValueError):
        return []
    lines = [f"fault fired ({direction}): {e.get('action')} {e.get('proto')} "
             f"{e.get('src')}:{e.get('sport')} > {e.get('dst')}:{e.get('dport')} "
             f"flags={e.get('flags') or '-'} len={e.get('len')} #{e.get('ordinal')}"
             for e in fired][-most:]
    return lines
