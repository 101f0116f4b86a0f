"""The CLI in-process: exit codes, one-line `error:`/`hint:` on err, nothing on out.

No test here reaches Docker: DOCKER_HOST points at a socket that does not exist (so a
command that gets as far as Docker fails the way it does when the engine is not running),
and commands that need a running lab get a fake Lab.
"""

from __future__ import annotations

import io
import os

import pytest

from socketlab.act.programs import Options, PairRun
from socketlab.cli import common
from socketlab.cli.app import ExitCode, main
from socketlab.errors import DockerUnavailable, LabNotRunning
from socketlab.lab.config import LabConfig
from socketlab.lab.docker_http import unavailable
from socketlab.lab.lab import Lab
from socketlab.lab.process import ExecResult
from socketlab.observe.events import parse_output

NO_ENGINE = "unix:///nonexistent/docker.sock"
NOT_RUNNING = "error: the Docker engine is not running (nothing answers on its socket)"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch):
    """No SOCKETLAB_* settings from the caller's shell, and no reachable Docker engine."""
    for name in list(os.environ):
        if name.startswith("SOCKETLAB_") or name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    monkeypatch.setenv("COLUMNS", "200")  # tables rendered the same whatever the terminal


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def assert_lab_error(result: tuple[int, str, str], error: str, hint: str,
                     exit_code: int = ExitCode.LAB_ERROR) -> None:
    """Exit 2 (or exit_code), nothing on out, exactly `error: ...` then `hint: ...` on err."""
    code, out, err = result
    assert code == exit_code
    assert out == ""
    assert err.splitlines() == [f"error: {error}", f"hint: {hint}"]


# -- usage ----------------------------------------------------------------------------------
def test_help_exits_0():
    code, out, _err = cli("--help")

    assert code == ExitCode.OK == 0
    assert "usage: socketlab" in out


@pytest.mark.parametrize("command", ["run", "exec", "up", "down", "doctor", "build"])
def test_command_help_exits_0(command):
    code, out, _err = cli(command, "--help")
    assert code == 0
    assert f"usage: socketlab {command}" in out


@pytest.mark.parametrize(
    "argv",
    [["bogus"], [], ["run", "sctp"], ["run", "tcp", "--bufsize", "three"], ["up", "--port", "x"],
     ["bench", "nothing"], ["--no-such-flag", "status"]],
    ids=["unknown-command", "no-command", "bad-proto", "bufsize-not-int", "port-not-int",
         "bench-unknown", "unknown-flag"],
)
def test_usage_errors_exit_64(argv):
    code, out, err = cli(*argv)

    assert code == ExitCode.USAGE == 64
    assert out == ""
    assert "usage: socketlab" in err
    *_, error, hint = err.strip().splitlines()  # like every other error: what, then what to do
    assert error.startswith("error: ")
    assert hint.startswith("hint: `socketlab")
    assert hint.endswith("--help` shows what it takes")


def test_an_unknown_option_after_a_command_names_that_command_in_its_hint():
    code, _out, err = cli("run", "tcp", "--nope")

    assert code == 64
    assert err.strip().splitlines()[-2:] == ["error: unrecognized arguments: --nope",
                                             "hint: `socketlab run --help` shows what it takes"]


def test_exercise_without_an_action_is_a_usage_error_with_a_hint():
    code, out, err = cli("exercise")

    assert (code, out) == (64, "")
    assert err.strip().splitlines()[-1] == "hint: `socketlab exercise --help` says what each does"


def test_help_goes_to_the_given_out():
    code, out, _err = cli("--help")

    assert code == 0
    assert "usage: socketlab" in out


def test_usage_error_goes_to_the_given_err():
    code, _out, err = cli("bogus")

    assert code == 64
    assert "invalid choice: 'bogus'" in err


