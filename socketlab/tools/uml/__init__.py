"""A kernel with netem, for the netem backend's tests and figures: Debian's user-mode Linux.

This project's machines have no sch_netem, so the netem backend would be a guess: a plan
that never ran. `user-mode-linux` is a Linux 6.1 that runs as an ordinary process, boots in
a few seconds with the host's own root filesystem and has netem (and everything else the
shaper uses) as modules. `UmlLab` boots one with two hosts, `server` and `client`, as
network namespaces joined by a veth (eth0 in each), and runs commands in them the way a
lab runs them in its containers (`exec`, `start`), so the same code drives both:
`socketlab.act.shaping.shape(uml, "client", "delay 100ms")` runs the image's own
`lab-shape` (the same plan, rollback and clear), and the bench's instruments measure it.

    with UmlLab(progress=print) as uml:
        shaping.shape(uml, "client", "delay 100ms", backend="netem")
        uml.exec("client", ["tc", "qdisc", "show", "dev", "eth0"])

A test and bench instrument, not a lab engine: no Docker, no compose file, no capture.
`requirements()` says what is missing; `ensure()` installs it as root with apt-get
(user-mode-linux, kmod, ethtool), like the image build installs mmdebstrap.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from socketlab.errors import LabError, LabTimeout
from socketlab.lab.assets import IMAGE_CONTEXT
from socketlab.lab.config import LabConfig
from socketlab.lab.process import ExecResult, bounded
from socketlab.lab.topology import Host, Network, Topology

KERNEL = "linux.uml"
MODULES = Path("/usr/lib/uml/modules")
PACKAGES = ("user-mode-linux", "kmod", "ethtool")
TOOLS = ("modprobe", "ethtool", "tc", "ip", "iptables-legacy", "nsenter", "timeout", "setsid")
GUEST_PYTHON = "/usr/bin/python3"  # the host's system Python: what the guest runs as init
SUBNET = "10.77.0.0/24"            # inside the user-mode kernel only: it has no way out
# netem and what lab-shape's two backends build with (most are built in on 6.1, some not)
LOAD = ("veth", "sch_netem", "sch_tbf", "sch_htb", "sch_ingress", "ifb", "act_mirred", "cls_u32",
        "cls_bpf", "nf_tables", "nft_compat", "xt_statistic", "xt_mark", "xt_NFQUEUE",
        "nfnetlink_queue", "iptable_mangle")
BOOT_TIMEOUT_S = 90.0
WORK_ROOT, WORK_PREFIX = "/var/tmp", "socketlab-uml-"  # a kernel's files, while it runs


class UmlUnavailable(LabError):
    """The user-mode kernel cannot run here (not installed, and not installable)."""

    hint = "as root: apt-get install user-mode-linux kmod ethtool"


def kernel_version() -> str | None:
    """The version of the installed user-mode kernel's modules (e.g. 6.1.176), or None."""
    found = sorted(p.name for p in MODULES.glob("*") if (p / "kernel").is_dir()) if MODULES.is_dir() else []
    return found[-1] if found else None


def requirements() -> list[str]:
    """What is missing to boot the user-mode kernel here (empty: nothing)."""
    missing = [] if shutil.which(KERNEL) else [f"{KERNEL} (package user-mode-linux)"]
    missing += [] if kernel_version() else [f"its modules in {MODULES} (package user-mode-linux)"]
    missing += [f"{tool} on this host" for tool in TOOLS if not shutil.which(tool)]
    return missing + ([] if os.access(GUEST_PYTHON, os.X_OK) else [GUEST_PYTHON])


def ensure(progress: Callable[[str], None] = lambda _m: None) -> None:
    """Install what is missing (as root, with apt-get), or UmlUnavailable saying why not."""
    missing = requirements()
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        why = "not root" if os.geteuid() != 0 else "no apt-get"
        raise UmlUnavailable(f"no user-mode kernel: missing {', '.join(missing)}; cannot install ({why})")
    progress(f"installing {' '.join(PACKAGES)} (apt-get install)")
    done = subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], capture_output=True,
                              text=True, check=False)
    missing = requirements()
    if missing:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UmlUnavailable(f"no user-mode kernel: still missing {', '.join(missing)} after "
                             f"apt-get install ({last[0]})")


