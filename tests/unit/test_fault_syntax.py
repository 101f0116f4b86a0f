"""The compact fault syntax (`socketlab shape --fault`): parsed into lab-nfq's fault dicts,
checked by lab-nfq's own parser, refused in one line; the CLI passes faults to lab-shape, and
`auto` picks the engine for them even where netem exists."""

from __future__ import annotations

import json

import pytest

from socketlab.act import shaping
from socketlab.cli.app import ExitCode
from socketlab.errors import ConfigError, UnknownHost
from tests.unit.conftest import cli


@pytest.mark.parametrize(("text", "fault"), [
    ("drop tcp flags=SA nth=1",
     {"action": "drop", "match": {"proto": "tcp", "flags": "SA", "nth": 1}}),
    ("delay 300ms tcp min_len=1 nth=3",
     {"action": "delay", "ms": 300.0, "match": {"proto": "tcp", "min_len": 1, "nth": 3}}),
    ("duplicate udp dport=6666 nth=2",
     {"action": "duplicate", "match": {"proto": "udp", "dport": 6666, "nth": 2}}),
    ("corrupt proto=udp nth=1,3 src=192.168.33.6",
     {"action": "corrupt", "match": {"proto": "udp", "nth": [1, 3], "src": "192.168.33.6"}}),
    ("DROP TCP flags=sa", {"action": "drop", "match": {"proto": "tcp", "flags": "SA"}}),
    ("delay 1s max-len=0", {"action": "delay", "ms": 1000.0, "match": {"max_len": 0}}),
    ("drop", {"action": "drop", "match": {}}),
])
def test_a_fault_becomes_lab_nfqs_dict(text, fault):
    got = shaping.parse_fault(text)
    assert got == fault
    shaping.labshape().parse_fault(0, json.loads(json.dumps(got)))  # lab-nfq takes it as is


@pytest.mark.parametrize(("text", "why"), [
    ("", "the fault is empty"),
    ("explode tcp", "action 'explode'; use one of drop, delay, duplicate, corrupt"),
    ("delay tcp nth=1", "a delay needs a time after it (e.g. delay 300ms)"),
    ("delay 300 tcp", "delay 300 needs a time unit: ms, s or us (e.g. 300ms)"),
    ("drop tcp flags=XZ", "match flags 'XZ': use letters of FSRPAUEC"),
    ("drop tcp colour=red", "unknown match keys ['colour']"),
    ("drop tcp nth=0", "nth=0: ordinals are whole numbers from 1 (e.g. nth=1,3)"),
    ("drop tcp dport=70000", "dport=70000 is not a port (0-65535)"),
    ("drop tcp len=-1", "len=-1 is not a length in bytes"),
    ("drop tcp udp", "proto is given twice"),
    ("drop sctp", "match proto 'sctp': use one of icmp, tcp, udp"),
    ("drop src=1.2.3", "src=1.2.3 is not an IPv4 address"),
    ("drop dport=", "dport= needs a value"),
])
def test_a_bad_fault_is_refused_in_one_line(text, why):
    with pytest.raises(ConfigError) as caught:
        shaping.parse_fault(text)
    message = str(caught.value)
    assert message.startswith(f"fault {text.strip()!r}: ")
    assert why in message
    assert "\n" not in message
    assert "nth=1" in caught.value.hint


@pytest.mark.parametrize("text", [
    "drop tcp flags=SA nth=1", "delay 300ms tcp min_len=1 nth=3", "duplicate udp dport=6666 nth=2",
    "corrupt udp src=192.168.33.6 nth=1,3", "delay 0.5ms max_len=0", "drop",
])
def test_a_fault_is_shown_in_the_form_it_is_written(text):
    """labshape's fault_text is parse_fault_text's inverse: what is shown can be typed again."""
    ls = shaping.labshape()
    fault = ls.parse_fault_text(text)

    assert ls.fault_text(fault) == text
    assert ls.fault_text(json.loads(json.dumps(fault))) == text  # as a state file keeps it


def test_shaping_in_place_is_described_in_the_fault_grammar_not_as_dicts():
    """`status`, `run` and `ls` (the host side) and `lab-shape show` (in the host) say the same."""
    state = {"spec": "delay 100ms", "backend": "engine",
             "faults": [{"action": "drop", "match": {"nth": 1, "flags": "SA", "proto": "tcp"}}]}

    assert shaping.describe_state("server", {"egress": state, "ingress": None}) == [
        "server egress: delay 100ms; fault drop tcp flags=SA nth=1 (backend engine)"]
    assert shaping.labshape().host.describe_state(state) == \
        "delay 100ms; fault drop tcp flags=SA nth=1 (backend engine)"


