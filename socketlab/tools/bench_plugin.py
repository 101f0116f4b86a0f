"""`socketlab bench plugin`: what a test pays for its lab under the pytest plugin, beside a bare
container start measured in the same run (a testcontainers-style test's own floor).

    fresh lab     up + down of a lab of its own (the `lab` fixture without reuse)
    reset         a reused lab put back to its known state (reuse="module"/"session")
    recording     the whole-test capture of a passing test (started, then discarded in the
                  hosts) and of a failing one (pcaps copied out, ladder drawn)
    bare start    `docker run -d` of one container (the lab image, no network) + its removal

Taken in turn, round after round (a machine that slows in the middle weighs on all alike).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from socketlab.act.reset import mark, reset
from socketlab.lab.config import LabConfig
from socketlab.lab.lab import Lab
from socketlab.observe.wire import watching
from socketlab.tools.bench import Figure, bench_config, interleaved_medians


def plugin(config: LabConfig, *, repeat: int = 3,
           progress: Callable[[str], None] = lambda _m: None) -> list[Figure]:
    base = bench_config(config, "plugin")
    fresh_n = iter(range(10_000))

    def fresh() -> None:
        with Lab(base.with_(project=f"{base.project}-fresh{next(fresh_n)}",
                            subnet=base.subnet)):
            pass

    with Lab(base.with_(project=f"{base.project}-reused", subnet=base.subnet)) as lab, \
            tempfile.TemporaryDirectory(prefix="socketlab-bench-") as tmp:
        client = lab.client
        mark(lab)

        def bare() -> None:
            c = client.containers.run(config.image, ["sleep", "infinity"], detach=True,
                                      network_mode="none", init=True,
                                      labels={"io.socketlab.bench": "bare"})
            c.remove(force=True)

        def recording(failed: bool) -> Callable[[], None]:
            def record() -> None:
                with watching(lab, tmp, name="whole-test", counters=False,
                              keep=lambda: failed):
                    lab.exec("client", ["ping", "-c", "1", "-W", "1", lab.config.server_ip])
            return record

        progress(f"measuring {repeat} rounds: fresh lab, bare container, reset, recording")
        medians = interleaved_medians({
            "fresh": fresh, "bare": bare, "reset": lambda: reset(lab),
            "passing": recording(False), "failing": recording(True),
            "exchange": lambda: lab.exec("client", ["ping", "-c", "1", "-W", "1",
                                                    lab.config.server_ip]),
        }, repeat)
    ratio = medians["fresh"] / medians["bare"]
    passing = medians["passing"] - medians["exchange"]
    failing = medians["failing"] - medians["exchange"]
    return [
        Figure("bare container start + removal (docker run -d, no network)", medians["bare"], "s"),
        Figure("fresh lab per test (up + down, 2 hosts)", medians["fresh"], "s"),
        Figure("fresh lab / bare container", ratio, "x", "<= 2", ratio <= 2),
        Figure("reused lab: reset before a test", medians["reset"], "s", "< 0.5",
               medians["reset"] < 0.5),
        Figure("recording a passing test (capture started, discarded)", passing, "s", "< 0.3",
               passing < 0.3),
        Figure("recording a failing test (pcaps copied, ladder drawn)", failing, "s"),
        Figure("medians of", float(repeat), "rounds"),
    ]