class UmlExec:
    """A command started in a host of the user-mode kernel: RunningExec's interface (lines
    as they are printed, wait, signal), read from the files the guest writes."""

    def __init__(self, uml: UmlLab, id_: int, host: str, argv: list[str], gated: bool) -> None:
        self._uml, self.id, self.host, self._argv = uml, id_, host, argv
        self._base = uml.work / "out" / str(id_)
        self.stdout_lines: list[str] = []
        self._read = 0  # lines of the .out file handed out so far
        self._started = False
        self.pid: str | None = None
        if not gated:
            self.release()

    def release(self, go: bool = True) -> None:
        if self._started:
            return
        self._started = True
        if go:
            self._uml.request({"op": "start", "id": self.id, "host": self.host, "argv": self._argv})
        else:
            self._base.with_suffix(".rc").write_text("125")

    def _rc(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self._base.with_suffix(".rc").read_text())
        return None

    def _new_lines(self, final: bool) -> list[str]:
        try:
            text = self._base.with_suffix(".out").read_text(errors="replace")
        except OSError:
            return []
        lines = text.split("\n")
        complete = lines if final else lines[:-1]  # the last piece may be half a line
        if final and complete and complete[-1] == "":
            complete = complete[:-1]
        new = complete[self._read:]
        self._read += len(new)
        return new

    def wait_for(self, match: Callable[[str], object], timeout: float) -> str | None:
        """The first new line for which `match` is true; None if the command ended first."""
        deadline = time.monotonic() + timeout
        while True:
            ended = self._rc() is not None
            for line in self._new_lines(final=ended):
                self.stdout_lines.append(line)
                if match(line):
                    return line
            if ended:
                return None
            if time.monotonic() > deadline:
                raise LabTimeout(f"no matching output after {timeout:g} s",
                                 hint="output so far: " + " | ".join(self.stdout_lines[-5:]))
            time.sleep(0.01)

    def wait(self, timeout: float) -> int:
        self.wait_for(lambda _line: False, timeout)
        return self._rc() or 0

    def wait_pid(self, timeout: float) -> str | None:
        """The guest does not say a command's pid (signal() asks the guest by the command's id)."""
        raise LabError("a command in the user-mode kernel has no pid this side knows",
                       hint="wait for its output instead (run_programs' ready='event')")

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        with contextlib.suppress(OSError):
            return self._base.with_suffix(".err").read_text(errors="replace")
        return ""

    def signal(self, name: str = "TERM") -> bool:
        if self._rc() is not None:
            return False
        self._uml.request({"op": "signal", "id": self.id, "signal": name})
        return True


