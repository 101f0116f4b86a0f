"""The conventions users of compose, Mininet and containerlab expect, each checked in-process:
--version, -p after the command, a help written for users, shell completion, --json, ls,
--fail-on, and bad values as usage errors (64). No Docker: fakes stand in for the engine."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from socketlab import __version__
from socketlab.cli import common
from socketlab.cli.common import ExitCode
from socketlab.cli.experiments import fail_on
from socketlab.errors import ConfigError
from socketlab.lab.config import LabConfig
from tests.unit.conftest import POST, cli, loaded_after, no_engine_here


@pytest.fixture(autouse=True)
def no_engine(monkeypatch):
    no_engine_here(monkeypatch)


class StatusLab:
    """A lab for `status`: what the real Lab's status() and subnet_in_use() return."""

    topology = POST

    made: list[StatusLab] = []

    def __init__(self, config: LabConfig, rows=None, subnet="192.168.33.0/24", progress=None) -> None:
        self.config = config
        self.rows = rows if rows is not None else [
            {"name": "server", "address": "192.168.33.5", "state": "running", "container": "abc"},
            {"name": "client", "address": "192.168.33.6", "state": "running", "container": "def"}]
        self.subnet = subnet
        self.shaping: dict[str, dict] = {}  # host -> what `lab-shape show --json` says
        StatusLab.made.append(self)

    @classmethod
    def running(cls, project, *, progress=None):
        return cls(LabConfig(project=project))

    def status(self):
        return self.rows

    def subnet_in_use(self):
        return self.subnet

    def read_file(self, host, path, *, instruments=False):
        """lab-shape's state files, as the engine copies them out (None: not there)."""
        direction = path.rsplit("shape-", 1)[-1].removesuffix(".json")
        found = self.shaping.get(host, {}).get(direction)
        return json.dumps(found).encode() if found else None

    def down(self):
        return [f"container {self.config.project}_server_1", f"network {self.config.project}_labnet"]


@pytest.fixture
def status_lab(monkeypatch):
    StatusLab.made = []
    monkeypatch.setattr(common, "Lab", StatusLab)
    return StatusLab


def test_version():
    code, out, _err = cli("--version")
    assert (code, out.strip()) == (0, f"socketlab {__version__}")


@pytest.mark.parametrize("argv", [["-p", "lab9", "status"], ["status", "-p", "lab9"],
                                  ["status", "--project", "lab9"], ["-p", "other", "status", "-p", "lab9"]],
                         ids=["before", "after", "long-after", "after-wins"])
def test_project_before_or_after_the_command(status_lab, argv):
    code, _out, _err = cli(*argv)
    assert code == ExitCode.OK
    assert [lab.config.project for lab in status_lab.made] == ["lab9"]


def test_debug_after_the_command_lets_the_error_through():
    with pytest.raises(ConfigError, match="project name"):
        cli("status", "--debug", "-p", "Not Valid")


def test_top_level_help_is_written_for_users():
    code, out, _err = cli("--help")
    assert code == 0
    assert "start here:" in out
    assert "socketlab run tcp" in out
    assert "exit codes: 0 done, 1 what ran failed" in out
    assert "socketlab completion bash" in out
    for command in ("demo", "up", "run", "exec", "status", "ls", "down", "experiments", "shape",
                    "doctor", "completion"):
        assert f"\n  {command} " in out, command
    assert "\n  COMMAND\n" not in out  # the list of commands, not argparse's placeholder line


def _bash_complete(script: str, words: list[str]) -> list[str]:
    """What bash completes for the last of `words`, with the script sourced."""
    line = " ".join(words)
    program = (f'source "$1"; COMP_WORDS=({" ".join(repr(w) for w in words)}); '
               f"COMP_CWORD={len(words) - 1}; COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; "
               f'_shtab_socketlab socketlab {words[-1]!r} {words[-2]!r}; echo "${{COMPREPLY[@]}}"')
    done = subprocess.run(["bash", "-c", program, "bash", script], capture_output=True, text=True,
                          check=True, timeout=20)
    return done.stdout.split()


