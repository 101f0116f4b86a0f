"""The compose CLI: argv builders, detection (fake runner), failures turned into ComposeError."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from socketlab.errors import ComposeError
from socketlab.lab import compose
from socketlab.lab.compose import (
    Compose,
    compose_failure,
    create_args,
    detect,
    down_args,
    run_compose,
    up_args,
)

FILE = Path("/lab/docker-compose.yml")


@pytest.mark.parametrize(
    ("prefix", "version", "v2"),
    [
        (("docker-compose",), "1.29.2", False),
        (("docker", "compose"), "v2.24.0", True),
        (("docker", "compose"), "2.40.3", True),
    ],
    ids=["v1", "v2-with-v", "v2-bare"],
)
def test_argv_and_v2(prefix, version, v2):
    c = Compose(prefix, version)

    assert c.v2 is v2
    assert c.argv("lab1", FILE, "ps", "-q") == [
        *prefix, "-p", "lab1", "-f", "/lab/docker-compose.yml", "ps", "-q"]


def test_up_args_are_exact():
    assert up_args() == ["up", "-d", "--no-build", "--remove-orphans"]


def test_create_args_create_without_starting():
    assert create_args() == ["up", "--no-start", "--no-build", "--remove-orphans"]


@pytest.mark.parametrize(("timeout", "expected"), [(None, "2"), (10, "10")],
                         ids=["default", "explicit"])
def test_down_args_are_exact(timeout, expected):
    args = down_args() if timeout is None else down_args(timeout)

    assert args == ["down", "--volumes", "--remove-orphans", "--timeout", expected]


class FakeRun:
    """Answers `PREFIX version --short` from a table: prefix -> (code, stdout) or an exception."""

    def __init__(self, answers: dict[tuple[str, ...], object]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        assert argv[-2:] == ["version", "--short"]
        answer = self.answers.get(tuple(argv[:-2]), (127, ""))
        if isinstance(answer, BaseException):
            raise answer
        code, stdout = answer
        return subprocess.CompletedProcess(argv, code, stdout=stdout, stderr="")


@pytest.fixture
def every_tool_installed(monkeypatch):
    monkeypatch.setattr(compose.shutil, "which", lambda name: f"/usr/bin/{name}")


@pytest.mark.usefixtures("every_tool_installed")
def test_detect_prefers_v2_when_both_answer():
    run = FakeRun({("docker", "compose"): (0, "2.24.0\n"), ("docker-compose",): (0, "1.29.2\n")})

    found = detect(run=run, environ={})

    assert found == Compose(("docker", "compose"), "2.24.0")
    assert run.calls == [["docker", "compose", "version", "--short"]]


@pytest.mark.usefixtures("every_tool_installed")
@pytest.mark.parametrize(
    "v2_answer",
    [(1, ""), (0, "   \n"), FileNotFoundError("docker"),
     subprocess.TimeoutExpired(["docker"], 20)],
    ids=["fails", "empty-output", "oserror", "timeout"],
)
def test_detect_falls_back_to_v1(v2_answer):
    run = FakeRun({("docker", "compose"): v2_answer, ("docker-compose",): (0, "1.29.2\n")})

    found = detect(run=run, environ={})

    assert found == Compose(("docker-compose",), "1.29.2")
    assert found.v2 is False
    assert run.calls == [["docker", "compose", "version", "--short"],
                         ["docker-compose", "version", "--short"]]


def test_detect_skips_tools_that_are_not_on_path(monkeypatch):
    only_v1 = {"docker-compose": "/usr/bin/docker-compose"}
    monkeypatch.setattr(compose.shutil, "which", only_v1.get)
    run = FakeRun({("docker", "compose"): (0, "2.24.0"), ("docker-compose",): (0, "1.29.2")})

    assert detect(run=run, environ={}) == Compose(("docker-compose",), "1.29.2")
    assert run.calls == [["docker-compose", "version", "--short"]]


@pytest.mark.usefixtures("every_tool_installed")
def test_detect_uses_only_the_forced_compose():
    run = FakeRun({("docker", "compose"): (0, "2.24.0"), ("podman-compose",): (0, "1.0.6\n")})

    found = detect(run=run, environ={"SOCKETLAB_COMPOSE": "podman-compose"})

    assert found == Compose(("podman-compose",), "1.0.6")
    assert run.calls == [["podman-compose", "version", "--short"]]


@pytest.mark.usefixtures("every_tool_installed")
def test_detect_splits_a_forced_command_of_several_words():
    run = FakeRun({("docker", "compose"): (0, "v2.40.3\nextra line\n")})

    found = detect(run=run, environ={"SOCKETLAB_COMPOSE": "docker compose"})

    assert found == Compose(("docker", "compose"), "v2.40.3")


@pytest.mark.usefixtures("every_tool_installed")
def test_detect_forced_compose_that_fails_is_an_error_naming_it():
    run = FakeRun({("docker", "compose"): (0, "2.24.0")})

    with pytest.raises(ComposeError, match=r"^no Docker Compose found \(tried my-compose\)$"):
        detect(run=run, environ={"SOCKETLAB_COMPOSE": "my-compose"})


@pytest.mark.usefixtures("every_tool_installed")
def test_detect_none_answering_is_an_error():
    run = FakeRun({})

    with pytest.raises(ComposeError) as info:
        detect(run=run, environ={})

    assert str(info.value) == "no Docker Compose found (tried docker compose, docker-compose)"
    assert "docker compose" in info.value.hint


def test_detect_with_nothing_installed_runs_nothing(monkeypatch):
    monkeypatch.setattr(compose.shutil, "which", lambda name: None)
    run = FakeRun({})

    with pytest.raises(ComposeError):
        detect(run=run, environ={})
    assert run.calls == []


POOL_OVERLAP = """\
Network socketlab_lab  Creating
Error response from daemon: Pool overlaps with other one on this address space
"""


def test_pool_overlap_names_the_subnet_and_socketlab_subnet():
    err = compose_failure(["docker", "compose", "-p", "x", "up"], POOL_OVERLAP)

    assert str(err) == ("the lab's subnet is already used by another Docker network "
                        "(Error response from daemon: Pool overlaps with other one on this "
                        "address space)")
    assert "SOCKETLAB_SUBNET" in err.hint
    assert "--subnet" in err.hint


@pytest.mark.parametrize(
    ("output", "message", "hint"),
    [
        ("Error: failed to set up container networking: Address already in use\n",
         "an address the lab needs is taken (Error: failed to set up container networking: "
         "Address already in use)", "pick other addresses or another subnet"),
        ("Error response from daemon: No such image: socketlab/lab:latest\n",
         "the lab image is missing (Error response from daemon: No such image: "
         "socketlab/lab:latest)", "build it with `./scripts/lab build`"),
        ("pull access denied for socketlab/lab, repository does not exist\n",
         "the lab image is missing (pull access denied for socketlab/lab, repository does "
         "not exist)", "build it with `./scripts/lab build`"),
        ("line one\nsomething else broke\n\n",
         "`docker compose -p lab ...` failed: something else broke",
         "run it again with --debug to see compose's full output"),
        ("", "`docker compose -p lab ...` failed: no output",
         "run it again with --debug to see compose's full output"),
        ("ERROR: The Compose file './x.yml' is invalid because:\nInvalid top-level property "
         "\"include\".\n\nFor more on the Compose file format versions, see "
         "https://docs.docker.com/compose/compose-file/\n",
         "`docker compose -p lab ...` failed: Invalid top-level property \"include\".",
         "run it again with --debug to see compose's full output"),
    ],
    ids=["address-in-use", "no-such-image", "pull-denied", "unknown-last-line", "no-output",
         "compose-v1-file-format-footer"],
)
def test_known_and_unknown_failures(output, message, hint):
    err = compose_failure(["docker", "compose", "-p", "lab", "-f", "x.yml", "up"], output)

    assert isinstance(err, ComposeError)
    assert (str(err), err.hint) == (message, hint)


class FakeRunner:
    def __init__(self, returncode: int = 0, stdout: str = "", stderr: str = "",
                 raises: BaseException | None = None) -> None:
        self.result = (returncode, stdout, stderr)
        self.raises = raises
        self.calls: list[tuple[list[str], dict]] = []

    def __call__(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        if self.raises is not None:
            raise self.raises
        code, out, err = self.result
        return subprocess.CompletedProcess(argv, code, stdout=out, stderr=err)


def test_run_compose_passes_argv_env_and_timeout(monkeypatch):
    monkeypatch.setenv("PATH_MARKER", "kept")
    runner = FakeRunner(0, stdout="done\n")
    argv = ("docker", "compose", "-p", "lab", "ps")

    done = run_compose(argv, {"SOCKETLAB_PORT": "7000"}, timeout=33, run=runner)

    assert done.stdout == "done\n"
    (called, kwargs), = runner.calls
    assert called == ["docker", "compose", "-p", "lab", "ps"]
    assert kwargs["env"]["SOCKETLAB_PORT"] == "7000"
    assert kwargs["env"]["PATH_MARKER"] == "kept"
    assert kwargs["timeout"] == 33
    assert kwargs["start_new_session"] is True


def test_run_compose_nonzero_raises_from_stderr():
    runner = FakeRunner(1, stdout="ignored", stderr="Error response from daemon: Pool overlaps "
                                                    "with other one on this address space\n")

    with pytest.raises(ComposeError, match="already used by another Docker network") as info:
        run_compose(["docker", "compose", "up"], {}, run=runner)

    assert "SOCKETLAB_SUBNET" in info.value.hint


def test_run_compose_nonzero_with_empty_stderr_uses_stdout():
    runner = FakeRunner(1, stdout="boom on stdout\n", stderr="")

    with pytest.raises(ComposeError) as info:
        run_compose(["docker-compose", "up"], {}, run=runner)

    assert str(info.value) == "`docker-compose up ...` failed: boom on stdout"


def test_run_compose_timeout_raises_compose_error():
    runner = FakeRunner(raises=subprocess.TimeoutExpired(["docker", "compose", "up"], 5))

    with pytest.raises(ComposeError) as info:
        run_compose(["docker", "compose", "up"], {}, timeout=5, run=runner)

    assert str(info.value) == "`docker compose up` did not finish in 5 s"
    assert "docker info" in info.value.hint


@pytest.mark.usefixtures("every_tool_installed")
def test_detect_with_a_blank_forced_compose_is_a_compose_error():
    with pytest.raises(ComposeError):
        detect(run=FakeRun({}), environ={"SOCKETLAB_COMPOSE": "  "})


@pytest.mark.usefixtures("every_tool_installed")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_probe_ended_by_ctrl_c_is_an_interruption_not_a_missing_compose(signum):
    run = FakeRun({("docker", "compose"): (-signum, ""), ("docker-compose",): (-signum, "")})

    with pytest.raises(KeyboardInterrupt) as caught:
        detect(run=run, environ={})

    assert "Compose" not in str(caught.value)
    assert run.calls == [["docker", "compose", "version", "--short"]]  # no other probe after it


@pytest.mark.usefixtures("every_tool_installed")
def test_a_probe_ended_by_another_signal_says_so_and_names_no_missing_tool():
    run = FakeRun({("docker", "compose"): (-signal.SIGKILL, "")})

    with pytest.raises(ComposeError) as caught:
        detect(run=run, environ={})

    assert str(caught.value) == ("`docker compose version --short` was ended by signal 9 before "
                                 "it said which Compose is installed")
    assert "install" not in caught.value.hint


@pytest.mark.usefixtures("every_tool_installed")
def test_the_probe_runs_in_a_session_of_its_own():
    """A Ctrl-C at the terminal (SIGINT to the foreground group) reaches socketlab, not it."""
    seen = {}

    def run(argv, **kwargs):
        seen.update(kwargs)
        return subprocess.CompletedProcess(argv, 0, stdout="2.24.0\n", stderr="")

    detect(run=run, environ={})

    assert seen["start_new_session"] is True


def test_a_rendered_file_is_run_with_an_env_file_of_its_own():
    c = Compose(("docker-compose",), "1.29.2")

    argv = c.argv("lab1", Path("/tmp/x/compose.yml"), "up", project_dir=Path("/home/me/lab"),
                  env_file=Path("/tmp/x/no.env"))

    assert argv == ["docker-compose", "-p", "lab1", "-f", "/tmp/x/compose.yml",
                    "--project-directory", "/home/me/lab", "--env-file", "/tmp/x/no.env", "up"]
