"""doctor: the probe script (valid sh, safe quoting) and the parsing of its output."""

from __future__ import annotations

import subprocess

import pytest

from socketlab.tools import doctor
from socketlab.tools.doctor import KERNEL_PROBES, Check, _quote, parse_probes, probe_script


def sh(script: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", *options], input=script, capture_output=True, text=True,
                          timeout=10)


def test_probe_script_is_valid_sh():
    done = sh(probe_script(), "-n")  # -n: parse only, run nothing

    assert (done.returncode, done.stderr) == (0, "")


def test_probe_script_calls_every_probe_once_in_order():
    calls = [ln for ln in probe_script().splitlines() if ln.startswith("probe ")]

    assert [c.split("'")[1] for c in calls] == list(KERNEL_PROBES)


def test_names_with_spaces_are_one_quoted_word():
    script = probe_script()

    assert "probe 'iptables statistic' 'iptables -A OUTPUT" in script
    assert "probe 'ingress+mirred' " in script


@pytest.mark.parametrize(
    "text",
    ["plain", "with space", "it's", "a 'b' c", '"double" $HOME `x` \\n'],
    ids=["plain", "space", "apostrophe", "quotes", "shell-specials"],
)
def test_quote_survives_the_shell(text):
    done = sh(f"printf '%s' {_quote(text)}")

    assert done.stdout == text


def _probe_function() -> str:
    return probe_script().splitlines()[0]


def test_probe_function_prints_ok_and_fail_lines():
    """Run the script's own `probe` function on harmless commands (no tc, no iptables)."""
    script = "\n".join([
        _probe_function(),
        f"probe {_quote('iptables statistic')} {_quote('true')}",
        f"probe netem {_quote('echo RTNETLINK answers: No such file; exit 2')}",
    ])

    done = sh(script)

    assert done.returncode == 0
    assert done.stdout == ("iptables statistic\tok\t\n"
                           "netem\tfail\tRTNETLINK answers: No such file\n")


def test_probe_output_round_trips_through_parse_probes():
    script = "\n".join([
        _probe_function(),
        f"probe tbf {_quote('true')}",
        f"probe ifb {_quote('echo Error: Unknown device type.; false')}",
    ])

    checks = parse_probes(sh(script).stdout)

    assert checks == [
        Check("kernel: tbf", True, KERNEL_PROBES["tbf"][1], required=False),
        Check("kernel: ifb", False, "missing: Error: Unknown device type.", required=False),
    ]


def test_parse_probes_ok_fail_and_unknown():
    output = ("netem\tok\t\n"
              "htb\tfail\tError: Specified qdisc kind is unknown.\n"
              "bogus\tok\t\n"
              "some noise from the container\n"
              "NFQUEUE\tfail\t\n")

    checks = parse_probes(output)

    assert checks == [
        Check("kernel: netem", True,
              "delay, loss, duplication, reordering, corruption (sch_netem)", required=False),
        Check("kernel: htb", False, "missing: Error: Specified qdisc kind is unknown.",
              required=False),
        Check("kernel: NFQUEUE", False,
              "missing: per-packet decisions in user space (delay, reorder, packet-exact faults)",
              required=False),
    ]


def test_parse_probes_of_nothing_is_nothing():
    assert parse_probes("") == []


def test_render_marks_each_check():
    from io import StringIO

    from rich.console import Console

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


def test_probe_detail_is_not_glob_expanded(tmp_path):
    (tmp_path / "file-a").write_text("")
    (tmp_path / "file-b").write_text("")
    failing = 'echo "Error: bad value *"; false'  # the command itself prints a literal *
    script = "\n".join([_probe_function(), f"probe netem {_quote(failing)}"])

    done = subprocess.run(["sh"], input=script, capture_output=True, text=True, timeout=10,
                          cwd=tmp_path)

    assert done.stdout == "netem\tfail\tError: bad value *\n"