def test_bash_completion_completes_commands_and_choices(tmp_path):
    code, out, _err = cli("completion", "bash")
    assert code == 0
    script = tmp_path / "socketlab.bash"
    script.write_text(out)
    assert sorted(_bash_complete(str(script), ["socketlab", "ex"])) == [
        "exec", "exercise", "experiment", "experiments"]
    assert _bash_complete(str(script), ["socketlab", "run", ""]) == ["tcp", "udp"]
    assert "--json" in _bash_complete(str(script), ["socketlab", "status", "--"])


def test_zsh_completion_is_a_completion_function():
    code, out, _err = cli("completion", "zsh")
    assert code == 0
    assert out.startswith("#compdef socketlab")
    assert "experiments" in out
    if shutil.which("zsh"):  # not on every machine: then the script's form is what is checked
        subprocess.run(["zsh", "-n"], input=out, text=True, check=True, timeout=20)


def test_status_as_json(status_lab):
    code, out, _err = cli("-p", "lab3", "status", "--json")
    assert code == ExitCode.OK
    data = json.loads(out)
    assert (data["project"], data["subnet"], data["running"]) == ("lab3", "192.168.33.0/24", True)
    assert [h["name"] for h in data["hosts"]] == ["server", "client"]


def test_status_as_json_of_a_lab_that_is_not_there(status_lab, monkeypatch):
    absent = [{"name": h, "address": "-", "state": "absent", "container": "-"} for h in ("server", "client")]
    monkeypatch.setattr(StatusLab, "running", classmethod(
        lambda cls, project, progress=None: cls(LabConfig(project=project), absent, None)))
    code, out, _err = cli("status", "--json")
    assert code == ExitCode.FAILED
    assert json.loads(out) == {"project": "socketlab", "subnet": None, "running": False, "hosts": [],
                               "shaping": {}}


def test_status_says_which_host_is_shaped(status_lab, monkeypatch):
    def shaped(cls, project, progress=None):
        lab = cls(LabConfig(project=project))
        lab.shaping = {"client": {"egress": {"spec": "delay 100ms", "faults": [], "backend": "engine"}}}
        return lab
    monkeypatch.setattr(StatusLab, "running", classmethod(shaped))
    code, out, _err = cli("status")
    assert code == ExitCode.OK
    assert out.splitlines()[-1] == "shaped: client egress: delay 100ms (backend engine)"
    code, out, _err = cli("status", "--json")
    assert json.loads(out)["shaping"]["client"]["egress"]["spec"] == "delay 100ms"
    assert json.loads(out)["shaping"]["server"] == {"egress": None, "ingress": None}


def test_down_as_json_names_what_was_removed(status_lab):
    code, out, _err = cli("down", "-p", "lab4", "--json")
    assert code == ExitCode.OK
    assert json.loads(out) == {"project": "lab4",
                               "removed": ["container lab4_server_1", "network lab4_labnet"]}


@pytest.mark.parametrize(("given", "chosen"), [
    (None, {"inconclusive"}),
    (["does not hold"], {"does not hold"}),
    (["does not hold,inconclusive", "holds in part"], {"does not hold", "inconclusive", "holds in part"}),
])
def test_fail_on_reads_verdicts(given, chosen):
    assert fail_on(given) == chosen


@pytest.mark.parametrize("argv", [
    ["run", "tcp", "--bufsize", "0"],
    ["run", "udp", "--count", "-1"],
    ["up", "--port", "0"],
    ["up", "--subnet", "nonsense"],
    ["up", "--server-ip", "10.0.0.5"],
    ["-p", "Bad Name", "status"],
    ["shape", "client", "--loss", "150%"],
    ["shape", "client", "--delay", "fast"],
    ["experiments", "C99"],
    ["experiments", "C1", "--fail-on", "sometimes"],
    ["bench", "lifecycle", "--repeat", "0"],
    ["bench", "lifecycle", "--repeat", "many"],
    ["run", "sctp"],
    ["completion", "fish"],
], ids=lambda argv: "-".join(argv).replace(" ", "_"))
def test_bad_option_values_are_usage_errors(argv):
    code, out, err = cli(*argv)
    assert code == ExitCode.USAGE == 64, err
    assert out == ""
    assert "error" in err


