"""lab-nfq in real containers: an NFQUEUE rule for the lab's UDP port only, lab-nfq bound to
it, and tiny UDP programs between the lab's two hosts. Delay accuracy, packet-exact faults
(drop, corrupt, duplicate, delay; leaving and arriving), a clean stop, and its cost.
Every rule is removed and every lab-nfq stopped in `finally`; every flood is bounded."""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import Iterator

import pytest

from socketlab.lab.lab import Lab

pytestmark = pytest.mark.integration

MARK = "0x5ab"  # lab-nfq's copies carry it; the rule lets them by
# Server: echo every datagram back and print it; stop after `quiet` s of silence once
# something came (UDP has no end of stream: silence is the only end), or after `limit` s.
ECHO = r"""
import socket, sys, time
port, quiet, limit = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("", port))
    s.settimeout(quiet)
    print("bound", flush=True)
    got, end = 0, time.monotonic() + limit
    while time.monotonic() < end:
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            if got:
                break
            continue
        got += 1
        print("got", data.decode(errors="replace"), flush=True)
        s.sendto(data, peer)
"""
# Client: `n` datagrams "seq=1".."seq=n", `gap` s apart; with --rtt, wait for each echo.
PING = r"""
import json, socket, sys, time
dst, n, gap, rtt = (sys.argv[1], int(sys.argv[2])), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "rtt"
rtts = []
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.settimeout(1.0)  # an echo later than this counts as lost
    for i in range(1, n + 1):
        msg = f"seq={i}".encode()
        t0 = time.monotonic()
        s.sendto(msg, dst)
        if rtt:
            try:
                while s.recv(2048) != msg:
                    pass
                rtts.append((time.monotonic() - t0) * 1000)
            except socket.timeout:
                pass
        time.sleep(gap)
print(json.dumps(rtts))
"""
# Server: count datagrams until 1 s of silence once something came (or `limit` s).
COUNT = r"""
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind(("", port))
    s.settimeout(1.0)
    print("bound", flush=True)
    got, end = 0, time.monotonic() + limit
    while time.monotonic() < end:
        try:
            s.recv(64)
            got += 1
        except socket.timeout:
            if got:
                break
print(f"received={got}", flush=True)
"""
# Client: a bounded burst, as fast as it goes (at most `n` datagrams and 10 s).
BURST = r"""
import socket, sys, time
dst, n = (sys.argv[1], int(sys.argv[2])), int(sys.argv[3])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    sent, t0 = 0, time.monotonic()
    while sent < n and time.monotonic() - t0 < 10:
        s.sendto(b"burst-datagram!!", dst)
        sent += 1
print(f"sent={sent} seconds={time.monotonic() - t0:.3f}", flush=True)
"""




@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind(lab: Lab) -> Iterator[None]:
    yield
    for host in ("client", "server"):  # nothing left behind by any test
        assert lab.exec(host, ["pgrep", "-f", "lab-nfq"]).exit_code == 1
        assert "NFQUEUE" not in lab.exec(host, ["iptables", "-t", "mangle", "-S"]).stdout


def rule_argv(action: str, queue: int, port: int) -> list[str]:
    """The rule lab-shape installs, for the lab's UDP port only: queue 0 leaving, 1 arriving."""
    chain, dev = ("POSTROUTING", "-o") if queue == 0 else ("PREROUTING", "-i")
    return ["iptables", "-t", "mangle", action, chain, dev, "eth0", "-p", "udp", "--dport", str(port),
            "-m", "mark", "!", "--mark", MARK, "-j", "NFQUEUE", "--queue-num", str(queue),
            "--queue-bypass"]


