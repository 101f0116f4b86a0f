"""Commands for the lab itself: build its image, bring it up, see it, use a host, take it down."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from socketlab.cli import common
from socketlab.errors import LabError, LabExists, LabNotRunning
from socketlab.lab import seal
from socketlab.lab.assets import IMAGE_CONTEXT
from socketlab.lab.docker_api import connect
from socketlab.lab.existing import differences
from socketlab.lab.lab import Lab

if TYPE_CHECKING:
    from rich.console import Console


def register(command) -> None:
    build_ = command("build", "build the lab image (and its base, if no registry has one)", build)
    build_.add_argument("--force", action="store_true", help="rebuild even if up to date")
    build_.add_argument("--no-cache", action="store_true", help="rebuild every step")
    build_.add_argument("--base", help="base image (default debian:bookworm-slim; env SOCKETLAB_BASE)")
    up_ = command("up", "start the lab's two hosts and leave them running", up)
    common.topology_options(up_)
    up_.add_argument("--unsealed", action="append", metavar="HOST",
                     help="DANGER: let HOST's topology keys through unchecked (privileges, mounts, "
                          "bounds: see docs/sealed.md); every output then says so; repeat for more")
    down_ = command("down", "remove the lab (hosts and bridge)", down)
    down_.add_argument("--all", action="store_true", help="remove every socketlab lab on this engine")
    down_.add_argument("--json", action="store_true", help="print what was removed as JSON")
    status_ = command("status", "show the lab's hosts", status)
    status_.add_argument("--json", action="store_true", help="print the lab's hosts as JSON")
    cp_ = command("cp", "copy a file or folder into a lab host, or a file out of one", cp)
    cp_.add_argument("src", metavar="SRC", help="a file or folder here, or HOST:PATH")
    cp_.add_argument("dest", metavar="DEST", help="HOST:PATH in the lab (parents are made), or a path here")
    exe = command("exec", "run a command in a lab host; its output as it comes", exec_)
    exe.add_argument("-i", "--interactive", action="store_true", help="pass this terminal's input on")
    exe.add_argument("-t", "--tty", action="store_true",
                     help="a terminal in the host (with -i: `exec -it client bash`)")
    exe.add_argument("host", metavar="HOST", help="a host of the lab, e.g. server or client")
    exe.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD")


def build(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.lab.images import ensure_lab_image

    cfg = common.config_from(args)
    info = ensure_lab_image(connect(), cfg.image, IMAGE_CONTEXT, common.progress(err), base=args.base,
                            force=args.force or args.no_cache, nocache=args.no_cache)
    what = f"built in {info.seconds:.1f} s" if info.built else "up to date"
    out.print(f"{info.tag}: {what}, {info.size_bytes / 1e6:.0f} MB")
    return common.ExitCode.OK


def ensure_image(lab: Lab, err: Console) -> None:
    """The lab image, built on this machine's engine (a swarm lab copies it to its nodes)."""
    from socketlab.lab.engine_swarm import is_swarm
    from socketlab.lab.images import ensure_lab_image

    client = connect() if is_swarm(lab) else lab.client
    ensure_lab_image(client, lab.config.image, IMAGE_CONTEXT, common.progress(err))