# -- validation fails before Docker is touched ---------------------------------------------
@pytest.mark.parametrize(
    ("argv", "error", "hint"),
    [
        (["exec", "server"], "no command given", "e.g. `socketlab exec server ip -br addr`"),
        (["run", "tcp", "--bufsize", "0"], "receive size 0 is too small", "use 1 or more"),
        (["run", "udp", "--count", "0"], "count 0 is too small", "use 1 or more"),
        (["run", "udp", "--bufsize", "99999999999"], "receive size 99999999999 is too large",
         "use at most 65536: no datagram carries more than 65,507 bytes, and a TCP recv() that "
         "large already takes whatever the socket holds"),
        (["run", "udp", "--count", "100000"], "count 100000 is too large",
         "use at most 1000: each send is a row of the run's table; for floods see `socketlab "
         "experiment C6` and `socketlab bench capture`"),
        (["up", "--subnet", "10.0.0.0/30"], "subnet 10.0.0.0/30 is too small for the lab",
         "use a /29 or larger (the hosts take .5 and .6), such as 192.168.34.0/24"),
        (["up", "--subnet", "10.0.0.1/24"],
         "subnet '10.0.0.1/24' is not valid: 10.0.0.1/24 has host bits set",
         "give an IPv4 network such as 192.168.34.0/24"),
        (["up", "--port", "70000"], "port 70000 is out of range", "use a port from 1 to 65535"),
        (["demo", "--server-ip", "192.168.33.1"],
         "server address 192.168.33.1 is not usable in subnet 192.168.33.0/24",
         "give an address inside 192.168.33.0/24, not its first two or its broadcast address "
         "(the bridge's gateway takes the first host address)"),
        (["up", "--server-ip", "192.168.33.9", "--client-ip", "192.168.33.9"],
         "server and client both have the address 192.168.33.9", "give them different addresses"),
        (["-p", "My Lab", "status"], "project name 'My Lab' is not valid",
         "use lowercase letters, digits, '-' and '_', starting with a letter or digit"),
    ],
    ids=["exec-no-command", "run-bufsize-0", "run-count-0", "run-bufsize-huge", "run-count-huge",
         "up-subnet-too-small", "up-subnet-host-bits", "up-port", "demo-gateway-address",
         "up-same-address", "bad-project"],
)
def test_invalid_input_is_a_usage_error_with_a_hint(argv, error, hint):
    assert_lab_error(cli(*argv), error, hint, ExitCode.USAGE)


def test_a_long_error_stays_on_one_line_in_a_narrow_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")

    assert_lab_error(cli("up", "--server-ip", "10.1.1.1"),
                     "server address 10.1.1.1 is not usable in subnet 192.168.33.0/24",
                     "give an address inside 192.168.33.0/24, not its first two or its "
                     "broadcast address (the bridge's gateway takes the first host address)",
                     ExitCode.USAGE)


def test_environment_settings_are_validated_too(monkeypatch):
    monkeypatch.setenv("SOCKETLAB_PORT", "sixty")

    assert_lab_error(cli("status"), "port 'sixty' is not a number", "use a port from 1 to 65535",
                     ExitCode.USAGE)


# -- Docker not running --------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [["status"], ["up"], ["down"], ["down", "--all"], ["build"], ["demo"], ["run", "tcp"],
     ["exec", "server", "ss", "-tan"]],
    ids=["status", "up", "down", "down-all", "build", "demo", "run", "exec"],
)
def test_docker_not_running(argv):
    code, out, err = cli(*argv)

    assert (code, out) == (2, "")
    assert err.splitlines() == [
        NOT_RUNNING,
        "hint: start the Docker engine (e.g. `sudo systemctl start docker`) and check "
        "`docker info`"]


def test_doctor_reports_docker_not_running_as_a_failed_check():
    code, out, err = cli("doctor")

    assert (code, err) == (ExitCode.FAILED, "")
    engine = next(line for line in out.splitlines() if "docker engine" in line)
    assert "✗" in engine
    assert "not running" in out


def test_debug_lets_the_error_through():
    with pytest.raises(DockerUnavailable, match="not running"):
        cli("--debug", "status")


