"""doctor: its checks rendered, and the kernel's features taken from lab-shape's own probe
(one probe set: what doctor reports is what lab-shape decides with)."""

from __future__ import annotations

import importlib
from io import StringIO

from rich.console import Console

from socketlab.lab.process import ExecResult
from socketlab.lab.shapespec import labshape
from socketlab.tools import doctor
from socketlab.tools.doctor import Check, kernel_checks, parse_backends

WITHOUT_NETEM = ("kernel: netem=no netem-seed=no tbf=yes htb=yes bpf=yes ifb=yes statistic=yes nfqueue=yes "
                 "lab-nfq=yes\nparameter\tegress:netem\tegress:engine\n"
                 "delay\tno: the kernel has no sch_netem\tyes\n")


def test_kernel_checks_are_lab_shapes_features_with_what_each_serves():
    checks = {c.name: c for c in kernel_checks(parse_backends(WITHOUT_NETEM))}
    features = labshape().FEATURES
    assert list(checks) == [f"kernel: {name}" for name in features]  # every feature, in order
    assert checks["kernel: netem"] == Check("kernel: netem", False, "missing: the kernel has no sch_netem",
                                            required=False)
    assert checks["kernel: tbf"] == Check("kernel: tbf", True, features["tbf"][0], required=False)
    assert checks["kernel: netem-seed"].detail == "missing: not tried: the kernel has no sch_netem"


def test_the_probe_doctor_reports_is_the_one_lab_shape_runs():
    """`lab-shape backends` prints its `kernel:` line from labshape.probe.FEATURES: the names
    doctor reads are the names lab-shape probes."""
    probe = importlib.import_module(labshape().__name__ + ".probe")
    assert set(probe.FEATURES) == set(probe._PROBES) | {"lab-nfq"}


def test_no_kernel_line_no_kernel_checks():
    assert kernel_checks(parse_backends("")) == []


def test_render_marks_each_check():
    checks = [Check("docker engine", True, "27.0"),
              Check("lab image", False, "missing"),
              Check("kernel: netem", False, "missing: x", required=False)]
    buf = StringIO()
    Console(file=buf, width=100).print(doctor.render(checks))

    lines = buf.getvalue().splitlines()
    assert lines[0].strip() == "socketlab doctor"
    assert [ln for ln in lines if "docker engine" in ln][0].split()[:2] == ["│", "✓"]
    assert [ln for ln in lines if "lab image" in ln][0].split()[:2] == ["│", "✗"]
    assert [ln for ln in lines if "kernel: netem" in ln][0].split()[:2] == ["│", "–"]


def answers(**by_command: ExecResult):
    """A host's answers by command (the probe takes a function that runs argv in a host)."""
    asked: list[list[str]] = []

    def run(argv: list[str]) -> ExecResult:
        asked.append(argv)
        return by_command[argv[0].replace("-", "_")]

    return run, asked


def test_the_probe_reads_lab_shapes_table_then_times_an_exec():
    run, asked = answers(lab_shape=ExecResult(0, WITHOUT_NETEM, "", 0.4), true=ExecResult(0, "", "", 0.05))
    found = doctor._probe("lab 'x', host client", run)
    assert asked == [["lab-shape", "backends"], ["true"]]
    assert found.where == "lab 'x', host client"
    assert found.support.why_not("netem", "delay") == "the kernel has no sch_netem"
    assert found.round_trip == Check("exec round trip", True,
                                     "`true` in lab 'x', host client: exit 0 in 0.05 s")


def test_a_failed_lab_shape_and_exec_are_said_not_hidden():
    run, _ = answers(lab_shape=ExecResult(1, "", "lab-shape: no such interface\n", 0.1),
                     true=ExecResult(126, "", "", 0.1))
    found = doctor._probe("a scratch container of i (no network)", run)
    assert found.support.error == ("`lab-shape backends` failed in a scratch container of i "
                                   "(no network): lab-shape: no such interface")
    assert found.support.why_not("netem", "delay") == found.support.error
    assert not found.round_trip.ok
    assert "exit 126" in found.round_trip.detail
