"""Capture: tcpdump on several lab hosts at once, pcaps copied to a per-run folder on this host.

    with Capture(lab, ["server", "client"], "runs", name="tcp") as cap:
        run_pair(lab, Options(proto="tcp"))
    cap.result["server"].pcap       # runs/20240101-120000-tcp/server.pcap
    cap.result["server"].dropped    # tcpdump's own "packets dropped by kernel"

tcpdump runs in each host's network namespace on eth0, whole frames (`-s 1514`), each packet
written as soon as tcpdump has it (`-U`), with a 32 MiB kernel buffer: measured here, a burst
of 50,000 small datagrams lost 9-43 % with tcpdump's default 2 MiB and -U, none with 32 MiB.
It is started before the traffic and confirmed ready by its own "listening on eth0" line. At
the end it is first made to catch up (SIGUSR1 makes it print its counters; it has caught up
when every packet the kernel's filter accepted is captured or counted as dropped: without
immediate mode the kernel hands packets over in blocks, up to 1 s late), then stopped with
SIGINT, and its final counters are parsed. Any failure stops every tcpdump.

Offloads: veth starts with TSO/GSO and checksum offload on, so a capture shows one 4 KB
"segment" and wrong checksums. A capture switches them off by default (and back afterwards):
`set_offloads` / `restore_offloads` do it on their own too, and say what they changed.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from socketlab.errors import CaptureError, LabError, LabTimeout
from socketlab.lab.lab import Lab
from socketlab.lab.process import Hosts, Running
from socketlab.observe.offloads import IFACE, OffloadReport, restore_offloads, set_offloads

DEFAULT_SNAPLEN = 1514  # a whole Ethernet frame; the default 262144 fills the buffer and drops
DEFAULT_BUFFER_KIB = 32768  # tcpdump -B; its default (2 MiB) drops in a burst of small packets
# Budgets, not expectations: each wait returns as soon as tcpdump answers. A loaded machine
# (load 4 and more) slows tcpdump's answers by seconds: that must not fail a capture. A
# tcpdump that has not caught up by SETTLE_TIMEOUT_S is stopped all the same, and its host's
# capture says so (HostCapture.caught_up False); only one that does not start or stop fails.
READY_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
MAX_SECONDS = 600.0  # the most a tcpdump may live in its host, whatever happens on this side
# Prints its pid (which `exec` hands to tcpdump), then runs tcpdump with stderr on stdout.
_DISCARD = '[ -n "$1" ] && kill -KILL "$1" 2>/dev/null; rm -f "$2"'  # PID PATH
_LAUNCH = 'echo "pid=$$"; exec "$@" 2>&1'
_STATS_LINE = re.compile(r"\d+ packets? captured")  # "1 packet captured" too
_COUNTERS = {"captured": "captured", "received": "received by filter",
             "dropped": "dropped by kernel", "if_dropped": "dropped by interface"}


class Tapped(Hosts, Protocol):
    """Hosts a capture can run in: commands, and files copied out (a Lab; the underlay taps)."""

    def get(self, host: str, src: str, dest: str | Path, *, instruments: bool = False) -> Path: ...


def default_filter(port: int) -> str:
    """The lab's port, ICMP, and every non-first IP fragment (`port` cannot match those)."""
    return f"(ip[6:2] & 0x1fff != 0) or port {port} or icmp"


def tcpdump_argv(path: str, bpf: str, *, snaplen: int = DEFAULT_SNAPLEN,
                 buffer_kib: int | None = DEFAULT_BUFFER_KIB, immediate: bool = False,
                 packet_buffered: bool = True, iface: str = IFACE) -> list[str]:
    """The tcpdump command line: whole frames of `iface` written to `path` (pure)."""
    argv = ["tcpdump", "-i", iface, "-n", "-s", str(snaplen)]
    if packet_buffered:
        argv.append("-U")
    if immediate:
        argv.append("--immediate-mode")
    if buffer_kib is not None:
        argv += ["-B", str(buffer_kib)]
    return [*argv, "-w", path, bpf]


@dataclass(frozen=True)
class TcpdumpStats:
    """tcpdump's own counters (the kernel's, for `received` and `dropped`)."""

    captured: int
    received: int
    dropped: int
    if_dropped: int = 0

    @property
    def caught_up(self) -> bool:
        """Every packet the kernel's filter accepted has been written or counted as dropped."""
        return self.captured + self.dropped >= self.received


