"""`socketlab bench plugin`: what a test pays for its lab under the pytest plugin, beside a bare
container start measured in the same run (a testcontainers-style test's own floor).

    fresh lab     up + down of a lab of its own (the `lab` fixture without reuse)
    reset         a reused lab put back to its known state (reuse="module"/"session")
    recording     the whole-test capture of a passing test (started, then discarded in the
                  hosts) and of a failing one (pcaps copied out, ladder drawn)
    bare start    `docker run -d` of one container (the lab image, no network) + its removal
    bare pair     an internal network and two such containers on it, made and removed (a lab's
                  parts without the lab: its seal, routes, readiness, labels)

Taken in turn, round after round (a machine that slows in the middle weighs on all alike).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from socketlab.act.reset import mark, reset
from socketlab.lab.config import LabConfig
from socketlab.lab.lab import Lab
from socketlab.observe.wire import Tap, watching
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
        tap = Tap(lab, Path(tmp) / "tap")  # a shared lab's own capture, as the plugin starts it
        mark(lab)  # after the tap: the resets leave it running

        def bare() -> None:
            c = client.containers.run(config.image, ["sleep", "infinity"], detach=True,
                                      network_mode="none", init=True,
                                      labels={"io.socketlab.bench": "bare"})
            c.remove(force=True)

        def bare_pair() -> None:  # the same two containers a lab has, on a network of their own
            from socketlab.lab.subnets import claim_subnet

            with claim_subnet(client) as subnet:  # as a lab's: never a subnet another one took
                from docker.types import IPAMConfig, IPAMPool

                ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)])
                net = client.networks.create(f"{base.project}-bare", internal=True, ipam=ipam,
                                             labels={"io.socketlab.bench": "bare"})
            try:
                made = [client.containers.run(config.image, ["sleep", "infinity"], detach=True,
                                              network=net.name, init=True,
                                              labels={"io.socketlab.bench": "bare"})
                        for _ in range(2)]
                for c in made:
                    c.remove(force=True)
            finally:
                net.remove()

        def recording(failed: bool) -> Callable[[], None]:
            def record() -> None:
                with watching(lab, tmp, name="whole-test", counters=False,
                              keep=lambda: failed):
                    lab.exec("client", ["ping", "-c", "1", "-W", "1", lab.config.server_ip])
            return record

        def shared(failed: bool) -> Callable[[], None]:
            def record() -> None:
                with tap.window(Path(tmp), "whole-test", keep=lambda: failed):
                    lab.exec("client", ["ping", "-c", "1", "-W", "1", lab.config.server_ip])
            return record

        progress(f"measuring {repeat} rounds: fresh lab, bare container, reset, recording")
        medians = interleaved_medians({
            "fresh": fresh, "bare": bare, "pair": bare_pair, "reset": lambda: reset(lab),
            "passing": recording(False), "failing": recording(True),
            "shared passing": shared(False), "shared failing": shared(True),
            "exchange": lambda: lab.exec("client", ["ping", "-c", "1", "-W", "1",
                                                    lab.config.server_ip]),
        }, repeat)
        tap.close()
    ratio = medians["fresh"] / medians["bare"]
    passing = medians["passing"] - medians["exchange"]
    failing = medians["failing"] - medians["exchange"]
    return [
        Figure("bare container start + removal (docker run -d, no network)", medians["bare"], "s"),
        Figure("bare network + 2 containers + removal (what a lab is made of)", medians["pair"],
               "s"),
        Figure("fresh lab per test (up + down, 2 hosts)", medians["fresh"], "s"),
        Figure("fresh lab / bare container", ratio, "x", "<= 2", ratio <= 2),
        Figure("fresh lab / bare network + 2 containers", medians["fresh"] / medians["pair"], "x"),
        Figure("reused lab: reset before a test", medians["reset"], "s", "< 0.5",
               medians["reset"] < 0.5),
        Figure("recording a passing test (capture started, discarded)", passing, "s", "< 0.3",
               passing < 0.3),
        Figure("recording a failing test (pcaps copied, ladder drawn)", failing, "s"),
        Figure("reused lab: recording a passing test (its share of the lab's capture)",
               medians["shared passing"] - medians["exchange"], "s", "< 0.3",
               medians["shared passing"] - medians["exchange"] < 0.3),
        Figure("reused lab: recording a failing test (its share cut out, ladder drawn)",
               medians["shared failing"] - medians["exchange"], "s"),
        Figure("medians of", float(repeat), "rounds"),
    ]