# -- docker_http.unavailable: the reasons Docker cannot be reached ------------------------
@pytest.mark.parametrize(
    ("text", "message", "hint_part"),
    [
        ("Error while fetching server API version: ('Connection aborted.', "
         "PermissionError(13, 'Permission denied'))",
         "no permission to use the Docker engine's socket", "usermod -aG docker"),
        ("Permission denied: /var/run/docker.sock",
         "no permission to use the Docker engine's socket", "docker group"),
        ("Error while fetching server API version: ('Connection aborted.', "
         "FileNotFoundError(2, 'No such file or directory'))",
         "the Docker engine is not running (nothing answers on its socket)",
         "sudo systemctl start docker"),
        ("Error while fetching server API version: ('Connection aborted.', "
         "ConnectionRefusedError(111, 'Connection refused'))",
         "the Docker engine is not running (nothing answers on its socket)", "docker info"),
        ("Error while fetching server API version: HTTPConnectionPool(host='10.0.0.9', "
         "port=2375): Read timed out.",
         "cannot reach the Docker engine: Error while fetching server API version: "
         "HTTPConnectionPool(host='10.0.0.9', port=2375): Read timed out.",
         "sudo systemctl start docker"),
    ],
    ids=["permission-error", "permission-denied", "no-socket-file", "connection-refused",
         "other"],
)
def test_unavailable_explains_why(text, message, hint_part):
    error = unavailable(Exception(text))

    assert isinstance(error, DockerUnavailable)
    assert str(error) == message
    assert hint_part in error.hint


# -- a fake Lab: what the commands do with what the API returns -----------------------------
class FakeLab:
    """Stands in for socketlab.lab.Lab in the CLI (socketlab.cli.common); records what it was asked."""

    instances: list[FakeLab] = []
    not_running = False  # True: running() finds no lab, as when its hosts are down
    there = True  # False: no container or network of the lab exists

    @classmethod
    def running(cls, project: str, *, progress=None) -> FakeLab:
        if cls.not_running:
            raise LabNotRunning(f"lab {project!r} is not running")
        return cls(LabConfig(project=project), progress=progress)

    def __init__(self, config: LabConfig, progress=None) -> None:
        from socketlab.lab.assets import COMPOSE_FILE
        from socketlab.lab.composefile import read_topology

        self.config = config
        self.topology = read_topology(COMPOSE_FILE, config.compose_env(), lab_image=config.image)
        self.exec_calls: list[tuple[str, list[str]]] = []
        self.downs = 0
        self.rows = [{"name": "server", "address": config.server_ip, "state": "running",
                      "container": "abc123"},
                     {"name": "client", "address": config.client_ip, "state": "exited",
                      "container": "def456"}]
        FakeLab.instances.append(self)

    def exec(self, host, argv, timeout=None):
        self.exec_calls.append((host, list(argv)))
        return ExecResult(3, "out text\n", "err text\n", 0.01)

    def read_file(self, host, path, *, instruments=False):
        return None  # no state file of lab-shape: nothing is shaped

    def attach(self, host, argv, *, tty=False, stdin=False, env=()):
        """`exec`'s way in: the command's output as chunks, then its exit code."""
        self.exec_calls.append((host, list(argv[4:])))  # after the pid-printing launcher
        return FakeStream()

    def status(self):
        return self.rows

    def subnet_in_use(self):
        return None if all(r["state"] == "absent" for r in self.status()) else self.config.subnet

    def down(self):
        self.downs += 1
        return ["container x-server-1", "network x_labnet"] if self.there else []


class FakeStream:
    def chunks(self):
        yield b"socketlab-pid=7\nout text\n", None
        yield None, b"err text\n"

    def exit_code(self):
        return 3


@pytest.fixture
def fake_lab(monkeypatch) -> type[FakeLab]:
    FakeLab.instances = []
    monkeypatch.setattr(FakeLab, "not_running", False)
    monkeypatch.setattr(common, "Lab", FakeLab)
    return FakeLab


def test_exec_passes_argv_and_returns_the_commands_exit_code(fake_lab):
    code, out, err = cli("-p", "lab7", "exec", "client", "ip", "-br", "addr")

    (made,) = fake_lab.instances
    assert made.config.project == "lab7"
    assert made.exec_calls == [("client", ["ip", "-br", "addr"])]
    assert (code, out, err) == (3, "out text\n", "err text\n")


def test_status_shows_each_host_and_fails_when_one_is_not_running(fake_lab):
    code, out, err = cli("status")

    assert (code, err) == (ExitCode.FAILED, "")
    assert "lab 'socketlab' on 192.168.33.0/24" in out
    server = next(line for line in out.splitlines() if "server" in line)
    client = next(line for line in out.splitlines() if "client" in line)
    assert server.split() == ["│", "server", "│", "192.168.33.5", "│", "running", "│", "abc123",
                              "│"]
    assert client.split()[5] == "exited"


