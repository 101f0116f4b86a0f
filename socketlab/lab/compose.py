"""The compose CLI: which one is installed (v2 plugin, else v1), pure argv builders, one runner.

Lifecycle (up, down) goes through compose so that the lab is exactly what
`docker-compose.yml` says; everything at run time goes through the Docker SDK (lab.py).
Only options that Compose v1 and v2 both understand are used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from socketlab.errors import ComposeError

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class Compose:
    """One compose CLI: the words that start it (`docker compose` or `docker-compose`)."""

    prefix: tuple[str, ...]
    version: str

    @property
    def v2(self) -> bool:
        return not self.version.lstrip("v").startswith("1.")

    def argv(self, project: str, file: Path, *args: str, project_dir: Path | None = None,
             env_file: Path | None = None) -> list[str]:
        """`compose -p PROJECT -f FILE [--project-directory DIR] [--env-file ENV] ARGS...` as
        an argv list (DIR: where the file's relative paths start, when FILE is a rendered copy;
        ENV: the variables compose itself reads instead of DIR/.env, whose DOCKER_HOST or
        COMPOSE_* would steer compose: a rendered copy needs none)."""
        where = ["--project-directory", str(project_dir)] if project_dir is not None else []
        env = ["--env-file", str(env_file)] if env_file is not None else []
        return [*self.prefix, "-p", project, "-f", str(file), *where, *env, *args]


def create_args() -> list[str]:
    """Create the networks and the hosts without starting them (Lab.up starts them)."""
    return ["up", "--no-start", "--no-build", "--remove-orphans"]


def up_args() -> list[str]:
    """A plain `up -d` of both hosts: the benchmark's baseline."""
    return ["up", "-d", "--no-build", "--remove-orphans"]


def down_args(timeout_s: int = 2) -> list[str]:
    return ["down", "--volumes", "--remove-orphans", "--timeout", str(timeout_s)]


def detect(run: Runner = subprocess.run, environ: Mapping[str, str] | None = None) -> Compose:
    """Find the compose CLI: $SOCKETLAB_COMPOSE if set, else `docker compose`, else v1."""
    env = os.environ if environ is None else environ
    forced = env.get("SOCKETLAB_COMPOSE", "").strip()
    candidates = [tuple(forced.split())] if forced else [("docker", "compose"), ("docker-compose",)]
    for prefix in candidates:
        if shutil.which(prefix[0]) is None:
            continue
        try:
            # A session of its own, as run_compose's: a Ctrl-C at the terminal reaches
            # socketlab, which says it was interrupted, not that the probe found nothing.
            done = run([*prefix, "version", "--short"], capture_output=True, text=True, timeout=20,
                       start_new_session=True)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode < 0:  # stopped by a signal: no answer either way, never "missing"
            raise _stopped(prefix, -done.returncode)
        if done.returncode == 0 and done.stdout.strip():
            return Compose(prefix, done.stdout.strip().splitlines()[0])
    raise ComposeError(
        "no Docker Compose found (tried " + ", ".join(" ".join(p) for p in candidates) + ")",
        hint="install the compose plugin (docker compose) or docker-compose",
    )


def _stopped(prefix: tuple[str, ...], signum: int) -> BaseException:
    """A probe that a signal ended: SIGINT or SIGTERM is an interruption; another signal an
    error that says so (which Compose is installed is then unknown, not "none")."""
    from socketlab.lab.signals import HANDLED, Interrupted

    if signum in HANDLED:
        return Interrupted()
    return ComposeError(f"`{' '.join(prefix)} version --short` was ended by signal {signum} "
                        "before it said which Compose is installed",
                        hint="run the command again; if it recurs, run that probe by hand")


def run_compose(argv: Sequence[str], env: Mapping[str, str], *, timeout: float = 120,
                run: Runner = subprocess.run) -> subprocess.CompletedProcess:
    """Run one compose command with the lab's variables; a failure raises ComposeError."""
    try:
        # A session of its own: a Ctrl-C at the terminal reaches socketlab, which then
        # cleans up, rather than killing compose half-way through.
        done = run(list(argv), env={**os.environ, **env}, capture_output=True, text=True,
                   timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise ComposeError(f"`{' '.join(argv)}` did not finish in {timeout:.0f} s",
                           hint="check `docker info`; the engine may be overloaded") from None
    if done.returncode != 0:
        raise compose_failure(argv, done.stderr or done.stdout)
    return done


# Compose v1's last line after any complaint about a file: it never tells the user anything.
_USELESS = ("For more on the Compose file format versions, see",)


def compose_failure(argv: Sequence[str], output: str) -> ComposeError:
    """Turn compose's output into one clear error (known causes get a specific hint)."""
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()
             and not ln.strip().startswith(_USELESS)]
    last = lines[-1] if lines else "no output"
    if "Pool overlaps" in output or "overlaps with other one" in output:
        return ComposeError(
            f"the lab's subnet is already used by another Docker network ({last})",
            hint="pick another subnet, e.g. SOCKETLAB_SUBNET=192.168.34.0/24 "
                 "(or --subnet), or remove the other network",
        )
    if "Address already in use" in output or "address already in use" in output:
        return ComposeError(f"an address the lab needs is taken ({last})",
                            hint="pick other addresses or another subnet")
    if "No such image" in output or "pull access denied" in output:
        return ComposeError(f"the lab image is missing ({last})",
                            hint="build it with `./scripts/lab build`")
    return ComposeError(f"`{' '.join(argv[:4])} ...` failed: {last}",
                        hint="run it again with --debug to see compose's full output")
