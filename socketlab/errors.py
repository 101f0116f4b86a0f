"""The LabError family: every failure a user can meet, each with a hint on what to do.

The CLI is the one place that turns these into a one-line message and an exit code;
the API raises them and never prints.
"""

from __future__ import annotations


class LabError(Exception):
    """A failure the user can act on: `str(e)` says what went wrong, `e.hint` what to do."""

    hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(LabError):
    """A setting (address, port, name, option) that cannot work; nothing was applied."""


class DockerUnavailable(LabError):
    """The Docker engine cannot be reached (not running, no permission, wrong DOCKER_HOST)."""

    hint = "start the Docker engine (e.g. `sudo systemctl start docker`) and check `docker info`"


class ComposeError(LabError):
    """The compose CLI is missing or one of its commands failed."""


class ImageError(LabError):
    """The lab image is missing or could not be built."""

    hint = "build it with `./scripts/lab build`"


class LabNotRunning(LabError):
    """The lab (this compose project) has no running hosts."""

    hint = "start it with `./scripts/lab up`"


class LabExists(LabError):
    """A lab of that name is already there: it is left exactly as it is.

    differences: setting -> (asked for, what the running lab has); empty when the lab runs
    with the settings asked for, or when it is there but not running (running is False)."""

    def __init__(self, message: str, hint: str | None = None, *, running: bool = False,
                 differences: dict[str, tuple[str, str]] | None = None) -> None:
        super().__init__(message, hint)
        self.running = running
        self.differences = differences or {}


class UnknownHost(LabError):
    """A host name that is not one of the lab's hosts."""


class ProgramFailed(LabError):
    """A teaching program in a lab host failed or did not get ready."""


class LabTimeout(LabError):
    """Something awaited did not happen in time."""


class CaptureError(LabError):
    """tcpdump could not start, stop, or hand over its pcap."""


class SwarmError(LabError):
    """The swarm sandbox or a swarm the lab runs on cannot do what was asked (a node down or
    unlabelled, not a manager, a daemon that did not start)."""
