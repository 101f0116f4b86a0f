"""The user-mode kernel's init: two lab hosts as network namespaces, and commands run in them.

Runs as PID 1 inside linux.uml (the host's root filesystem, read through hostfs), with the
host's own /usr/bin/python3: stdlib only, no socketlab. Its one argument is the work folder
the host side made; everything it says goes through files there:

    boot.json       (host -> guest) modules to load, hosts and their addresses, PATH, /lab
    ready.json      (guest -> host) {"ok": true, "uname": ..., "modules": {...}} or an error
    req/NNNNNN.json (host -> guest) {"op": "start", "id", "host", "argv"} | {"op": "signal",
                    "id", "signal"} | {"op": "halt"}; taken in name order, deleted once read
    out/ID.out, .err, .pid, .rc   (guest -> host) a command's output, pid and exit code

Each host is a network namespace with an `eth0` (one veth pair joins the two), `lo` up and
the offloads off, as lab-host leaves a lab container; /run is this kernel's own tmpfs, and
each host keeps lab-shape's state in /run/socketlab-HOST. An argument that starts with /lab/
(the lab image's folder) is read from the checkout's images/lab/ instead.
"""

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time

RB_POWER_OFF = 0x4321FEDC


def sh(argv: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)


def write(path: str, data: str) -> None:
    """Whole or not at all: the host side never reads half a file."""
    with open(path + ".part", "w") as f:
        f.write(data)
    os.rename(path + ".part", path)


def mount_basics() -> None:
    for argv in (["mount", "-t", "proc", "proc", "/proc"], ["mount", "-t", "sysfs", "sys", "/sys"],
                 ["mount", "-t", "tmpfs", "run", "/run"]):
        sh(argv)


def load_modules(boot: dict) -> dict:
    found = {}
    for name in boot["modules"]:
        done = sh(["modprobe", "-d", boot["modules_root"], name])
        found[name] = "loaded" if done.returncode == 0 else done.stderr.strip()[-120:] or "failed"
    return found


def make_hosts(boot: dict) -> None:
    """The namespaces, the veth between them (eth0 in each), addresses, lo, offloads off."""
    (a, a_addr), (b, b_addr) = boot["hosts"].items()
    steps = [["ip", "netns", "add", a], ["ip", "netns", "add", b],
             ["ip", "link", "add", "eth0", "netns", a, "type", "veth", "peer", "name", "eth0",
              "netns", b]]
    for host, addr in ((a, a_addr), (b, b_addr)):
        steps += [["ip", "-n", host, "addr", "add", addr, "dev", "eth0"],
                  ["ip", "-n", host, "link", "set", "eth0", "up"],
                  ["ip", "-n", host, "link", "set", "lo", "up"],
                  ["ip", "netns", "exec", host, "ethtool", "-K", "eth0", "tso", "off", "gso", "off",
                   "gro", "off", "tx", "off", "rx", "off", "sg", "off"]]
    for argv in steps:
        done = sh(argv)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")


class Commands:
    """Commands started in the hosts; each writes its exit code to out/ID.rc when it ends."""

    def __init__(self, work: str, boot: dict) -> None:
        self.work, self.boot = work, boot
        self.procs: dict[str, subprocess.Popen] = {}

    def env(self, host: str) -> dict:
        # bytecode compiled once per boot, kept in the work folder (the checkout is not written)
        return {"PATH": self.boot["path"], "HOME": "/root", "PYTHONPYCACHEPREFIX": f"{self.work}/pycache",
                "PYTHONUNBUFFERED": "1", "SOCKETLAB_RUN_DIR": f"/run/socketlab-{host}", "LANG": "C.UTF-8"}

    def start(self, req: dict) -> None:
        base = f"{self.work}/out/{req['id']}"
        lab = self.boot["lab_dir"]
        argv = [lab + a[4:] if a.startswith("/lab/") else a for a in req["argv"]]
        try:
            with open(base + ".out", "w") as out, open(base + ".err", "w") as err:
                proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{req['host']}", *argv],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        env=self.env(req["host"]), cwd="/", start_new_session=True)
        except OSError as e:
            with open(base + ".err", "w") as err:
                err.write(f"{e}\n")
            write(base + ".rc", "127")
            return
        self.procs[req["id"]] = proc
        write(base + ".pid", str(proc.pid))
        threading.Thread(target=self._reap, args=(proc, base), daemon=True).start()

    def _reap(self, proc: subprocess.Popen, base: str) -> None:
        code = proc.wait()
        write(base + ".rc", str(code if code >= 0 else 128 - code))

    def signal(self, req: dict) -> None:
        proc = self.procs.get(req["id"])
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, AttributeError):
                os.kill(proc.pid, getattr(signal, "SIG" + req["signal"]))

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)


def serve(work: str, commands: Commands) -> None:
    """Take the requests in order until `halt` (or until the host side's folder is gone)."""
    req_dir = f"{work}/req"
    while os.path.isdir(req_dir):
        names = sorted(n for n in os.listdir(req_dir) if n.endswith(".json"))
        if not names:
            time.sleep(0.01)
            continue
        for name in names:
            path = f"{req_dir}/{name}"
            with open(path) as f:
                req = json.load(f)
            os.remove(path)
            if req["op"] == "halt":
                return
            getattr(commands, req["op"])(req)


def main() -> None:
    work = sys.argv[1]
    os.environ["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"  # init starts with next to nothing
    commands = None
    try:
        mount_basics()
        with open(f"{work}/boot.json") as f:
            boot = json.load(f)
        modules = load_modules(boot)
        make_hosts(boot)
        uname = os.uname().release
        commands = Commands(work, boot)
        write(f"{work}/ready.json", json.dumps({"ok": True, "uname": uname, "modules": modules}))
        serve(work, commands)
    except Exception as e:  # noqa: BLE001  (PID 1: whatever went wrong is said, then power off)
        write(f"{work}/ready.json", json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
    finally:
        if commands is not None:
            commands.stop_all()
        os.sync()
        ctypes.CDLL(None).reboot(RB_POWER_OFF)


if __name__ == "__main__":
    main()
