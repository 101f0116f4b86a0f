"""The machine side of the swarm sandbox: the network namespaces and the veth between them, the
nodes' dockerds as processes (started in their namespace, stopped with everything they started).

Processes are found by the node's folder in their command line (dockerd's --data-root,
containerd's --config, the shims' -address): only the sandbox's own, whatever their pids.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors

from socketlab.errors import SwarmError
from socketlab.lab import signals

if TYPE_CHECKING:
    from socketlab.lab.sandbox import Node

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def dockerd_argv(node: Node, config_file: Path, storage: str) -> list[str]:
    """A node's dockerd, started inside the node's network namespace (pure)."""
    return ["nsenter", f"--net=/run/netns/{node.netns}", "dockerd",
            "--config-file", str(config_file), "--data-root", f"{node.dir}/data",
            "--exec-root", f"{node.dir}/exec", "--pidfile", str(node.pidfile),
            "-H", node.url, "--storage-driver", storage, "--bip", node.bip]


def check_machine() -> None:
    if os.geteuid() != 0:
        raise SwarmError("the swarm sandbox needs root (network namespaces, veths, dockerd)",
                         hint="run it as root, e.g. `sudo socketlab sandbox up`")
    missing = [tool for tool in ("dockerd", "containerd", "nsenter", "ip") if not shutil.which(tool)]
    if missing:
        raise SwarmError(f"the swarm sandbox needs {', '.join(missing)}, not found on PATH",
                         hint="install Docker Engine (dockerd, containerd) and util-linux/iproute2")


def _run(argv: Sequence[str]) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise SwarmError(f"`{' '.join(argv)}` failed: {(done.stderr or done.stdout).strip()}")


def link(nodes: list[Node]) -> None:
    """Two namespaces and the veth pair between them, addressed and up."""
    for node in nodes:
        _run(["ip", "netns", "add", node.netns])
    _run(["ip", "link", "add", nodes[0].veth, "type", "veth", "peer", "name", nodes[1].veth])
    for node in nodes:
        _run(["ip", "link", "set", node.veth, "netns", node.netns])
        _run(["ip", "-n", node.netns, "addr", "add", f"{node.address}/{node.prefix}", "dev", node.veth])
        _run(["ip", "-n", node.netns, "link", "set", "lo", "up"])
        _run(["ip", "-n", node.netns, "link", "set", node.veth, "up"])


def unlink(nodes: list[Node]) -> list[str]:
    removed = []
    for node in nodes:
        if Path(f"/sys/class/net/{node.veth}").exists():  # made, not yet moved into its netns
            _run(["ip", "link", "del", node.veth])
            removed.append(f"veth {node.veth}")
        if Path(f"/run/netns/{node.netns}").exists():  # its end of the veth goes with it
            _run(["ip", "netns", "del", node.netns])
            removed.append(f"namespace {node.netns} (veth {node.veth})")
    return removed


def spawn(node: Node, config_file: Path, storage: str) -> None:
    Path(node.dir).mkdir(parents=True, exist_ok=True)
    with open(node.log, "ab") as log, signals.deferred():
        # A session of its own: a Ctrl-C at the terminal reaches socketlab, which removes it.
        subprocess.Popen(dockerd_argv(node, config_file, storage), stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)


def wait_ready(node: Node, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(docker.errors.DockerException, OSError):
            docker.DockerClient(base_url=node.url, timeout=5).ping()
            return
        if not processes_under(node.dir):
            raise SwarmError(f"dockerd of node {node.name} exited: {_last_error(node.log)}",
                             hint=f"see {node.log}")
        time.sleep(0.2)
    raise SwarmError(f"dockerd of node {node.name} did not answer in {timeout:.0f} s",
                     hint=f"see {node.log}")


def _last_error(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln for ln in log.read_text(errors="replace").splitlines()
                 if "level=error" in ln or "level=fatal" in ln or "failed to start" in ln]
        if lines:
            match = re.search(r'msg="([^"]*)"', lines[-1])
            return match.group(1) if match else lines[-1][-200:]
    return "no error in its log"


def stop_nodes(nodes: Sequence[Node]) -> list[str]:
    """Stop the nodes' dockerds together (SIGTERM, then SIGKILL), then whatever of them
    outlived them: runc containers, containerd, shims (found by the node's folder in their
    command line). Returns the names of the nodes that had processes."""
    running = [node for node in nodes if processes_under(node.dir)]
    for node in running:
        pids = processes_under(node.dir)
        daemon = _pid_from(node.pidfile)
        for pid in ([daemon] if daemon in pids else pids):
            _signal(pid, signal.SIGTERM)
    for node in running:
        _wait_gone(node.dir, STOP_TIMEOUT)
        runc_root = Path(node.dir, "exec", "runtime-runc", "moby")
        if runc_root.is_dir():
            for container in runc_root.iterdir():
                subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", container.name],
                               capture_output=True, check=False, timeout=30)
        for pid in processes_under(node.dir):
            _signal(pid, signal.SIGKILL)
        _wait_gone(node.dir, 5)
    return [node.name for node in running]


def processes_under(folder: str) -> list[int]:
    """Processes whose command line names this node's folder: its dockerd, containerd, shims."""
    needle = (folder.rstrip("/") + "/").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _pid_from(pidfile: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(pidfile.read_text().strip())
    return None


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_gone(folder: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while processes_under(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