class Engine:
    """What the engine lists: two labs (one with a stopped host), a sidecar, an orphan network."""

    def containers(self, *, all=False, filters=None):
        assert all
        assert filters == {"label": "io.socketlab.lab"}
        return [_container("lab1", "server", "running", "10.9.0.5"),
                _container("lab1", "client", "running", "10.9.0.6"),
                _container("lab2", "server", "running", "10.9.1.5"),
                _container("lab2", "client", "exited", ""),
                {**_container("lab2", "server-instruments", "running", ""),
                 "Labels": {"com.docker.compose.project": "lab2", "io.socketlab.lab": "1",
                            "io.socketlab.instruments-for": "server"}}]

    def networks(self, *, filters=None):
        return [_network("lab1", "10.9.0.0/24"), _network("lab2", "10.9.1.0/24"),
                _network("lab3", "10.9.2.0/24")]

    def read_file(self, container, path):
        """lab-shape's state: lab1's client shaped on its way out; lab2's server through its sidecar."""
        shaped = {("lab1client", "egress"): {"spec": "delay 100ms", "faults": [], "backend": "engine"},
                  ("lab2server-instruments", "ingress"): {"spec": "rate 1mbit", "faults": [],
                                                          "backend": "engine"}}
        direction = path.rsplit("shape-", 1)[-1].removesuffix(".json")
        found = shaped.get((container.rstrip("0"), direction))
        return json.dumps(found).encode() if found else None


def _container(project, service, state, ip):
    return {"Id": f"{project}{service}".ljust(64, "0"), "Names": [f"/{project}_{service}_1"],
            "State": state, "Labels": {"com.docker.compose.project": project,
                                       "com.docker.compose.service": service, "io.socketlab.lab": "1"},
            "NetworkSettings": {"Networks": {"labnet": {"IPAddress": ip}}}}


def _network(project, subnet):
    return {"Name": f"{project}_labnet", "Labels": {"com.docker.compose.project": project},
            "IPAM": {"Config": [{"Subnet": subnet}]}}


@pytest.fixture
def engine(monkeypatch):
    from socketlab.lab import docker_http

    monkeypatch.setattr(docker_http.DockerHTTP, "from_env", classmethod(lambda cls: Engine()))


def test_ls_lists_every_lab_with_its_state_subnet_and_hosts(engine):
    code, out, _err = cli("ls", "--json")
    assert code == ExitCode.OK
    labs = {lab["project"]: lab for lab in json.loads(out)}
    assert list(labs) == ["lab1", "lab2", "lab3"]
    assert labs["lab1"]["state"] == "running"
    assert labs["lab1"]["subnets"] == ["10.9.0.0/24"]
    assert [(h["name"], h["address"]) for h in labs["lab1"]["hosts"]] == [
        ("client", "10.9.0.6"), ("server", "10.9.0.5")]
    assert labs["lab2"]["state"] == "partly running (1/2)"
    assert [h["name"] for h in labs["lab2"]["hosts"]] == ["client", "server"]  # no sidecar
    assert (labs["lab3"]["state"], labs["lab3"]["hosts"]) == ("no hosts", [])
    assert labs["lab1"]["shaping"]["client"] == {
        "egress": {"spec": "delay 100ms", "faults": [], "backend": "engine"}, "ingress": None}
    assert labs["lab1"]["shaping"]["server"] == {"egress": None, "ingress": None}
    assert labs["lab2"]["shaping"]["server"]["ingress"]["spec"] == "rate 1mbit"  # read in its sidecar
    assert "client" not in labs["lab2"]["shaping"]  # not running: not asked


def test_ls_as_a_table(engine):
    code, out, _err = cli("ls")
    assert code == ExitCode.OK
    row = next(line for line in out.splitlines() if "lab2" in line)
    assert "partly running (1/2)" in row
    assert "10.9.1.0/24" in row
    assert "client - (exited)" in out
    assert "client egress: delay 100ms (backend engine)" in out
    assert "server ingress: rate 1mbit (backend engine)" in out


