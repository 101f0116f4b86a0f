"""`socketlab shape` in-process: a bad spec is refused before any lab is touched; a good
one becomes exactly one `lab-shape` command in the host."""

from __future__ import annotations

import pytest

from socketlab.cli.app import ExitCode
from socketlab.lab.process import ExecResult
from tests.unit.conftest import cli


@pytest.mark.parametrize(("argv", "error"), [
    (["--loss", "150%"], "error: loss 150% is out of range: use 0-100%"),
    (["--delay", "100"], "error: delay 100 needs a time unit: ms, s or us (e.g. 100ms)"),
    (["--jitter", "10ms"], "error: --jitter needs --delay"),
    (["--spec", "delay 10ms reorder 5%", "--rate", "1mbit", "--limit", "0"],
     "error: limit 0 is out of range: use 1-100000 packets"),
    (["--spec", "reorder 5%"], "error: reorder needs a delay: reordered packets are the ones sent without "
                               "it (e.g. delay 50ms reorder 25%)"),
    ([], "error: nothing to do: give a spec, or --show, --clear or --backends"),
    (["--rate", "0mbit"], "error: rate 0mbit is out of range: use 8kbit-100gbit (no limit: leave rate out)"),
    (["--loss", "90%", "--loss-burst", "2"], "error: loss 90% burst 2 is impossible: with 90% lost, bursts "
                                             "average at least 9 packets"),
    (["--loss", "5%", "--for", "0s"], "error: --for 0s is out of range: use 100ms-7d"),
    (["--loss", "5%", "--for", "30"], "error: --for 30 needs a time unit: ms, s or us (e.g. 30ms)"),
    (["--clear", "--for", "30s"], "error: --for goes with a spec"),
])
def test_a_bad_spec_is_one_line_exit_64_and_nothing_is_applied(lab, argv, error):
    code, out, err = cli("shape", "client", *argv)
    assert code == ExitCode.USAGE == 64
    assert out == ""
    assert err.splitlines()[0] == error
    assert len(err.splitlines()) == 2
    assert err.splitlines()[1].startswith("hint: ")
    assert lab.opened == []
    assert lab.calls == []


def test_options_become_one_canonical_lab_shape_apply(lab):
    code, out, err = cli("shape", "client", "--delay", "100ms", "--jitter", "10ms", "--loss", "5%",
                         "--rate", "1mbit", "--dir", "ingress")
    assert (code, err) == (ExitCode.OK, "")
    assert lab.calls == [("client", ["lab-shape", "apply", "--dir", "ingress", "--backend", "auto",
                                     "delay 100ms 10ms loss 5% rate 1000000bit"])]
    assert out.strip() == "client ingress: delay 100ms 10ms loss 5% rate 1000000bit (backend engine)"


def test_clear_without_dir_clears_both(lab):
    code, out, _err = cli("shape", "server", "--clear")
    assert code == ExitCode.OK
    assert lab.calls == [("server", ["lab-shape", "clear"])]
    assert "both directions" in out


def test_a_refusal_in_the_host_is_a_lab_error(lab):
    lab.answer = ExecResult(2, "", "lab-shape: cannot shape egress with netem on this host (netem cannot: "
                                   "delay: the kernel has no sch_netem)\n", 0.1)
    code, _out, err = cli("shape", "client", "--delay", "10ms", "--backend", "netem")
    assert code == ExitCode.LAB_ERROR
    assert err.splitlines()[0] == ("error: client: cannot shape egress with netem on this host (netem "
                                   "cannot: delay: the kernel has no sch_netem)")


def test_a_failed_step_says_which_and_that_it_was_restored(lab):
    lab.answer = ExecResult(1, "", "lab-shape: step `ip link add slab-ifb0 type ifb` failed: boom; "
                                   "ingress is left unshaped, as it was\n", 0.1)
    code, _out, err = cli("shape", "client", "--rate", "1mbit", "--dir", "ingress")
    assert code == ExitCode.LAB_ERROR
    assert err.splitlines()[0].endswith("ingress is left unshaped, as it was")


def test_unknown_host_is_refused_before_the_lab(lab):
    code, _out, err = cli("shape", "router", "--loss", "1%")
    assert code == ExitCode.USAGE
    assert err.splitlines()[0] == "error: unknown host 'router'"


def test_for_is_applied_with_a_timer_in_the_host_then_waited_for(lab):
    """--for: the host's own timer reverts it; the command waits and says when it has."""
    code, out, err = cli("shape", "client", "--loss", "5%", "--for", "30s")
    assert (code, err) == (ExitCode.OK, "")
    (host, apply), (_, wait) = lab.calls
    assert host == "client"
    assert apply[:8] == ["lab-shape", "apply", "--dir", "egress", "--backend", "auto", "--for", "30000ms"]
    token = apply[apply.index("--token") + 1]
    assert len(token) == 12
    assert wait == ["lab-shape", "wait-reverted", "--dir", "egress", "--token", token, "--timeout", "45"]
    assert out.splitlines() == ["client egress: loss 5% (backend engine, for 30s: it reverts by itself)",
                                "client egress: reverted after 30s, as asked"]


def test_a_signal_during_the_apply_waits_for_it_then_says_what_is_in_place(lab):
    """SIGTERM to this process alone while the host applies: the host's apply is whole either
    way, so the command waits for it, then says the truth as its last line."""
    import os
    import signal

    answer = lab.answer

    def exec_then_signalled(host, argv, *, timeout=None, instruments=False):
        lab.calls.append((host, list(argv)))
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the exec "runs"
        return answer

    lab.exec = exec_then_signalled
    code, out, err = cli("shape", "client", "--loss", "5%")
    assert code == ExitCode.INTERRUPTED
    assert out == ""
    assert err.splitlines()[-1] == ("interrupted: the shaping was finished first and is in place: client "
                                    "egress: loss 5% (backend engine); `socketlab shape client --clear` "
                                    "removes it")


def test_ctrl_c_while_waiting_for_the_timer_reverts_at_once_and_says_so(lab):
    answer = lab.answer

    def exec_interrupted_while_waiting(host, argv, *, timeout=None, instruments=False):
        lab.calls.append((host, list(argv)))
        if argv[1] == "wait-reverted":
            raise KeyboardInterrupt
        return answer

    lab.exec = exec_interrupted_while_waiting
    code, out, err = cli("shape", "client", "--delay", "100ms", "--for", "1min")
    assert code == ExitCode.USAGE  # "1min" is no time unit of tc's: refused before anything
    assert lab.calls == []
    code, out, err = cli("shape", "client", "--delay", "100ms", "--for", "60s")
    assert code == ExitCode.INTERRUPTED
    assert [argv[1] for _host, argv in lab.calls] == ["apply", "wait-reverted", "clear"]
    assert lab.calls[-1] == ("client", ["lab-shape", "clear", "--dir", "egress"])
    assert err.splitlines()[-1] == ("interrupted: client egress: reverted early (cleared before its 60s "
                                    "were up)")