def test_auto_picks_the_engine_for_faults_even_with_netem():
    ls = shaping.labshape()
    caps = frozenset(ls.FEATURES)  # netem and everything else
    fault = shaping.parse_fault("drop tcp flags=SA nth=1")
    assert ls.choose_backend(ls.parse("", [fault]), "egress", "auto", caps) == "engine"
    assert ls.choose_backend(ls.parse("delay 10ms", [fault]), "egress", "auto", caps) == "engine"
    assert ls.choose_backend(ls.parse("delay 10ms"), "egress", "auto", caps) == "netem"
    with pytest.raises(ls.ShapeError, match="only the engine backend serves faults"):
        ls.choose_backend(ls.parse("", [fault]), "egress", "netem", caps)


def test_the_api_takes_faults_in_their_compact_form_too(lab):
    """shaped(..., faults=["drop tcp flags=SA nth=1"]) as with parse_fault's dicts."""
    with shaping.shaped(lab, "server", faults=["drop tcp flags=SA nth=1"]) as record:
        [(host, argv)] = lab.calls
    assert host == "server"
    assert json.loads(argv[argv.index("--faults") + 1]) == [shaping.parse_fault("drop tcp flags=SA nth=1")]
    assert record["faults"] == [shaping.parse_fault("drop tcp flags=SA nth=1")]


@pytest.mark.parametrize("faults", [["drop tcp nth=zero"], [{"action": "explode"}], ["drop tcp", 7]])
def test_shaped_refuses_a_bad_fault_before_it_touches_the_host(lab, faults):
    """Nothing is applied, and the host's shaping as it was is not cleared either."""
    with pytest.raises(ConfigError), shaping.shaped(lab, "server", faults=faults):
        pass
    assert lab.calls == []


def test_shaped_refuses_an_unknown_host_before_it_touches_anything(lab):
    with pytest.raises(UnknownHost), shaping.shaped(lab, "nohost", "loss 5%"):
        pass
    assert lab.calls == []


# ---------------------------------------------------------------- the CLI
def test_faults_reach_lab_shape_as_json(lab):
    code, out, err = cli("shape", "server", "--fault", "drop tcp flags=SA nth=1",
                         "--fault", "delay 300ms tcp min_len=1 nth=3")
    assert (code, err) == (ExitCode.OK, "")
    [(host, argv)] = lab.calls
    assert host == "server"
    assert argv[:7] == ["lab-shape", "apply", "--dir", "egress", "--backend", "auto", "--faults"]
    assert json.loads(argv[7]) == [shaping.parse_fault("drop tcp flags=SA nth=1"),
                                   shaping.parse_fault("delay 300ms tcp min_len=1 nth=3")]
    assert "fault drop tcp flags=SA nth=1; fault delay 300ms" in out


def test_faults_go_with_a_spec(lab):
    code, _out, err = cli("shape", "client", "--delay", "10ms", "--fault", "duplicate udp nth=2")
    assert (code, err) == (ExitCode.OK, "")
    assert lab.calls[0][1][-1] == "delay 10ms"
    assert json.loads(lab.calls[0][1][-2])[0]["action"] == "duplicate"


def test_a_bad_fault_touches_nothing(lab):
    code, out, err = cli("shape", "client", "--fault", "drop tcp nth=zero")
    assert code == ExitCode.USAGE
    assert out == ""
    assert lab.calls == []
    assert err.splitlines()[0].startswith("error: fault 'drop tcp nth=zero': nth=zero")


def test_a_fault_cannot_go_with_show(lab):
    code, _out, err = cli("shape", "client", "--show", "--fault", "drop tcp")
    assert code == ExitCode.USAGE
    assert lab.calls == []
    assert "cannot go with --show" in err


def test_plan_passes_the_faults_too(lab):
    code, _out, _err = cli("shape", "client", "--plan", "--fault", "drop udp nth=1")
    assert code == ExitCode.OK
    argv = lab.calls[0][1]
    assert argv[:2] == ["lab-shape", "plan"]
    assert "--faults" in argv
