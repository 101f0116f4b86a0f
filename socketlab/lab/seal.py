"""The seal as seen from outside a host: asked of each host's lab-seal (`lab-seal --check`,
through the engine's exec, as root beside the host's programs), never taken on trust.

`up` requires every host sealed before it says the lab is up; `status` shows each host's seal.
A host started with `up --unsealed HOST` is reported as such, loudly, and not required.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from socketlab.errors import LabError
from socketlab.lab.process import ExecResult
from socketlab.lab.topology import Host

CHECK = ["lab-seal", "--check"]
UNSEALED_WORDS = "UNSEALED (--unsealed)"


@dataclass(frozen=True)
class Seal:
    host: str
    sealed: bool
    said: str  # lab-seal's own line (what is missing, when it is not sealed)
    opted_out: bool = False  # started with --unsealed

    @property
    def words(self) -> str:
        """What `status` shows."""
        if self.opted_out:
            return UNSEALED_WORDS if not self.sealed else f"yes, but {UNSEALED_WORDS}"
        return "yes" if self.sealed else f"NO: {self.said}"


Exec = Callable[[str, list[str]], ExecResult]  # (service, argv) -> its result


def seals(hosts: Iterable[Host], run: Exec) -> list[Seal]:
    """Each host's seal now (the container that carries its tools answers: the host itself,
    or its sidecar, in the same network namespace), asked of every host at once."""
    from concurrent.futures import ThreadPoolExecutor  # here: only up and status ask

    def ask(h: Host) -> Seal:
        try:
            result = run(h.tools, CHECK)
        except LabError as e:
            return Seal(h.name, False, f"cannot ask: {e}", h.unsealed)
        lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
        said = lines[-1].removeprefix("lab-seal: ").removeprefix("not sealed: ") if lines \
            else f"exit {result.exit_code}"
        if said.startswith("usage:"):  # a lab started from an image older than --check
            said = "cannot tell: its image's lab-seal has no --check (rebuild: `socketlab build`)"
        return Seal(h.name, result.exit_code == 0, said, h.unsealed)

    hosts = list(hosts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(ask, hosts))


def require_sealed(found: Iterable[Seal]) -> list[str]:
    """LabError for the first host that is not sealed (and not opted out); the warnings to
    print for the hosts that were opted out."""
    warnings = []
    for seal in found:
        if seal.opted_out:
            warnings.append(f"warning: host {seal.host!r} runs {UNSEALED_WORDS}: its file's keys "
                            "were not held to socketlab's allowlist, and its seal is not required")
        elif not seal.sealed:
            raise LabError(f"host {seal.host!r} is not sealed: {seal.said}",
                           hint="nothing of the lab is left; see `socketlab logs "
                                f"{seal.host}` and docs/sealed.md")
    return warnings
