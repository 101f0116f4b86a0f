"""The value checks of socketlab.lab.allowlist: each takes a host's context and one value, and
returns None (allowed), "" (refused for the key's own reason) or what is wrong with the value.

Paths are judged after symlinks are resolved. The lab's bounds are HOST_LIMITS: a file may lower
them, never raise them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socketlab.lab.assets import IMAGE_CONTEXT

MIB = 1 << 20
MEMORY_BOUND = 512 * MIB
PIDS_BOUND = 256
SHM_BOUND = 64 * MIB
HOST_LIMITS: dict[str, str | int] = {"mem_limit": "512m", "memswap_limit": "512m",
                                     "pids_limit": PIDS_BOUND}
ULIMIT_BOUNDS = {"nofile": 1 << 20, "nproc": PIDS_BOUND, "core": 0, "stack": 8 * MIB}
# Paths of this machine never bound into a host, nor anything holding them (/, /var).
SYSTEM_PATHS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                "/root", "/run", "/sbin", "/sys", "/usr", "/var/run", "/var/lib", "/var/log",
                "/var/lib/docker", "/snap")
# Paths in a host a mount may not cover: the system's, and the lab's own tools (/lab).
HOST_SYSTEM_PATHS = ("/bin", "/boot", "/dev", "/etc", "/lab", "/lib", "/lib32", "/lib64",
                     "/libx32", "/proc", "/root", "/run", "/sbin", "/sys", "/usr", "/var")
NET_ADMIN = "NET_ADMIN"
# Variables the lab image's root tools read (lab-host, lab-seal, iptables, tc, python3).
_STEERING = re.compile(r"^(PATH|HOME|IFS|ENV|BASH_ENV|SHELL|SHELLOPTS|BASHOPTS|CDPATH|PS4|"
                       r"GCONV_PATH|LOCPATH|NLSPATH|HOSTALIASES|RES_OPTIONS|LOCALDOMAIN|"
                       r"TMPDIR|LD_.*|PYTHON.*|XTABLES_.*|IPTABLES_.*|IP6TABLES_.*|TC_.*|"
                       r"MALLOC_.*|GLIBC_.*)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SAFE_SYSCTLS = (r"net\.ipv4\.(ip_forward|ip_default_ttl|ip_no_pmtu_disc|ip_local_port_range|"
                r"ip_unprivileged_port_start|ping_group_range|tcp_[a-z0-9_]+|udp_[a-z0-9_]+|"
                r"icmp_[a-z0-9_]+|ipfrag_[a-z0-9_]+|route\.(min_pmtu|mtu_expires)|"
                r"conf\.[a-z0-9_.-]+\.(rp_filter|accept_redirects|send_redirects|forwarding|"
                r"accept_source_route|secure_redirects|log_martians|mtu))",
                r"net\.core\.(somaxconn|rmem_default|wmem_default|rmem_max|wmem_max)",
                r"net\.ipv6\.conf\.[a-z0-9_.-]+\.disable_ipv6")
_SYSCTL = re.compile("^(" + "|".join(SAFE_SYSCTLS) + ")$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Context:
    host: str  # "" for the file's own keys and its networks
    lab_image: bool  # the host runs the lab image (lab-host, NET_ADMIN)
    folder: Path  # the topology's folder, resolved
    mounts: tuple[Path, ...] = ()  # folders named by --mount, resolved
    unsealed: bool = False  # --unsealed names this host
    image: str = ""  # the host's image: a build may not take the tag of socketlab's own


def anything(_ctx: Context, _value: Any) -> str | None:
    return None


def never(_ctx: Context, _value: Any) -> str | None:
    return ""


def text(_ctx: Context, value: Any) -> str | None:
    return None if isinstance(value, (str, int, float)) else "must be a word or a number"


def boolean(_ctx: Context, value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{value!r} is not true or false"


def false(_ctx: Context, value: Any) -> str | None:
    return None if value is False else ""


def number(_ctx: Context, value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return None if ok else f"{value!r} is not a positive number"


def names(_ctx: Context, value: Any) -> str | None:
    return None if isinstance(value, list) and all(isinstance(v, str) for v in value) \
        else "must be a list of names"


def unresolved(_ctx: Context, _value: Any) -> str | None:
    return "was not followed: read the file with read_topology, which resolves it"


def own_image_only(ctx: Context, _value: Any) -> str | None:
    return None if not ctx.lab_image else ""


# -- what the host runs -------------------------------------------------------------------------
def command(_ctx: Context, value: Any) -> str | None:
    ok = isinstance(value, str) or (isinstance(value, list) and all(
        isinstance(v, (str, int, float)) for v in value))
    return None if ok else "must be a command line or a list of words"


def entrypoint(ctx: Context, value: Any) -> str | None:
    return command(ctx, value) if not ctx.lab_image else ""


def healthcheck(ctx: Context, value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be a mapping (test:, interval:, ...)"
    if not ctx.lab_image or value.get("disable") is True:
        return None
    test = value.get("test")
    words = test if isinstance(test, list) else [test]
    if words == ["NONE"] or (words[:2] == ["CMD", "lab-ready"] and all(
            isinstance(w, str) and re.fullmatch(r"[A-Za-z0-9._-]+", w) for w in words[2:])):
        return None
    return f"test {test!r} on the lab image (only [CMD, lab-ready, ...]: it runs as root)"


def environment(ctx: Context, value: Any) -> str | None:
    items = _keyed(value)
    if items is None:
        return "must be a mapping or a list of NAME=VALUE"
    for name in items:
        if not _NAME.match(name):
            return f"{name!r} is not a variable name"
        if ctx.lab_image and _STEERING.match(name):
            return (f"{name} steers the lab image's root tools (lab-host, lab-seal, iptables); "
                    "set it for your program in its command instead")
    return None


def labels(_ctx: Context, value: Any) -> str | None:
    items = _keyed(value)
    if items is None:
        return "must be a mapping or a list of NAME=VALUE"
    allowed = {"io.socketlab.lab", "io.socketlab.role", "io.socketlab.instruments"}
    for name, val in items.items():
        if name.startswith("com.docker.") or (name.startswith("io.socketlab.") and name not in allowed):
            return f"{name} is a label socketlab or Docker writes itself"
        if name == "io.socketlab.instruments" and val == "inline" and not _ctx.lab_image:
            return "inline instruments need the lab image (an image of yours gets a sidecar)"
    return None


def sysctls(_ctx: Context, value: Any) -> str | None:
    items = _keyed(value)
    if items is None:
        return "must be a mapping or a list of NAME=VALUE"
    for name in items:
        if not _SYSCTL.match(name):
            return f"{name} is not one of the lab's safe net.* settings"
    return None


def cap_add(ctx: Context, value: Any) -> str | None:
    if names(ctx, value) is not None:
        return names(ctx, value)
    extra = sorted({str(v).upper().removeprefix("CAP_") for v in value} - (
        {NET_ADMIN} if ctx.lab_image else set()))
    if extra:
        why = "the lab image gets NET_ADMIN only" if ctx.lab_image else \
            "an image of yours gets none (its sidecar holds NET_ADMIN)"
        return f"{', '.join(extra)}: {why}"
    return None


def security_opt(_ctx: Context, value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be a list"
    for opt in value:
        if str(opt).replace("=", ":") not in ("no-new-privileges", "no-new-privileges:true"):
            return f"{opt!r}: only no-new-privileges (seccomp and apparmor stay Docker's)"
    return None


# -- bounds -----------------------------------------------------------------------------------
def size_bytes(value: Any) -> int | None:
    """Compose's sizes: a number of bytes, or 300m, 1.5g, 512k, 100b; None if not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        return None
    return int(float(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": MIB, "g": 1 << 30}[m.group(2).lower()])


def _at_most(value: Any, bound: int, what: str) -> str | None:
    size = size_bytes(value)
    if size is None or size <= 0:
        return f"{value!r} is not a size (e.g. 256m)"
    if size > bound:
        return f"{value} is more than the lab's {what}: a file may lower it, never raise it"
    return None


def mem_limit(_ctx: Context, value: Any) -> str | None:
    return _at_most(value, MEMORY_BOUND, "512m")


def shm_size(_ctx: Context, value: Any) -> str | None:
    return _at_most(value, SHM_BOUND, "64m")


def pids_limit(_ctx: Context, value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= PIDS_BOUND
    return None if ok else f"{value!r} is not from 1 to {PIDS_BOUND} (the lab's bound: lower only)"


def ulimits(_ctx: Context, value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be a mapping of limits"
    for name, limit in value.items():
        if name not in ULIMIT_BOUNDS:
            return f"{name}: only {', '.join(ULIMIT_BOUNDS)} may be set (lowered)"
        values = [limit.get("soft"), limit.get("hard")] if isinstance(limit, Mapping) else [limit]
        for v in values:
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= ULIMIT_BOUNDS[name]:
                return f"{name} {v!r}: at most {ULIMIT_BOUNDS[name]} (lower only)"
    return None


# -- paths --------------------------------------------------------------------------------------
def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _holds(path: str, roots: tuple[str, ...]) -> bool:
    """`path` is one of `roots`, inside one, or a folder that contains one (/, /var)."""
    return _under(path, roots) or any(_under(r, (path,)) for r in roots)


def system_folder(real: str) -> str:
    """What a resolved path of this machine is, if it may never be bound ("" if it may)."""
    if real == "/":
        return "this machine's root"
    if _holds(real, SYSTEM_PATHS) or "docker.sock" in real:
        return "a system path"
    return ""


def local_folder(ctx: Context, source: str) -> str | None:
    """Why a folder of this machine may not be bound, or None: it must be beside the topology
    or named by --mount, and no system path, once symlinks are followed."""
    real = os.path.realpath(ctx.folder / os.path.expanduser(source))
    what = system_folder(real)
    if what:
        return f"{source} is {what} ({real})"
    folder = str(ctx.folder)
    beside = folder != "/" and not _under(folder, SYSTEM_PATHS) and _under(real, (folder,))
    if beside or _under(real, tuple(str(m) for m in ctx.mounts)):
        return None
    return f"{source} ({real}) is neither beside the topology nor a folder given with --mount"


def host_path(target: Any) -> str | None:
    if not isinstance(target, str) or not target.startswith("/"):
        return f"{target!r} is not an absolute path in the host"
    clean = os.path.normpath(target)
    if clean == "/" or _under(clean, HOST_SYSTEM_PATHS):
        return f"{target} would cover the host's own system or the lab's tools"
    return None


def volumes(ctx: Context, value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be a list"
    for item in value:
        problem = _volume(ctx, item)
        if problem is not None:
            return problem
    return None


def _volume(ctx: Context, item: Any) -> str | None:
    if isinstance(item, str):
        parts = item.split(":")
        if len(parts) == 1:
            return f"{item}: an anonymous volume outlives the lab; bind a folder instead"
        source, dest = parts[0], parts[1]
        if not source.startswith(("/", ".", "~")):
            return f"{item}: a named volume outlives the lab; bind a folder instead"
        return local_folder(ctx, source) or host_path(dest)
    if not isinstance(item, Mapping):
        return f"{item!r} is not a volume"
    kind, target = item.get("type"), item.get("target")
    if kind == "tmpfs":
        return host_path(target)
    if kind != "bind" or not isinstance(item.get("source"), str):
        return f"{kind!r} volume: only binds of folders and tmpfs (a volume outlives the lab)"
    if set(item.get("bind") or {}) - {"create_host_path"}:
        return "bind options (propagation, selinux) are not the lab's"
    return local_folder(ctx, item["source"]) or host_path(target)


def tmpfs(_ctx: Context, value: Any) -> str | None:
    for item in value if isinstance(value, list) else [value]:
        problem = host_path(str(item).split(":")[0])
        if problem is not None:
            return problem
    return None


def build(ctx: Context, value: Any) -> str | None:
    spec = {"context": value} if isinstance(value, str) else value
    if not isinstance(spec, Mapping):
        return "must be a folder or a mapping (context:, dockerfile:, args:)"
    extra = set(spec) - {"context", "dockerfile", "args", "target", "labels"}
    if extra:
        return f"{', '.join(sorted(map(str, extra)))}: not a build option socketlab allows"
    context = spec.get("context", ".")
    if not isinstance(context, str) or "://" in context or context.startswith("git@"):
        return f"context {context!r}: a folder beside the topology only"
    real = os.path.realpath(ctx.folder / os.path.expanduser(context))
    folder = str(ctx.folder)
    if real == "/" or _holds(real, SYSTEM_PATHS) or not _under(real, (folder,)) \
            or folder == "/" or _under(folder, SYSTEM_PATHS):
        return f"context {context} ({real}) is not inside the topology's folder"
    if ctx.lab_image and real != os.path.realpath(IMAGE_CONTEXT):
        return (f"context {context}: the lab image is built from socketlab's images/lab only "
                "(another build would take the lab image's tag)")
    if not ctx.lab_image and ctx.image.startswith("socketlab/"):
        return f"{ctx.image}: a build would take the tag of one of socketlab's own images"
    dockerfile = spec.get("dockerfile")
    if dockerfile is not None and (not isinstance(dockerfile, str) or not _under(
            os.path.realpath(Path(real) / dockerfile), (folder,))):
        return f"dockerfile {dockerfile!r} is not inside the topology's folder"
    return None


# -- networks -------------------------------------------------------------------------------------
def service_networks(_ctx: Context, value: Any) -> str | None:
    if isinstance(value, list):
        return None if all(isinstance(v, str) for v in value) else "must name networks"
    if not isinstance(value, Mapping):
        return "must be a list or a mapping of networks"
    for name, cfg in value.items():
        extra = set(cfg or {}) - {"ipv4_address", "aliases"} if isinstance(cfg, Mapping) else set()
        if extra:
            return f"{name}: {', '.join(sorted(map(str, extra)))}: only ipv4_address and aliases"
    return None


def bridge(_ctx: Context, value: Any) -> str | None:
    return None if value == "bridge" else f"driver {value!r}: a lab network is a bridge"


def network_opts(_ctx: Context, value: Any) -> str | None:
    items = _keyed(value)
    if items is None:
        return "must be a mapping"
    allowed = {"com.docker.network.driver.mtu", "com.docker.network.bridge.inhibit_ipv4"}
    extra = sorted(set(items) - allowed)
    return f"{', '.join(extra)}: only the MTU and inhibit_ipv4" if extra else None


def ipam(_ctx: Context, value: Any) -> str | None:
    if not isinstance(value, Mapping) or set(value) - {"config", "driver"} \
            or value.get("driver", "default") != "default":
        return "only config: [{subnet: ...}] (with the default driver)"
    for cfg in value.get("config") or []:
        if not isinstance(cfg, Mapping) or set(cfg) - {"subnet"}:
            return "config: only subnet: (the lab places its gateway and hosts itself)"
    return None


def _keyed(value: Any) -> dict[str, Any] | None:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return dict(str(item).partition("=")[::2] for item in value)
    return None
