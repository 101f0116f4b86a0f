"""The instruments (images/lab/instruments), run for real on this machine's loopback: each
prints event lines the lab's parser reads, ends by itself, and counts what it should."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time

import pytest

from socketlab.act import instruments
from socketlab.lab.assets import IMAGE_CONTEXT
from socketlab.observe.events import parse_output
from tests.unit.loopback import LOOPBACK, WAIT, env, free_port


def command(name: str, *args: object, **options: object) -> list[str]:
    return [sys.executable, *instruments.argv(name, *args, root=str(IMAGE_CONTEXT), **options)[1:]]


def start(name: str, *args: object, **options: object) -> subprocess.Popen[str]:
    """A server instrument, once it has said `listening`."""
    proc = subprocess.Popen(command(name, *args, **options), stdout=subprocess.PIPE, text=True, env=env())
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("listening ")
    return proc


def finish(proc: subprocess.Popen[str]) -> dict:
    out, _ = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0
    return instruments.summary(parse_output(out))


def run(name: str, *args: object, **options: object) -> dict:
    done = subprocess.run(command(name, *args, **options), capture_output=True, text=True,
                          timeout=WAIT, env=env(), check=True)
    return instruments.summary(parse_output(done.stdout))


def test_argv_spells_options_as_flags():
    assert instruments.argv("udp_sink", 6666, numbered=True, idle=0.5, rcvbuf=None, each=False) == \
        ["python3", "/lab/instruments/udp_sink.py", "6666", "--numbered", "--idle", "0.5"]
    with pytest.raises(ValueError, match="unknown instrument"):
        instruments.argv("udp_teleport")


def test_ping_against_echo_gets_every_round_trip():
    port = free_port()
    echo = start("udp_echo", port, idle=1.0, most=8.0)
    ping = run("udp_ping", LOOPBACK, port, count=20, gap=0.002, wait=1.0)
    assert (ping["sent"], ping["echoed"]) == (20, 20)
    assert len(instruments.numbers(ping["rtts"])) == 20
    assert finish(echo)["echoed"] == 20  # and "stop" ended it


def test_blast_into_sink_counts_every_numbered_datagram():
    port = free_port()
    sink = start("udp_sink", port, numbered=True, idle=0.5, first=5.0)
    sent = run("udp_blast", LOOPBACK, port, count=300, pps=3000.0, size=100)
    got = finish(sink)
    assert (sent["sent"], sent["errors"]) == (300, 0)
    assert (got["received"], got["distinct"], got["dup"], got["bytes"]) == (300, 300, 0, 30000)


def test_sink_counts_duplicates_reordering_and_overtakers():
    """Datagrams sent in the order 0 2 1 3 5 4 6 6: 2 and 5 overtook, 1 and 4 came late."""
    port = free_port()
    sink = start("udp_sink", port, numbered=True, idle=0.5, first=5.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for k in (0, 2, 1, 3, 5, 4, 6, 6):
            s.sendto(struct.pack("!Id", k, time.time()), (LOOPBACK, port))
    got = finish(sink)
    assert (got["received"], got["distinct"], got["dup"], got["ooo"], got["overtook"]) == (8, 7, 1, 2, 2)
    assert (got["missing"], got["lost_runs"]) == (0, 0)


def test_sink_counts_the_runs_of_missing_numbers():
    """1, 2 and 5-7 of 0-9 never came: 5 missing in 2 runs (a mean burst of 2.5)."""
    port = free_port()
    sink = start("udp_sink", port, numbered=True, idle=0.5, first=5.0, expect=10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for k in (0, 3, 4, 8, 9):
            s.sendto(struct.pack("!Id", k, time.time()), (LOOPBACK, port))
    got = finish(sink)
    assert (got["distinct"], got["missing"], got["lost_runs"]) == (5, 5, 2)


def test_tcp_send_into_sink_delivers_every_byte_with_the_congestion_control_asked():
    port = free_port(socket.SOCK_STREAM)
    sink = start("tcp_sink", port, most=8.0)
    sent = run("tcp_send", LOOPBACK, port, bytes=300_000, cc="reno")  # allowed to anyone
    got = finish(sink)
    assert sent["sent"] == got["received"] == 300_000
    assert sent["mss"] > 0
    assert sent["cc"] == "reno"
    assert len(got["sha256"]) == 64


def test_a_sink_with_nothing_coming_ends_by_itself():
    port = free_port()
    got = finish(start("udp_sink", port, first=0.3))
    assert got["received"] == 0


def test_tcp_send_with_a_congestion_control_the_kernel_lacks_says_so():
    done = subprocess.run(command("tcp_send", LOOPBACK, free_port(socket.SOCK_STREAM), bytes=1, cc="nosuch"),
                          capture_output=True, text=True, timeout=WAIT, env=env())
    assert done.returncode == 2
    [error] = parse_output(done.stdout)
    assert (error.name, error.fields["op"], error.fields["cc"]) == ("error", "setsockopt", "nosuch")