@contextlib.contextmanager
def nfq(lab: Lab, host: str, queue: int, config: dict) -> Iterator[dict]:
    """The rule and lab-nfq in `host`; yields {"log": [...]}, filled once lab-nfq has stopped."""
    port, result = lab.config.port, {"log": []}
    added = lab.exec(host, rule_argv("-A", queue, port), timeout=10)
    assert added.exit_code == 0, added.stderr
    pidfile, log = f"/run/socketlab/nfq-{queue}.pid", f"/run/socketlab/nfq-{queue}.log"
    try:
        lab.exec(host, ["rm", "-f", log])
        proc = lab.start(host, ["lab-nfq", "--queue", str(queue), "--config", json.dumps(config),
                                "--log", log, "--pidfile", pidfile, "--max-seconds", "60"], timeout=70)
        try:
            assert proc.wait_for(lambda line: line.endswith("ready"), timeout=10), proc.stderr
            yield result
        finally:
            lab.exec(host, ["sh", "-c", f"kill -TERM $(cat {pidfile})"], timeout=10)
            assert proc.wait(timeout=10) == 0, proc.stderr
            assert lab.exec(host, ["test", "-e", pidfile]).exit_code == 1  # pidfile removed
            text = lab.exec(host, ["cat", log], timeout=10).stdout
            result["log"] = [json.loads(line) for line in text.splitlines() if line]
    finally:
        lab.exec(host, rule_argv("-D", queue, lab.config.port), timeout=10)


def start_echo(lab: Lab, quiet: float = 1.0, limit: float = 30, program: str = ECHO):
    argv = ["python3", "-c", program, str(lab.config.port)] + ([str(quiet)] if program == ECHO else [])
    proc = lab.start("server", [*argv, str(limit)], timeout=limit + 5)
    assert proc.wait_for(lambda line: line == "bound", timeout=10)
    return proc


def send(lab: Lab, n: int, gap: float, rtt: bool = False) -> list[float]:
    argv = ["python3", "-c", PING, lab.config.server_ip, str(lab.config.port), str(n), str(gap),
            "rtt" if rtt else "send"]
    result = lab.exec("client", argv, timeout=n * (gap + 1) + 10)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def received(lab: Lab, n: int, gap: float) -> list[int]:
    """Send n datagrams through the lab; the seq numbers the server got, in order."""
    echo = start_echo(lab)
    send(lab, n, gap)
    echo.wait(timeout=35)
    return [int(line.split("seq=")[1]) for line in echo.stdout_lines if line.startswith("got seq=")]


def faults(log: list[dict]) -> list[dict]:
    return [line for line in log if line["event"] == "fault"]


def summary(log: list[dict]) -> dict:
    return [line for line in log if line["event"] == "summary"][-1]


def udp_csum_errors(lab: Lab) -> int:
    lines = [line.split() for line in lab.exec("server", ["cat", "/proc/net/snmp"]).stdout.splitlines()
             if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("InCsumErrors")])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the tests --------------------------------------------------------------------------------
def test_delay_100ms_on_ping_pong(lab):
    echo = start_echo(lab, quiet=5.0)
    base = send(lab, 20, 0.01, rtt=True)
    with nfq(lab, "client", 0, {"delay_ms": 100}) as run:
        delayed = send(lab, 30, 0.01, rtt=True)
    echo.wait(timeout=35)
    assert len(delayed) == 30
    added = statistics.median(delayed) - statistics.median(base)
    # On an idle machine the median lands within 1 ms of 100; a user-space timer is only
    # as punctual as the scheduler, so a busy machine (tests in parallel) adds a few ms.
    assert 99 <= added <= 115, f"added {added:.2f} ms; delayed RTTs {sorted(delayed)}"
    assert summary(run["log"])["delayed"] == 30


def test_drop_the_second_datagram(lab):
    spec = {"faults": [{"match": {"proto": "udp", "dport": lab.config.port, "nth": 2}, "action": "drop"}]}
    with nfq(lab, "client", 0, spec) as run:
        got = received(lab, 6, 0.02)
    assert got == [1, 3, 4, 5, 6]
    [fault] = faults(run["log"])
    assert (fault["action"], fault["ordinal"], fault["proto"], fault["len"]) == ("drop", 2, "udp", 5)
    assert (fault["src"], fault["dst"], fault["dport"]) == (lab.config.client_ip, lab.config.server_ip,
                                                            lab.config.port)
    assert summary(run["log"])["dropped"] == 1


