"""What a topology file may say: one table, each key with the reason it is safe, or refused.

    check_document(doc, source="lab.yml", folder=Path("."), mounts=(), lab_image="socketlab/lab:latest")

A topology is an allowlist, not a denylist: a key that is not in these tables is refused, and a
key that is in them is refused when its value would widen the host (more capabilities, a mount
of this machine, higher bounds, another namespace). Every refusal is one ConfigError naming the
file, the host (or network) and the key. The document is checked once fully resolved
(socketlab.lab.topofile: includes, extends, anchors and variables already followed), so what is
checked is what compose is given. docs/sealed.md shows these tables (a test keeps them equal).

`--unsealed HOST` (the command line only, never the file) lifts the checks marked `lifts` for
that host: the lab's networks stay its only networks whatever it says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socketlab.errors import ConfigError
from socketlab.lab import bounds
from socketlab.lab.bounds import Context

Check = Callable[[Context, Any], "str | None"]  # None: allowed; else what is wrong with it


@dataclass(frozen=True)
class Key:
    may: str  # "yes", "bounded" (some values) or "no": the docs' second column
    why: str  # why socketlab allows it, or refuses it
    check: Check = bounds.anything
    lifts: bool = False  # `--unsealed HOST` lifts this key's check for that host


def _no(why: str, *, lifts: bool = False) -> Key:
    return Key("no", why, bounds.never, lifts)


SERVICE_KEYS: dict[str, Key] = {
    "image": Key("yes", "the image the host runs: the lab image, or one of yours (it gets a "
                 "sidecar for the lab's tools)", bounds.text),
    "build": Key("bounded", "how compose builds your image: a context inside the topology's "
                 "folder, with dockerfile, args, target and labels, never under the tag of "
                 "socketlab's own images (the lab image: from images/lab only)", bounds.build),
    "command": Key("yes", "the host's program; on the lab image it runs after lab-host sealed the "
                   "host, as the unprivileged user lab", bounds.command),
    "entrypoint": Key("bounded", "an image of yours only (it holds no NET_ADMIN); on the lab image "
                      "it would run as root around lab-host and could undo the seal",
                      bounds.entrypoint, lifts=True),
    "environment": Key("bounded", "variables for the programs; on the lab image none that steer "
                       "its root tools (PATH, HOME, LD_*, PYTHON*, XTABLES_*, ...)",
                       bounds.environment, lifts=True),
    "networks": Key("bounded", "the lab's own networks the host is on, with ipv4_address and "
                    "aliases", bounds.service_networks),
    "labels": Key("bounded", "labels; of socketlab's own only io.socketlab.role and "
                  "io.socketlab.instruments, none of com.docker.*", bounds.labels),
    "sysctls": Key("bounded", "the TCP/IP knobs the lessons turn (net.ipv4.tcp_*, ip_forward, "
                   "...): they live in the host's own network namespace", bounds.sysctls, lifts=True),
    "cap_add": Key("bounded", "NET_ADMIN on a lab-image host (its tools need it, its programs "
                   "never get it); none on an image of yours (its sidecar holds it)",
                   bounds.cap_add, lifts=True),
    "cap_drop": Key("yes", "fewer capabilities narrow the host", bounds.names),
    "privileged": Key("bounded", "false only: a privileged host has every capability and every "
                      "device of this machine", bounds.false, lifts=True),
    "security_opt": Key("bounded", "no-new-privileges only (socketlab adds it anyway); seccomp "
                        "and apparmor stay Docker's", bounds.security_opt, lifts=True),
    "mem_limit": Key("bounded", "at most 512m: a file may lower the lab's bound, never raise it",
                     bounds.mem_limit, lifts=True),
    "memswap_limit": Key("bounded", "at most 512m; socketlab makes it the memory bound (no swap)",
                         bounds.mem_limit,
                         lifts=True),
    "mem_reservation": Key("bounded", "at most 512m", bounds.mem_limit, lifts=True),
    "pids_limit": Key("bounded", "1 to 256 processes: a fork bomb stays in the host",
                      bounds.pids_limit, lifts=True),
    "shm_size": Key("bounded", "at most 64m (Docker's default)", bounds.shm_size, lifts=True),
    "ulimits": Key("bounded", "nofile, nproc, core and stack, lowered only", bounds.ulimits,
                   lifts=True),
    "cpus": Key("yes", "a share of the CPUs lowers the host's use", bounds.number),
    "cpu_shares": Key("yes", "a weight among containers lowers or keeps the host's use",
                      bounds.number),
    "volumes": Key("bounded", "binds of a folder beside the topology or named by --mount, never "
                   "a system path nor Docker's socket; tmpfs; at a path outside the system's",
                   bounds.volumes, lifts=True),
    "tmpfs": Key("bounded", "a memory folder (counted in the host's memory bound) at a path "
                 "outside the system's", bounds.tmpfs),
    "read_only": Key("yes", "a read-only root filesystem narrows the host", bounds.boolean),
    "init": Key("bounded", "true or false: tini as PID 1 (a path would run a file of this "
                "machine)", bounds.boolean),
    "healthcheck": Key("bounded", "readiness; on the lab image only `CMD lab-ready ...` (a "
                       "healthcheck runs as root)", bounds.healthcheck, lifts=True),
    "depends_on": Key("yes", "start order among the lab's own hosts", bounds.anything),
    "user": Key("bounded", "an image of yours only; the lab image starts as root to seal the "
                "host, and runs programs as lab", bounds.own_image_only, lifts=True),
    "working_dir": Key("yes", "where the program starts", bounds.text),
    "hostname": Key("yes", "the host's own name", bounds.text),
    "domainname": Key("yes", "the host's own domain name", bounds.text),
    "mac_address": Key("yes", "the host's address on its lab network", bounds.text),
    "extra_hosts": Key("yes", "names in the host's /etc/hosts", bounds.anything),
    "expose": Key("yes", "documents a port inside the lab (publishes nothing)", bounds.anything),
    "stop_signal": Key("yes", "how the host is told to stop", bounds.text),
    "stop_grace_period": Key("yes", "how long a stop waits", bounds.text),
    "tty": Key("yes", "a terminal for the program", bounds.boolean),
    "stdin_open": Key("yes", "input kept open for the program", bounds.boolean),
    "profiles": Key("yes", "compose's service groups", bounds.anything),
    "network_mode": _no("the host would leave the lab's networks (host, none, container:, "
                        "service: are other network namespaces)"),
    "ports": _no("publishes a port of this machine: lab hosts are not reachable from outside"),
    "pid": _no("shares a process namespace (host: this machine's processes)", lifts=True),
    "ipc": _no("shares an IPC namespace (host: this machine's)", lifts=True),
    "userns_mode": _no("runs the host outside the engine's user namespace setting", lifts=True),
    "cgroup_parent": _no("moves the host out of the lab's resource bounds", lifts=True),
    "cgroup": _no("shares a cgroup namespace (host: this machine's)", lifts=True),
    "devices": _no("gives the host a device of this machine", lifts=True),
    "device_cgroup_rules": _no("lets the host open devices of this machine", lifts=True),
    "volumes_from": _no("takes another container's mounts (another lab's, even)", lifts=True),
    "links": _no("legacy links; the lab's hosts find each other by name"),
    "external_links": _no("reaches containers that are not the lab's"),
    "container_name": _no("a fixed name: two labs would clash (socketlab names by project)"),
    "env_file": _no("reads a file of this machine into the host (say it in environment:)"),
    "secrets": _no("copies a file of this machine into the host"),
    "configs": _no("copies a file of this machine into the host"),
    "logging": _no("a logging driver can send the host's output off this machine"),
    "dns": _no("points the host's resolver off the lab"),
    "dns_search": _no("points the host's resolver off the lab"),
    "dns_opt": _no("changes the host's resolver"),
    "runtime": _no("another container runtime, outside what the lab was tested on", lifts=True),
    "isolation": _no("another isolation technology", lifts=True),
    "storage_opt": _no("changes the host's storage beyond the lab's bounds", lifts=True),
    "oom_kill_disable": _no("a host out of memory would hang instead of ending", lifts=True),
    "oom_score_adj": _no("moves the host's place in the kernel's out-of-memory order", lifts=True),
    "group_add": _no("adds groups to the host's user", lifts=True),
    "restart": _no("the engine would restart a host outside socketlab's control"),
    "deploy": _no("swarm resources and placement: the lab's bounds and engine decide those"),
    "platform": _no("an image of another CPU runs emulated, not as a lab host"),
    "extends": Key("yes", "followed before checking (from this file or another): the result is "
                   "checked as if written out", bounds.unresolved),
}

NETWORK_KEYS: dict[str, Key] = {
    "driver": Key("bounded", "bridge only (the engine chooses how to run it)", bounds.bridge),
    "driver_opts": Key("bounded", "the MTU and the no-address option only",
                       bounds.network_opts),
    "ipam": Key("bounded", "the subnet (config: - subnet: ...) only", bounds.ipam),
    "internal": Key("yes", "a single-network lab is made internal whatever it says; a routed one "
                    "gets no address on this machine", bounds.boolean),
    "labels": Key("bounded", "labels, none of com.docker.*", bounds.labels),
    "external": _no("a network the lab did not make (another lab's, or one with a way out)"),
    "name": _no("a fixed name: another lab's network, or a clash"),
    "attachable": _no("lets containers that are not the lab's join"),
    "enable_ipv6": _no("IPv6 on the lab's bridge: the seal keeps the hosts to IPv4"),
}

TOP_KEYS: dict[str, Key] = {
    "services": Key("yes", "the lab's hosts, each checked against the table of host keys"),
    "networks": Key("yes", "the lab's networks, each checked against the table of network keys"),
    "version": Key("yes", "compose's old file version: ignored"),
    "include": Key("yes", "followed before checking: the files' services and networks are "
                   "checked as if written out", bounds.unresolved),
    "volumes": _no("named volumes outlive the lab and can bind any path of this machine"),
    "configs": _no("copies files of this machine into hosts"),
    "secrets": _no("copies files of this machine into hosts"),
    "name": _no("renames the compose project: socketlab names labs"),
}


def check_document(doc: Mapping[str, Any], *, source: str, folder: Path,
                   mounts: Iterable[str | Path] = (), lab_image: str,
                   unsealed: Iterable[str] = ()) -> None:
    """Refuse, in one ConfigError, the first thing in `doc` (resolved) that is not allowed."""
    where = source or "the compose file"
    base = Context("", False, Path(folder).resolve(), tuple(Path(m).resolve() for m in mounts))
    for key, value in doc.items():
        if not str(key).startswith("x-"):
            _one(TOP_KEYS, str(key), value, base, f"{where}: {key}:", "remove it from the file")
    services = doc.get("services") or {}
    unsealed = set(unsealed)
    unknown = unsealed - {str(n) for n in services}
    if unknown:
        raise ConfigError(f"--unsealed names {', '.join(sorted(unknown))}, not a host of {where}",
                          hint=f"its hosts are {', '.join(map(str, services))}")
    networks = doc.get("networks") or {}
    if not isinstance(networks, Mapping):
        raise ConfigError(f"{where}: networks: must be a mapping of names",
                          hint="e.g. networks: {labnet: {ipam: {config: [{subnet: ...}]}}}")
    for name, net in networks.items():
        for key, value in (net or {}).items() if isinstance(net, Mapping) else ():
            _one(NETWORK_KEYS, str(key), value, base, f"{where}: network {name!r}: {key}:",
                 f"remove {key}: from network {name!r}")
    for name, spec in services.items():
        if not isinstance(spec, Mapping):
            continue  # parse() says what a service must be
        ctx = Context(str(name), spec.get("image") == lab_image, base.folder, base.mounts,
                      str(name) in unsealed, str(spec.get("image") or ""))
        for key, value in spec.items():
            _one(SERVICE_KEYS, str(key), value, ctx, f"{where}: host {name!r}: {key}:",
                 f"remove {key}: from {name!r}, or see docs/sealed.md for what a host may say")


def _one(table: Mapping[str, Key], key: str, value: Any, ctx: Context, what: str,
         hint: str) -> None:
    rule = table.get(key)
    if rule is None:
        raise ConfigError(f"{what} not a key socketlab knows to be safe", hint=hint)
    if rule.lifts and ctx.unsealed:
        return
    problem = rule.check(ctx, value)
    if problem is not None:
        said = f"{what} {problem or rule.why}"  # one line, whatever the file's text holds
        raise ConfigError(said.replace("\r", "\\r").replace("\n", "\\n"), hint=hint)


def table_markdown() -> str:
    """The tables as docs/sealed.md shows them (the page's test compares the two)."""
    lines = []
    for title, table in (("A host (`services: NAME:`)", SERVICE_KEYS),
                         ("A network (`networks: NAME:`)", NETWORK_KEYS),
                         ("The file (top level)", TOP_KEYS)):
        lines += [f"### {title}", "", "| key | may a file say it | why | `--unsealed` lifts it |",
                  "|---|---|---|---|"]
        lines += [f"| `{k}` | {r.may} | {_cell(r.why)} | {'yes' if r.lifts else 'no'} |"
                  for k, r in table.items()]
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return re.sub(r"\|", r"\\|", text)