def up(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Start the lab; a lab of that name already there is left as it is (and if it runs
    with every setting asked for, that is success: nothing to do)."""
    lab = common.lab_for(args, err)
    lab.topology  # noqa: B018  # a topology file that is refused is refused before any build
    ensure_image(lab, err)
    try:
        lab.up(kept=True)  # the lab outlives this command: no reaper takes it before `down`
    except LabExists as e:
        running = e.running and common.running_lab(args, err)
        if not running or differences(lab.config, running.config, common.asked(args)):
            raise
        status(args, out, err, running)
        out.print(f"lab {lab.config.project!r} was already running with these settings: "
                  "nothing changed", soft_wrap=True)
        return common.ExitCode.OK
    with lab.removed_if_interrupted():
        status(args, out, err, lab)
        out.print("the lab stays up: `socketlab run tcp`, `socketlab exec server ss -tan`, "
                  "then `socketlab down`", soft_wrap=True)
    return common.ExitCode.OK


def down(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.all:
        removed = _remove_all(args)
        if args.json:
            common.dump_json(out, {"project": None, "removed": removed})
        else:
            out.print("\n".join(f"removed {r}" for r in removed) or "no socketlab lab was left")
        return common.ExitCode.OK
    lab = common.lab_for(args, err)
    removed = lab.down()
    project = lab.config.project
    if args.json:
        common.dump_json(out, {"project": project, "removed": removed})
        return common.ExitCode.OK
    out.print(f"lab {project!r} removed ({', '.join(removed)})" if removed
              else f"there was no lab {project!r}: nothing to remove", soft_wrap=True)
    return common.ExitCode.OK


def _remove_all(args: argparse.Namespace) -> list[str]:
    """Every socketlab lab on this engine, or on every node of the swarm (--engine swarm)."""
    if common.engine_of(args) == "swarm":
        from socketlab.lab.engine_swarm import remove_all_swarm_labs
        from socketlab.lab.swarm import Swarm

        return remove_all_swarm_labs(Swarm.from_settings())
    from socketlab.lab.containers import remove_all_labs

    return remove_all_labs(connect())


def status(args: argparse.Namespace, out: Console, err: Console, lab: Lab | None = None) -> int:
    """The lab's hosts as they are now; a lab that is not there says so."""
    from rich.table import Table

    if lab is None:
        try:
            lab = common.running_lab(args, err)
        except LabNotRunning:
            lab = common.lab_for(args, err)
    rows, subnet, project = lab.status(), lab.subnet_in_use(), lab.config.project
    there = not (subnet is None and all(r["state"] == "absent" for r in rows))
    running = there and all(r["state"] == "running" for r in rows)
    broken = [r for r in rows if r.get("sealed", "-").startswith("NO")]  # not what `up` started
    ok = common.ExitCode.OK if running and not broken else common.ExitCode.FAILED
    shaping = _shaping(lab) if running else {}
    if getattr(args, "json", False):
        common.dump_json(out, {"project": project, "subnet": subnet, "running": running,
                               "hosts": rows if there else [], "shaping": shaping})
        return ok
    if not there:
        out.print(f"lab {project!r} is not running: it has no hosts and no network", soft_wrap=True)
        return common.ExitCode.FAILED
    where = f"on {subnet}" if subnet else "(its network is gone)"
    table = Table(title=f"lab {project!r} {where}", title_justify="left")
    columns = [c for c in ("name", "address", "node", "state", "container", "sealed")
               if c in rows[0]]
    for column in columns:
        table.add_column("host" if column == "name" else column)
    for row in rows:
        table.add_row(*(row[k].partition(":")[0] if k == "sealed" else row[k] for k in columns))
    out.print(table)
    for line in _seal_warnings(rows):
        out.print(line, markup=False, soft_wrap=True)
    from socketlab.act.shaping import shaped_lines

    for line in shaped_lines(shaping) if running else []:
        out.print(f"shaped: {line}", markup=False, soft_wrap=True)
    return ok


def _seal_warnings(rows: list[dict[str, str]]) -> list[str]:
    """A line for each host that is not sealed, or that runs --unsealed."""
    lines = []
    for row in rows:
        words = row.get("sealed", "-")
        if words.startswith("NO"):
            lines.append(f"warning: host {row['name']!r} is not sealed: {words.partition(': ')[2]}")
        elif seal.UNSEALED_WORDS in words:
            still = " (its seal is still in place)" if words.startswith("yes") else ""
            lines.append(f"warning: host {row['name']!r} runs {seal.UNSEALED_WORDS}{still}")
    return lines


def _shaping(lab: Lab) -> dict:
    """Each host's shaping now ({} where the hosts are not the post's two)."""
    from socketlab.act.shaping import shaped_now

    try:
        return shaped_now(lab)
    except LabError:
        return {}
def cp(args: argparse.Namespace, out: Console, err: Console) -> int:
    """`cp FILE_OR_FOLDER HOST:PATH` (Lab.put) or `cp HOST:FILE PATH` (Lab.get)."""
    from pathlib import Path

    from socketlab.errors import ConfigError

    lab = common.running_lab(args, err)
    hosts = set(lab.topology.names)

    def remote(text: str) -> tuple[str, str] | None:
        host, sep, path = text.partition(":")
        return (host, path) if sep and host in hosts else None

    src, dest = remote(args.src), remote(args.dest)
    if dest is not None and src is None:
        lab.put(dest[0], Path(args.src), dest[1])
        out.print(f"copied {args.src} to {dest[0]}:{dest[1]}", markup=False)
    elif src is not None and dest is None:
        target = Path(args.dest)
        if target.is_dir():
            target = target / Path(src[1]).name
        lab.get(src[0], src[1], target)
        out.print(f"copied {src[0]}:{src[1]} to {target}", markup=False)
    else:
        raise ConfigError("give one side as HOST:PATH and the other as a path here",
                          hint=f"e.g. `socketlab cp ./prog.py client:/work/prog.py`; the lab's "
                               f"hosts are {', '.join(lab.topology.names)}")
    return common.ExitCode.OK


def exec_(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.cli.shell import attached
    from socketlab.errors import ConfigError

    if not args.argv:
        raise ConfigError("no command given", hint="e.g. `socketlab exec server ip -br addr`")
    return attached(common.running_lab(args, err), args.host, args.argv, tty=args.tty,
                    stdin=args.interactive, out=out, err=err)  # UnknownHost names the hosts