def test_status_of_a_lab_whose_hosts_stopped_shows_them(fake_lab, monkeypatch):
    monkeypatch.setattr(FakeLab, "not_running", True)

    code, out, _err = cli("-p", "other", "status")

    assert code == ExitCode.FAILED
    assert "lab 'other' on 192.168.33.0/24" in out


def test_status_of_an_absent_lab_says_so_and_shows_no_subnet(fake_lab, monkeypatch):
    monkeypatch.setattr(FakeLab, "not_running", True)
    monkeypatch.setattr(FakeLab, "status", lambda self: [
        {"name": h, "address": "-", "state": "absent", "container": "-"}
        for h in ("server", "client")])

    code, out, err = cli("-p", "other", "status")

    assert (code, err) == (ExitCode.FAILED, "")
    assert out.strip() == "lab 'other' is not running: it has no hosts and no network"


def test_status_all_running_is_ok(fake_lab, monkeypatch):
    monkeypatch.setattr(FakeLab, "status", lambda self: [dict(r, state="running")
                                                         for r in self.rows])

    assert cli("status")[0] == ExitCode.OK


def test_down_calls_down_once_and_says_what_it_removed(fake_lab):
    code, out, err = cli("down")

    assert (code, out.strip(), err) == (
        0, "lab 'socketlab' removed (container x-server-1, network x_labnet)", "")
    assert fake_lab.instances[0].downs == 1


def test_down_of_a_lab_that_never_existed_says_there_was_none(fake_lab, monkeypatch):
    monkeypatch.setattr(FakeLab, "there", False)

    code, out, err = cli("-p", "never", "down")

    assert (code, out.strip(), err) == (0, "there was no lab 'never': nothing to remove", "")


class NoDocker:
    """A Docker client that must not be used."""

    def __getattr__(self, name):
        raise AssertionError(f"Docker was used: client.{name}")


def test_exec_unknown_host_on_a_running_lab(monkeypatch):
    """The real Lab refuses a host that is not the lab's before asking Docker anything."""
    monkeypatch.setattr(common.Lab, "running", classmethod(
        lambda cls, project, progress=None: Lab(LabConfig(project=project), client=NoDocker())))

    assert_lab_error(cli("exec", "router", "ip", "addr"), "unknown host 'router'",
                     "the lab's hosts are server, client", ExitCode.USAGE)


TCP_SERVER_OUT = """\
listening addr=0.0.0.0:6666 backlog=5 t=10.000
accepted peer=192.168.33.6:40000 local=192.168.33.5:6666 t=10.010
recv n=3 data="hel" t=10.020
recv n=3 data="lo," t=10.021
recv n=3 data="wor" t=10.022
recv n=2 data="ld" t=10.023
recv n=0 data="" t=10.024
closed t=10.025
"""
TCP_CLIENT_OUT = """\
connected local=192.168.33.6:40000 peer=192.168.33.5:6666 t=10.005
sent n=11 data="hello,world" t=10.006
closed t=10.007
"""


@pytest.fixture
def fake_run_pair(monkeypatch, fake_lab):
    """run_pair answers with the post's TCP exchange; records the options it was given."""
    import socketlab.act.programs

    seen: list[Options] = []

    def run_pair(lab_, opts, **_kw):
        seen.append(opts)
        return PairRun(opts, parse_output(TCP_SERVER_OUT), parse_output(TCP_CLIENT_OUT),
                       server_exit=0, client_exit=0, seconds=0.5)

    monkeypatch.setattr(socketlab.act.programs, "run_pair", run_pair)
    return seen


def test_run_shows_the_exchange_and_the_verdict(fake_run_pair):
    code, out, err = cli("run", "tcp", "--message", "hello,world", "--bufsize", "3")

    assert (code, err) == (0, "")
    assert fake_run_pair == [Options(proto="tcp", message="hello,world", bufsize=3, count=1,
                                     server=True)]
    assert 'recv(3) -> "hel"' in out
    assert out.rstrip().endswith("the server read 11 in 4 recv(3) calls: nothing lost.")