@pytest.mark.parametrize(("keep", "fail_on_", "code"), [
    (["C4"], None, ExitCode.OK),                                  # holds: nothing fails
    (["C4", "C9"], None, ExitCode.FAILED),                        # inconclusive fails by default
    (["C4", "C7"], None, ExitCode.OK),                            # does not hold: a finding
    (["C4", "C7"], {"does not hold"}, ExitCode.FAILED),           # ... unless asked to fail on it
    (["C4", "C6"], {"does not hold"}, ExitCode.OK),
    (["C6"], {"holds in part", "does not hold"}, ExitCode.FAILED),
])
def test_fail_on_decides_the_exit_code(tmp_path, keep, fail_on_, code):
    import argparse
    import io

    from rich.console import Console

    from socketlab.cli.experiments import _show_results
    from tests.unit.test_report import META, synthetic_results

    results = [r for r in synthetic_results(tmp_path) if r.experiment.id in keep]
    args = argparse.Namespace(junit=None, json=True, fail_on=fail_on_)
    err = io.StringIO()
    assert _show_results(args, Console(file=io.StringIO()), Console(file=err, width=200),
                         results, tmp_path, META) == code
    # an exit of 1 says why in one line on err (stdout stays JSON), an exit of 0 says nothing
    said = {("C4", "C9"): "exit 1: C9 inconclusive (--fail-on inconclusive)",
            ("C4", "C7"): "exit 1: C7 does not hold (--fail-on does not hold)",
            ("C6",): "exit 1: C6 holds in part (--fail-on holds in part, does not hold)"}
    assert err.getvalue() == (said[tuple(keep)] + "\n" if code == ExitCode.FAILED else "")


def test_doctor_as_json_says_what_failed():
    code, out, _err = cli("doctor", "--json")
    data = json.loads(out)
    assert code == ExitCode.FAILED
    assert data["ok"] is False
    engine = next(c for c in data["checks"] if c["name"] == "docker engine")
    assert (engine["ok"], engine["required"]) == (False, True)
    assert "not running" in engine["detail"]
    assert data["shaping"] is None  # no engine: nothing asked in a container


def test_every_command_is_in_the_table_of_groups_and_a_command_loads_only_its_own():
    """COMMANDS names each command's group: the whole parser has exactly those commands, and
    a parser made for one command has that command alone (with the same options)."""
    import argparse

    from socketlab.cli.app import COMMANDS, build_parser

    def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return dict(sub.choices)

    everything = commands(build_parser())
    assert set(everything) == set(COMMANDS)
    for name, whole in everything.items():
        alone = commands(build_parser(["-p", "x", "--engine", "compose", name, "--help"]))
        assert set(alone) <= {n for n, g in COMMANDS.items() if g == COMMANDS[name]}
        assert name in alone
        assert alone[name].format_help() == whole.format_help()


@pytest.mark.parametrize(("argv", "named"), [
    (["run", "tcp"], "run"), (["-p", "run", "up"], "up"), (["--project=x", "down"], "down"),
    (["--debug", "--place", "server=n1", "status"], "status"), (["--version"], None),
    (["-h"], None), (["--", "ls"], "ls"), ([], None)])
def test_the_command_an_argv_names(argv, named):
    from socketlab.cli.app import command_named

    assert command_named(argv) == named


@pytest.mark.parametrize("argv", [["nonsense"], ["-p", "x", "--help"], ["--help"]])
def test_an_argv_naming_no_command_gets_every_command_in_its_help(argv):
    code, out, err = cli(*argv)
    assert code in (ExitCode.OK, ExitCode.USAGE)
    for name in ("demo", "experiments", "sandbox", "exercise"):
        assert name in out + err


def test_a_run_starts_before_rich_is_loaded():
    """`run tcp` parses, finds its lab and starts its exchange with rich not yet imported (it
    loads while the exchange waits), and imports no other command's group."""
    loaded = loaded_after("from socketlab.cli.app import build_parser\nbuild_parser(['run', 'tcp'])\n"
                          "import socketlab.cli.run, socketlab.act.programs, socketlab.lab.engine_compose")
    assert "socketlab.cli.run" in loaded
    # making a lab (compose, a subnet claim, a temporary folder) is not a run's business
    assert loaded & {"socketlab.lab.compose", "socketlab.lab.subnets", "subprocess", "tempfile"} == set()
    assert {m for m in loaded if m.split(".")[0] == "rich"} == set()
    assert loaded & {"socketlab.cli.experiments", "socketlab.cli.exercise", "socketlab.cli.shape"} == set()


def test_socketlab_cli_main_stays_the_command_once_the_cli_is_loaded():
    """The console script's `socketlab.cli:main` is a function whatever was imported before."""
    loaded = loaded_after("import socketlab.cli.app, socketlab.cli\n"
                          "print('main-is-' + type(socketlab.cli.main).__name__)")
    assert "main-is-function" in loaded