def test_corrupt_fails_the_receivers_checksum(lab):
    before = udp_csum_errors(lab)
    spec = {"faults": [{"match": {"proto": "udp", "nth": 2}, "action": "corrupt"}]}
    with nfq(lab, "client", 0, spec) as run:
        got = received(lab, 4, 0.02)
    assert got == [1, 3, 4]  # the kernel dropped #2: its UDP checksum no longer holds
    assert udp_csum_errors(lab) == before + 1
    [fault] = faults(run["log"])
    assert fault["action"] == "corrupt"
    assert fault["bit"] >= 28 * 8


def test_duplicate_leaving(lab):
    spec = {"faults": [{"match": {"proto": "udp", "nth": 2}, "action": "duplicate"}]}
    with nfq(lab, "client", 0, spec) as run:
        got = received(lab, 4, 0.02)
    assert got == [1, 2, 2, 3, 4]  # the marked copy was not queued again
    assert summary(run["log"])["copies"] == 1


def test_duplicate_and_delay_arriving(lab):
    spec = {"faults": [{"match": {"proto": "udp", "nth": 2}, "action": "duplicate"},
                       {"match": {"proto": "udp", "nth": 3}, "action": "delay", "ms": 300}]}
    with nfq(lab, "server", 1, spec) as run:
        got = received(lab, 6, 0.02)
    assert got == [1, 2, 2, 4, 5, 6, 3]  # the copy came in through loopback; #3 came late
    assert [(f["action"], f["ordinal"], f["hook"]) for f in faults(run["log"])] == \
        [("duplicate", 2, "prerouting"), ("delay", 3, "prerouting")]


def test_stop_accepts_held_packets(lab):
    echo = start_echo(lab, quiet=1.0, limit=10)
    with nfq(lab, "client", 0, {"delay_ms": 5000}) as run:
        send(lab, 3, 0.0)
    # lab-nfq stopped with 3 packets held for 5 s: it let them go at once, none was lost
    echo.wait(timeout=15)
    assert [line for line in echo.stdout_lines if line.startswith("got")] == \
        ["got seq=1", "got seq=2", "got seq=3"]
    assert summary(run["log"])["released_at_stop"] == 3
    assert summary(run["log"])["accepted"] == 3


def test_everything_passes_through_an_unimpaired_queue(lab, capsys):
    """Nothing lost or duplicated through lab-nfq with no impairment (its speed is measured
    by `socketlab bench shaping`, not asserted here)."""
    echo = start_echo(lab, quiet=5.0, limit=40)
    base = send(lab, 1000, 0.001, rtt=True)
    with nfq(lab, "client", 0, {}) as run:
        through = send(lab, 1000, 0.001, rtt=True)
        echo.wait(timeout=45)
        sink = start_echo(lab, limit=30, program=COUNT)
        burst = lab.exec("client", ["python3", "-c", BURST, lab.config.server_ip, str(lab.config.port),
                                    "30000"], timeout=20).stdout.split()
        sink.wait(timeout=35)
    sent, seconds = int(burst[0].split("=")[1]), float(burst[1].split("=")[1])
    got = int(sink.stdout_lines[-1].split("=")[1])
    s = summary(run["log"])
    figures = {"base_median_ms": statistics.median(base), "base_p99_ms": percentile(base, 0.99),
               "nfq_median_ms": statistics.median(through), "nfq_p99_ms": percentile(through, 0.99),
               "burst_sent": sent, "burst_received": got, "burst_pps": round(sent / seconds),
               "kernel": s["kernel"]}
    with capsys.disabled():
        print("\nlab-nfq cost:", json.dumps(figures))
    assert len(through) == 1000
    assert s["packets"] == 1000 + sent
    assert s["kernel"]["queue_dropped"] == 0
    assert got == sent  # bounded, and nothing lost on the way
