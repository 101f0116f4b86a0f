"""A lab host sealed off from the machine Docker runs on, for real.

A program in a host (run as the lab's program user, as every program is) tries the bridge's
gateway (this machine's address on the lab network) on the ports a machine listens on, its
broadcast and multicast addresses and IPv6: every try must fail inside the host, and a capture
on this machine's side of the host's veth must see none of those packets (nor an ARP for the
gateway), while it does see the lab's own exchange. The program cannot undo the seal, and a
fork bomb or a memory hog is bounded and ends by itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from socketlab.act.programs import Options, run_pair
from socketlab.lab.process import as_program

pytestmark = pytest.mark.integration

ETH_P_ALL, ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0003, 0x0800, 0x0806, 0x86DD

# Runs in the client as the program user: every way out it can think of, one line each.
TRIES = r"""
import socket, sys
gw, bcast = sys.argv[1], sys.argv[2]
def attempt(what, fn):
    try:
        fn(); print(what, "SUCCEEDED", flush=True)
    except OSError as e:
        print(what, "failed", e.errno, flush=True)
def tcp(port):
    s = socket.socket(); s.settimeout(2); s.connect((gw, port))
def udp(dst, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.connect((dst, port)); s.send(b"x"); s.settimeout(1); s.recv(10)
def ping():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s.settimeout(1); s.sendto(b"\x08\x00\xf7\xff\x00\x00\x00\x00", (gw, 0)); s.recv(100)
def v6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.sendto(b"x", ("ff02::1", 5353, 0, socket.if_nametoindex("eth0")))
def raw():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
for port in (22, 80, 2375, 2376, 6666):
    attempt(f"tcp {gw}:{port}", lambda: tcp(port))
for dst in (gw, bcast, "255.255.255.255", "224.0.0.251"):
    attempt(f"udp {dst}", lambda: udp(dst, 5353))
attempt(f"ping {gw}", ping)
attempt("ipv6 all-nodes", v6)
attempt("packet socket", raw)
"""


def host_side_veth(lab, host: str) -> str:
    """This machine's end of a lab host's veth (its ifindex is the host's eth0 iflink)."""
    iflink = lab.exec(host, ["cat", "/sys/class/net/eth0/iflink"]).stdout.strip()
    for link in Path("/sys/class/net").iterdir():
        with contextlib.suppress(OSError):
            if (link / "ifindex").read_text().strip() == iflink:
                return link.name
    raise AssertionError(f"no interface with ifindex {iflink} on this machine")


class VethCapture:
    """Every frame a lab host sends, read on this machine's end of its veth (AF_PACKET,
    receive only: nothing is ever sent on it)."""

    def __init__(self, ifname: str) -> None:
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            pytest.fail("capturing on this machine's side of the bridge needs root (CAP_NET_RAW)")
        self.sock.bind((ifname, 0))
        self.sock.settimeout(0.2)
        self.frames: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                frame, (_if, _proto, pkttype, *_rest) = self.sock.recvfrom(65535)
                if pkttype == socket.PACKET_OUTGOING:
                    continue  # sent by this machine toward the host: not what we look for
                self.frames.append(frame)

    def stop(self) -> list[bytes]:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.frames


def ipv4_destinations(frames: list[bytes]) -> list[str]:
    return [socket.inet_ntoa(f[30:34]) for f in frames
            if struct.unpack("!H", f[12:14])[0] == ETH_P_IP]


def arp_targets(frames: list[bytes]) -> list[str]:
    return [socket.inet_ntoa(f[38:42]) for f in frames
            if struct.unpack("!H", f[12:14])[0] == ETH_P_ARP]


def test_a_program_reaches_nothing_of_this_machine_and_no_packet_leaves(lab):
    net = ipaddress.IPv4Network(lab.config.subnet)
    gateway, broadcast = str(net.network_address + 1), str(net.broadcast_address)
    capture = VethCapture(host_side_veth(lab, "client"))
    try:
        assert run_pair(lab, Options(proto="tcp")).ok  # what the capture must see
        tries = lab.exec("client", as_program(["python3", "-c", TRIES, gateway, broadcast]),
                         timeout=60)
        time.sleep(0.5)  # a late frame would still be caught: the capture runs on meanwhile
    finally:
        frames = capture.stop()
    lines = tries.stdout.splitlines()
    assert len(lines) == 12, tries.stdout + tries.stderr
    assert [ln for ln in lines if "SUCCEEDED" in ln] == []
    seen = ipv4_destinations(frames)
    assert lab.config.server_ip in seen  # the capture works: the lab's exchange is there
    outside = [d for d in seen if d in (gateway, broadcast, "255.255.255.255")
               or ipaddress.IPv4Address(d).is_multicast]
    assert outside == []
    assert gateway not in arp_targets(frames)
    assert [f for f in frames if struct.unpack("!H", f[12:14])[0] == ETH_P_IPV6] == []
    counted = lab.exec("client", ["lab-seal", "--show"]).stdout
    assert int(counted.splitlines()[2].split()[0]) > 0  # refused in the host, by its rules


def test_a_program_runs_unprivileged_and_cannot_undo_the_seal(lab):
    script = ("id -u; grep CapEff /proc/self/status; iptables -F LAB-SEAL 2>&1; "
              "ip route add default dev eth0 2>&1; tc qdisc add dev eth0 root tbf rate 1mbit "
              "burst 10k latency 10ms 2>&1; echo done")
    result = lab.exec("client", as_program(["sh", "-c", script]), timeout=20)
    out = result.stdout.splitlines()
    assert out[0] != "0"
    assert out[1].split() == ["CapEff:", "0000000000000000"]
    assert "Permission denied" in out[2] or "not permitted" in out[2]
    assert "not permitted" in out[3]
    assert out[-1] == "done"
    rules = lab.exec("client", ["lab-seal", "--show"]).stdout
    assert rules.count("REJECT") + rules.count("DROP") >= 5  # the seal stands


def test_a_fork_bomb_is_bounded_and_ends_by_itself(lab):
    """Children that sleep, forked until fork() fails: the host's process limit stops it,
    and the program's time budget ends it, children and all."""
    bomb = ("import os, time\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n"
            "    except OSError as e:\n        print('fork failed after', n, e.errno, flush=True)\n"
            "        break\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
            "    n += 1\ntime.sleep(60)\n")
    proc = lab.start("server", as_program(["python3", "-c", bomb]), timeout=8)
    line = proc.wait_for(lambda ln: ln.startswith("fork failed"), 30)
    assert line is not None
    assert int(line.split()[3]) < 300  # the host's pids_limit, not the machine, stopped it
    limit = lab.exec("server", ["cat", "/sys/fs/cgroup/pids/pids.max"]).stdout.strip()
    assert limit == "256"
    proc.wait(30)
    left = lab.exec("server", ["pgrep", "-u", "lab"]).stdout.split()
    assert left == []  # every child ended with its parent's budget
    assert run_pair(lab, Options(proto="tcp")).ok  # and the host works again


def test_a_memory_hog_is_bounded_and_ends_by_itself(lab):
    hog = "b = []\nwhile True:\n    b.append(bytearray(16 * 2**20))\n"
    start = time.monotonic()
    result = lab.exec("server", as_program(["python3", "-c", hog]), timeout=60)
    assert result.exit_code != 0  # killed by the host's memory limit, or MemoryError
    assert time.monotonic() - start < 60  # by itself, not by its time budget
    limit = lab.exec("server", ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).stdout
    assert int(limit) == 512 * 2**20
    assert run_pair(lab, Options(proto="tcp")).ok