class UmlLab:
    """A user-mode kernel with two hosts (network namespaces `server` and `client`), driven
    like a Lab: exec, start, config. Boots on enter, powers off and removes its files on exit."""

    def __init__(self, *, mem: str = "256M", progress: Callable[[str], None] = lambda _m: None,
                 port: int = 6666) -> None:
        self.config = LabConfig(subnet=SUBNET, port=port, project="uml")
        # the post's two hosts, as the Lab's topology says them (capture and shaping ask it)
        ips = {"server": self.config.server_ip, "client": self.config.client_ip}
        self.topology = Topology(tuple(Host(h, (("labnet", ip),), "uml", h) for h, ip in ips.items()),
                                 (Network("labnet", SUBNET),), source="a user-mode kernel")
        self.mem, self.progress = mem, progress
        self.work = Path()
        self.proc: subprocess.Popen | None = None
        self.booted: dict = {}
        self._next = 0   # requests sent
        self._execs = 0  # commands started

    def __enter__(self) -> UmlLab:
        try:
            self.boot()
        except BaseException:
            self.halt()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.halt()

    def boot(self) -> None:
        ensure(self.progress)
        version = kernel_version()
        remove_orphans()
        self.work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=WORK_ROOT))
        (self.work / "owner.pid").write_text(f"{os.getpid()}\n")
        for sub in ("req", "out", "mods/lib/modules", "bin"):
            (self.work / sub).mkdir(parents=True)
        # this kernel's nf_tables lacks the mangle table's chain type: lab-shape's iptables
        # rules go through the legacy iptables here (same rules, same matches)
        (self.work / "bin" / "iptables").symlink_to("/usr/sbin/iptables-legacy")
        (self.work / "mods/lib/modules" / str(version)).symlink_to(MODULES / str(version))
        hosts = {"server": f"{self.config.server_ip}/24", "client": f"{self.config.client_ip}/24"}
        path = f"{self.work / 'bin'}:{IMAGE_CONTEXT / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"
        (self.work / "boot.json").write_text(json.dumps({
            "modules_root": str(self.work / "mods"), "modules": list(LOAD), "hosts": hosts,
            "path": path, "lab_dir": str(IMAGE_CONTEXT)}))
        guest = Path(__file__).with_name("guest.py")
        argv = [KERNEL, f"mem={self.mem}", "rootfstype=hostfs", "rootflags=/", "rw", "quiet",
                f"init={GUEST_PYTHON}", "con=null", "con0=null,fd:1", "--", str(guest), str(self.work)]
        self.progress(f"booting the user-mode kernel {version} (two hosts, netem)")
        self.log = open(self.work / "console.log", "w")  # noqa: SIM115  (open while it runs)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "TMPDIR": str(self.work)},
                                     preexec_fn=_ends_with_its_parent(os.getpid()))
        self.booted = self._wait_ready()

    def _wait_ready(self) -> dict:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        ready = self.work / "ready.json"
        while not ready.exists():
            if self.proc is not None and self.proc.poll() is not None:
                raise UmlUnavailable(f"the user-mode kernel stopped while booting: {self._console()}")
            if time.monotonic() > deadline:
                raise UmlUnavailable(f"the user-mode kernel did not boot in {BOOT_TIMEOUT_S:g} s: "
                                     f"{self._console()}")
            time.sleep(0.05)
        found = json.loads(ready.read_text())
        if not found.get("ok"):
            raise UmlUnavailable(f"the user-mode kernel booted but its hosts failed: {found.get('error')}")
        return found

    def _console(self) -> str:
        with contextlib.suppress(OSError):
            lines = (self.work / "console.log").read_text(errors="replace").strip().splitlines()
            return " | ".join(lines[-3:]) or "no output"
        return "no output"

    def request(self, req: dict) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise LabError("the user-mode kernel is not running", hint="see its console.log")
        self._next += 1
        path = self.work / "req" / f"{self._next:06d}.json"
        path.with_suffix(".part").write_text(json.dumps(req))
        path.with_suffix(".part").rename(path)

    def start(self, host: str, argv: Sequence[str], *, timeout: float, gated: bool = False,
              instruments: bool = False) -> UmlExec:  # the tools are in every namespace here
        """Start a command in a host, bounded by `timeout` there; read it as it runs."""
        self._check_host(host)
        self._execs += 1
        return UmlExec(self, self._execs, host, bounded(argv, timeout), gated)

    def exec(self, host: str, argv: Sequence[str], *, timeout: float | None = None,
             instruments: bool = False) -> ExecResult:
        """Run a command in a host and wait for it (bounded by `timeout`, 120 s by default)."""
        budget = timeout or 120
        started = time.monotonic()
        proc = self.start(host, argv, timeout=budget)
        code = proc.wait(budget + 15)
        return ExecResult(code, proc.stdout + ("\n" if proc.stdout_lines else ""), proc.stderr,
                          time.monotonic() - started)

    def _check_host(self, host: str) -> None:
        if host not in ("server", "client"):
            raise LabError(f"unknown host {host!r} in the user-mode kernel", hint="server or client")

    def halt(self) -> None:
        """Power the kernel off (or kill its process group), then remove its files."""
        if self.proc is not None:
            with contextlib.suppress(LabError):
                self.request({"op": "halt"})
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):  # its helper processes, if any lingered
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.log.close()
            self.proc = None
        if self.work != Path() and self.work.is_dir():
            shutil.rmtree(self.work, ignore_errors=True)


def _ends_with_its_parent(parent: int) -> Callable[[], None]:
    """For the kernel's process, before it runs: SIGTERM when the process that started it ends,
    however it ends (SIGKILL included); the kernel then ends its own helper processes. (A
    thread's end counts as its process's for this: start the kernel from a thread that lives.)"""
    def arm() -> None:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent ended before the line above
            os._exit(1)
    return arm


def remove_orphans(root: str = WORK_ROOT) -> list[Path]:
    """Remove the files of kernels whose owner process has ended (it was killed before it could
    remove them itself; the kernel ended with it); the folders removed."""
    removed = []
    for work in Path(root).glob(f"{WORK_PREFIX}*"):
        try:
            owner = int((work / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # not ours to judge: a kernel booting right now, or an older layout
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(work, ignore_errors=True)
            removed.append(work)
    return removed

