"""What is shaped, read without a process in the host: lab-shape's own state files, found where
lab-shape writes them; `shape --show --json` and `--backends --json`."""

from __future__ import annotations

import json

import pytest

from socketlab.act.shaping import DIRECTIONS, STATE_FILE, parse_state, read_states, shaped_now
from socketlab.cli.app import ExitCode
from socketlab.lab.process import ExecResult
from socketlab.lab.shapespec import labshape
from tests.unit.conftest import POST, cli


def test_the_state_files_are_where_lab_shape_writes_them():
    paths = labshape().paths
    assert [STATE_FILE.format(direction=d) for d in DIRECTIONS] == [paths.state(d) for d in DIRECTIONS]


@pytest.mark.parametrize(("raw", "state"), [
    (None, None), (b"", None), (b"not json", None), (b"[1, 2]", None),
    (b'{"spec": "delay 10ms", "faults": [], "backend": "engine"}',
     {"spec": "delay 10ms", "faults": [], "backend": "engine"}),
])
def test_a_state_file_is_read_as_lab_shape_reads_it(raw, state):
    assert parse_state(raw) == state


class Lab:
    """Files of two hosts, as the engine copies them out; no exec allowed."""

    files = {("client", "/run/socketlab/shape-egress.json"): b'{"spec": "loss 5%", "faults": [], '
                                                              b'"backend": "engine"}'}

    topology = POST

    def read_file(self, host, path, *, instruments=False):
        return self.files.get((host, path))

    def exec(self, *_args, **_kwargs):
        raise AssertionError("a process was started in a host")


def test_shaped_now_reads_every_host_and_direction_without_a_process():
    assert shaped_now(Lab()) == {
        "server": {"egress": None, "ingress": None},
        "client": {"egress": {"spec": "loss 5%", "faults": [], "backend": "engine"}, "ingress": None}}
    assert read_states(lambda _path: None) == {"egress": None, "ingress": None}


def test_show_as_json(lab):
    lab.answer = ExecResult(0, '{"egress": {"spec": "delay 100ms", "faults": [], "backend": "engine"}, '
                               '"ingress": null}\n', "", 0.1)
    code, out, err = cli("shape", "client", "--show", "--json")
    assert (code, err) == (ExitCode.OK, "")
    assert json.loads(out) == {"host": "client", "ingress": None,
                               "egress": {"spec": "delay 100ms", "faults": [], "backend": "engine"}}
    assert lab.calls == [("client", ["lab-shape", "show", "--json"])]


def test_json_without_show_or_backends_is_a_usage_error(lab):
    code, out, err = cli("shape", "client", "--delay", "10ms", "--json")
    assert (code, out) == (ExitCode.USAGE, "")
    assert err.splitlines()[0] == "error: --json goes with --show or --backends"
    assert lab.calls == []