def parse_stats(text: str) -> TcpdumpStats | None:
    """The last counters in tcpdump's output (its final lines, or a SIGUSR1 line); pure."""
    found = {}
    for key, words in _COUNTERS.items():
        hits = re.findall(rf"(\d+) packets? {words}", text)
        if hits:
            found[key] = int(hits[-1])
    if not {"captured", "received", "dropped"} <= found.keys():
        return None
    return TcpdumpStats(**found)


# ---------------------------------------------------------------- one tcpdump
@dataclass(frozen=True)
class HostCapture:
    """One host's capture: its pcap on this host and tcpdump's final counters."""

    host: str
    pcap: Path
    captured: int
    received: int
    dropped: int  # "packets dropped by kernel"
    if_dropped: int = 0
    caught_up: bool = True  # tcpdump had written all it had received before it was stopped
    seconds: float = 0.0  # from ready to stopped

    @property
    def complete(self) -> bool:
        return self.caught_up and self.dropped == 0 and self.if_dropped == 0 \
            and self.captured >= self.received

    def scapy(self) -> list:
        """This host's packets as scapy packets, on request (scapy is imported then)."""
        from socketlab.observe.pcap import scapy_packets

        return scapy_packets(self.pcap)


class _Tcpdump:
    """One tcpdump left running in one host, known by its pid there."""

    def __init__(self, lab: Tapped, host: str, argv: list[str], path: str, max_seconds: float):
        self.lab, self.host, self.path = lab, host, path
        self.proc: Running = lab.start(host, ["sh", "-c", _LAUNCH, "sh", *argv],
                                           timeout=max_seconds, instruments=True)
        self.pid: str | None = None
        self.ended = False
        self.ready_at = 0.0

    def wait_ready(self, timeout: float) -> None:
        """Return once tcpdump has said "listening on" (its filter is then in place)."""
        line = self.proc.wait_for(lambda ln: ln.startswith("pid="), timeout)
        if line is not None:
            self.pid = line.split("=", 1)[1].strip()
            line = self.proc.wait_for(lambda ln: "listening on" in ln, timeout)
        if line is None:
            self.ended = True
            raise CaptureError(f"tcpdump did not start in {self.host}: "
                               f"{' | '.join(self.proc.stdout_lines[1:]) or 'no output'}",
                               hint="check the filter expression and the interface")
        self.ready_at = time.monotonic()

    def signal(self, sig: str) -> bool:
        """Send a signal to this tcpdump (only to it); False if it has already ended."""
        if self.ended or self.pid is None:
            return False
        return self.lab.exec(self.host, ["kill", f"-{sig}", self.pid], timeout=10,
                             instruments=True).exit_code == 0

    def settle(self, timeout: float) -> bool:
        """Wait until tcpdump has written every packet the kernel handed it, and no new one came
        between two looks. True if it did within `timeout`."""
        deadline = time.monotonic() + timeout
        last: TcpdumpStats | None = None
        while (left := deadline - time.monotonic()) > 0 and self.signal("USR1"):
            try:
                line = self.proc.wait_for(_STATS_LINE.search, left)
            except LabTimeout:  # a slow answer (a loaded machine): not settled, not a failure
                return False
            stats = parse_stats(line or "")
            if stats is None:
                return False
            if stats.caught_up and last is not None and last.received == stats.received:
                return True
            last = stats
        return False

    def stop(self, timeout: float) -> TcpdumpStats:
        self.signal("INT")
        try:
            self.proc.wait(timeout)
        except LabTimeout:
            raise CaptureError(f"tcpdump in {self.host} did not stop after SIGINT") from None
        self.ended = True
        final = [ln for ln in self.proc.stdout_lines if not ln.startswith(("tcpdump:", "pid="))]
        stats = parse_stats("\n".join(final))
        if stats is None:
            raise CaptureError(f"tcpdump in {self.host} ended without its counters: "
                               f"{' | '.join(self.proc.stdout_lines[-4:])}")
        return stats

    def kill(self) -> None:
        """Best effort, for failures: the host may already be gone."""
        with contextlib.suppress(Exception):  # clean-up must not hide the first error
            if self.pid is not None and not self.ended:
                self.lab.exec(self.host, ["kill", "-KILL", self.pid], timeout=10, instruments=True)
            elif not self.ended:  # no pid yet: its argv names this capture's own file
                self.lab.exec(self.host, ["pkill", "-KILL", "-f", self.path], timeout=10,
                              instruments=True)
            self.ended = True

    def fetch(self, dest: Path) -> Path:
        """Copy the pcap out of the host, then remove it there."""
        try:
            self.lab.get(self.host, self.path, dest, instruments=True)
        except LabError as e:
            raise CaptureError(f"no pcap from {self.host}: {e}") from None
        self.remove()
        return dest

    def remove(self) -> None:
        self.lab.exec(self.host, ["rm", "-f", self.path], timeout=10, instruments=True)