def test_run_json(fake_run_pair):
    import json

    code, out, err = cli("run", "tcp", "--json", "--no-server")

    data = json.loads(out)
    assert (code, err) == (0, "")
    assert fake_run_pair[0].server is False
    assert data["options"] == {"proto": "tcp", "message": "hello,world", "bufsize": 3,
                               "count": 1, "port": None, "server": False}
    assert (data["ok"], data["seconds"], data["server_exit"], data["client_exit"]) == (
        True, 0.5, 0, 0)
    assert data["client"][1] == {"event": "sent", "n": 11, "data": "hello,world", "t": 10.006}
    assert [e["event"] for e in data["server"]] == [
        "listening", "accepted", "recv", "recv", "recv", "recv", "recv", "closed"]


# -- a lab of the same name is never touched ----------------------------------------------------
@pytest.fixture
def lab_already_running(fake_lab, monkeypatch) -> type[FakeLab]:
    """FakeLab whose up() finds lab 'socketlab' running on 192.168.131.0/24."""
    import socketlab.cli.lab as cli_lab
    from socketlab.lab.existing import differences, exists_error

    there = LabConfig(subnet="192.168.131.0/24")

    def up(self, *, kept: bool = False):
        raise exists_error(self.config.project, differences(self.config, there))

    monkeypatch.setattr(cli_lab, "ensure_image", lambda _lab, _err: None)
    monkeypatch.setattr(FakeLab, "up", up, raising=False)
    monkeypatch.setattr(FakeLab, "running", classmethod(lambda cls, _p, progress=None: cls(there)))
    return fake_lab


def test_up_with_other_settings_refuses_and_removes_nothing(lab_already_running):
    code, out, err = cli("up", "--subnet", "192.168.40.0/24")

    assert (code, out) == (ExitCode.LAB_ERROR, "")
    assert err.splitlines()[0] == (
        "error: lab 'socketlab' is already running with other settings (subnet 192.168.131.0/24, "
        "not 192.168.40.0/24, server ip 192.168.131.5, not 192.168.40.5, client ip "
        "192.168.131.6, not 192.168.40.6)")
    assert all(lab.downs == 0 for lab in lab_already_running.instances)


def test_up_asking_nothing_the_running_lab_lacks_is_a_no_op(lab_already_running):
    code, out, err = cli("up")

    assert (code, err) == (ExitCode.OK, "")
    assert "lab 'socketlab' on 192.168.131.0/24" in out
    assert out.rstrip().endswith("was already running with these settings: nothing changed")
    assert all(lab.downs == 0 for lab in lab_already_running.instances)


def test_up_takes_unsealed_hosts_from_the_command_line_only(monkeypatch):
    import argparse

    monkeypatch.setenv("SOCKETLAB_UNSEALED", "server")  # no such setting: never from elsewhere
    code, out, _err = cli("up", "--help")
    assert code == ExitCode.OK
    assert "--unsealed HOST" in out

    asked = argparse.Namespace(project="p", unsealed=["server", "r1"])
    assert common.config_from(asked).unsealed == ("server", "r1")
    assert common.config_from(argparse.Namespace(project="p")).unsealed == ()


@pytest.mark.parametrize(("sealed", "code", "warning"), [
    ("yes", ExitCode.OK, None),
    ("NO: OUTPUT does not jump to LAB-SEAL first", ExitCode.FAILED,
     "warning: host 'server' is not sealed: OUTPUT does not jump to LAB-SEAL first"),
    ("UNSEALED (--unsealed)", ExitCode.OK, "warning: host 'server' runs UNSEALED (--unsealed)"),
    ("yes, but UNSEALED (--unsealed)", ExitCode.OK,
     "warning: host 'server' runs UNSEALED (--unsealed) (its seal is still in place)"),
])
def test_status_shows_each_hosts_seal_and_fails_when_one_is_gone(fake_lab, monkeypatch, sealed,
                                                                 code, warning):
    monkeypatch.setattr(FakeLab, "status", lambda self: [
        {"name": "server", "address": "192.168.33.5", "state": "running", "container": "a",
         "sealed": sealed},
        {"name": "client", "address": "192.168.33.6", "state": "running", "container": "b",
         "sealed": "yes"}])

    got, out, _err = cli("-p", "other", "status")
    as_json, _, _ = cli("-p", "other", "status", "--json")

    assert (got, as_json) == (code, code)
    assert "sealed" in out.splitlines()[2]  # the table's heading
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warnings == ([warning] if warning else [])