# ---------------------------------------------------------------- the capture
@dataclass(frozen=True)
class CaptureResult:
    """Per host: the pcap and tcpdump's counters; plus what was done to the offloads."""

    run_dir: Path
    hosts: dict[str, HostCapture]
    offloads: tuple[OffloadReport, ...] = ()
    restored: tuple[OffloadReport, ...] = ()

    def __getitem__(self, host: str) -> HostCapture:
        return self.hosts[host]

    @property
    def dropped(self) -> int:
        return sum(h.dropped + h.if_dropped for h in self.hosts.values())

    @property
    def complete(self) -> bool:
        return all(h.complete for h in self.hosts.values())


INCOMPLETE = ".incomplete"  # in a run folder until all its files are written
_INCOMPLETE_TEXT = ("This run did not finish (it failed or was stopped): its files may be partial, "
                    "and `socketlab report` skips it.\n")


def new_run_dir(base: str | Path, name: str) -> Path:
    """base/<YYYYmmdd-HHMMSS>-<name>, made now (a -2, -3... suffix if that exists already),
    marked incomplete until mark_complete(): a run that fails or is killed half-way leaves a
    folder that says so, and that `report` skips."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    for n in range(1, 1000):
        path = Path(base) / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as e:
            raise CaptureError(f"cannot make a run folder under {base}: {e.strerror}",
                               hint="give a folder you can write to") from None
        (path / INCOMPLETE).write_text(_INCOMPLETE_TEXT)
        return path
    raise CaptureError(f"cannot make a run folder under {base}")


def mark_complete(run_dir: Path) -> None:
    """Every file of the run is written: it no longer says it is incomplete."""
    (Path(run_dir) / INCOMPLETE).unlink(missing_ok=True)


def is_complete(run_dir: Path) -> bool:
    return Path(run_dir).is_dir() and not (Path(run_dir) / INCOMPLETE).exists()


class Capture:
    """tcpdump on several hosts at once, as a context manager (or start() / stop())."""

    def __init__(self, lab: Tapped, hosts: Sequence[str] | None = None, base_dir: str | Path = "runs",
                 *, name: str = "capture", bpf: str | None = None,
                 snaplen: int = DEFAULT_SNAPLEN, buffer_kib: int | None = DEFAULT_BUFFER_KIB,
                 immediate: bool = False, packet_buffered: bool = True,
                 offloads: bool | None | str = "lab", restore: bool = True,
                 max_seconds: float = MAX_SECONDS, iface: str = IFACE) -> None:
        if hosts is None:  # every host of a lab; other Hosts (the underlay's taps) name theirs
            if not isinstance(lab, Lab):
                raise CaptureError("name the hosts to capture on")
            hosts = lab.topology.names
        if not hosts or len(set(hosts)) != len(hosts):
            raise CaptureError(f"capture hosts {list(hosts)!r}: give each host once")
        self.lab, self.hosts, self.base_dir, self.name = lab, list(hosts), Path(base_dir), name
        self.bpf = bpf if bpf is not None else default_filter(lab.config.port)
        self.snaplen, self.buffer_kib = snaplen, buffer_kib
        self.immediate, self.packet_buffered = immediate, packet_buffered
        if offloads == "lab":  # off, unless the lab was started with its offloads on
            offloads = None if lab.config.offloads else False
        elif isinstance(offloads, str):
            raise ValueError(f"offloads={offloads!r}: use True, False, None or 'lab'")
        self.offloads, self.restore, self.max_seconds = offloads, restore, max_seconds
        self.iface = iface  # the hosts' lab interface; "any" for a swarm node's underlay
        self.run_dir: Path | None = None
        self._dumps: dict[str, _Tcpdump] = {}
        self._offload_reports: list[OffloadReport] = []
        self._restored: list[OffloadReport] | None = None
        self._result: CaptureResult | None = None

    @property
    def result(self) -> CaptureResult:
        if self._result is None:
            raise CaptureError("the capture has not been stopped yet")
        return self._result

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._dumps:
            self.stop()

    def start(self) -> Capture:
        """Offloads as asked, then tcpdump in every host, each confirmed listening."""
        if self._dumps:
            raise CaptureError("the capture is already running")
        tag = uuid.uuid4().hex[:8]
        self._offload_reports, self._restored, self._result = [], None, None
        self.run_dir = new_run_dir(self.base_dir, self.name)
        try:
            if self.offloads is not None:
                self._offload_reports = set_offloads(self.lab, self.hosts, self.offloads)
            self._start_dumps(tag)
        except BaseException:
            self._abort()
            with contextlib.suppress(OSError):
                (self.run_dir / INCOMPLETE).unlink()
                self.run_dir.rmdir()  # nothing was captured: no folder at all
            raise
        return self

    def _start_dumps(self, tag: str) -> None:
        """tcpdump in every host at once, each confirmed listening (a host's start is an exec
        or two through the engine: in turn, they added up with the hosts)."""
        from concurrent.futures import ThreadPoolExecutor

        def one(host: str) -> None:
            path = f"/tmp/socketlab-{tag}-{host}.pcap"
            argv = tcpdump_argv(path, self.bpf, snaplen=self.snaplen,
                                buffer_kib=self.buffer_kib, immediate=self.immediate,
                                packet_buffered=self.packet_buffered, iface=self.iface)
            dump = self._dumps[host] = _Tcpdump(self.lab, host, argv, path, self.max_seconds)
            dump.wait_ready(READY_TIMEOUT_S)

        with ThreadPoolExecutor(max_workers=max(1, len(self.hosts))) as pool:
            for done in [pool.submit(one, h) for h in self.hosts]:
                done.result()  # the first failure is raised (start() then aborts them all)

    def stop(self) -> CaptureResult:
        """Let every tcpdump catch up, stop them (SIGINT), copy the pcaps here."""
        if not self._dumps or self.run_dir is None:
            raise CaptureError("the capture is not running")
        try:
            caught_up = {h: d.settle(SETTLE_TIMEOUT_S) for h, d in self._dumps.items()}
            stopped_at = time.monotonic()
            stats = {h: d.stop(STOP_TIMEOUT_S) for h, d in self._dumps.items()}
            hosts = {}
            for h, d in self._dumps.items():
                pcap = d.fetch(self.run_dir / f"{h}.pcap")
                hosts[h] = HostCapture(h, pcap, stats[h].captured, stats[h].received,
                                       stats[h].dropped, stats[h].if_dropped, caught_up[h],
                                       stopped_at - d.ready_at)
        except BaseException:
            self._abort()
            raise
        restored = self._restore_offloads()
        self._dumps = {}
        self._result = CaptureResult(self.run_dir, hosts, tuple(self._offload_reports),
                                     tuple(restored))
        mark_complete(self.run_dir)
        return self._result

    def discard(self) -> None:
        """Stop without keeping anything (what a passing test's recording costs): every
        tcpdump killed and its pcap removed in its host, at once; no folder here."""
        from concurrent.futures import ThreadPoolExecutor

        def drop(dump: _Tcpdump) -> None:  # one exec per host: kill, then remove its file
            with contextlib.suppress(Exception):  # the host may be gone: nothing to remove
                dump.lab.exec(dump.host, ["sh", "-c", _DISCARD, "sh", dump.pid or "", dump.path],
                              timeout=10, instruments=True)
            dump.ended = True

        dumps, self._dumps = list(self._dumps.values()), {}
        with ThreadPoolExecutor(max_workers=max(1, len(dumps))) as pool:
            list(pool.map(drop, dumps))
        with contextlib.suppress(Exception):
            self._restore_offloads()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _abort(self) -> None:
        """After a failure: no tcpdump left running, no pcap left in a host, offloads back."""
        for dump in self._dumps.values():
            dump.kill()
            with contextlib.suppress(Exception):  # clean-up must not hide the first error
                dump.proc.wait(STOP_TIMEOUT_S)
                dump.remove()
        self._dumps = {}
        with contextlib.suppress(Exception):
            self._restore_offloads()

    def _restore_offloads(self) -> list[OffloadReport]:
        """Once only: the offloads as they were before start()."""
        if self._restored is None:
            self._restored = []  # not twice, even if this fails
            if self.restore and self._offload_reports:
                self._restored = restore_offloads(self.lab, self._offload_reports)
        return self._restored
