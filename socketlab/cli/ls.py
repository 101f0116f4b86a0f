"""`socketlab ls`: every lab on this engine (as `docker compose ls` and `clab inspect --all`)."""

from __future__ import annotations

import argparse

from rich.console import Console

from socketlab.cli import common


def register(command) -> None:
    ls_ = command("ls", "list every lab on this engine: name, state, subnet, hosts, shaping", ls)
    ls_.add_argument("--json", action="store_true", help="print the labs as JSON")
    reap_ = command("reap", "remove the labs whose owner is gone (killed, crashed) or whose time "
                    "to live has passed; never a live owner's, another machine's, or one "
                    "without an owner", reap)
    reap_.add_argument("--dry-run", action="store_true", help="name them, remove nothing")


def ls(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.act.shaping import describe_state
    from socketlab.lab.inventory import list_labs

    engine = _engine(args)
    labs = _with_shaping(engine, list_labs(engine))
    if args.json:
        common.dump_json(out, [lab.as_dict() for lab in labs])
        return common.ExitCode.OK
    if not labs:
        out.print("no socketlab lab on this engine (start one with `socketlab up`)")
        return common.ExitCode.OK
    from rich.table import Table

    table = Table(title_justify="left")
    for column in ("lab", "state", "subnet", "hosts", "shaping"):
        table.add_column(column)
    for lab in labs:
        hosts = "\n".join(f"{h.name} {h.address}" + ("" if h.state == "running" else f" ({h.state})")
                          for h in lab.hosts)
        shaped = [line for host, found in lab.shaping.items() for line in describe_state(host, found)]
        table.add_row(lab.project, lab.state, "\n".join(lab.subnets) or "-", hosts or "-",
                      "\n".join(shaped) or ("none" if lab.shaping else "-"))
    out.print(table)
    return common.ExitCode.OK


def reap(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.lab.docker_http import DockerHTTP
    from socketlab.lab.reaper import reap as reap_labs

    found = reap_labs(DockerHTTP.from_env(), dry_run=args.dry_run)
    if not found:
        out.print("no stale lab on this engine")
    for lab in found:
        if lab.error:
            err.print(f"error: {lab}", soft_wrap=True)
        else:
            out.print(f"{lab}: not removed (--dry-run)" if args.dry_run else str(lab), soft_wrap=True)
    if any(lab.error for lab in found):
        err.print("hint: see `docker ps -a` and `docker network ls`; then `socketlab -p NAME down`",
                  soft_wrap=True)
        return common.ExitCode.LAB_ERROR
    return common.ExitCode.OK


def _engine(args: argparse.Namespace):
    """This machine's engine, or every node of the swarm (--engine swarm)."""
    from socketlab.lab.docker_http import DockerHTTP

    if common.engine_of(args) == "swarm":
        from socketlab.lab.engine_swarm import NodesHTTP
        from socketlab.lab.swarm import Swarm

        return NodesHTTP(Swarm.from_settings())
    return DockerHTTP.from_env()


def _with_shaping(engine, labs: list) -> list:
    """Each running host's shaping, read from lab-shape's state files (no process in a host)."""
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor

    from socketlab.act.shaping import read_states

    asked = [(lab.project, h) for lab in labs for h in lab.hosts if h.state == "running"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        states = pool.map(lambda ph: read_states(lambda path: engine.read_file(ph[1].instruments, path)),
                          asked)
        found = {(project, h.name): st for (project, h), st in zip(asked, states, strict=True)}
    return [dataclasses.replace(lab, shaping={h.name: found[(lab.project, h.name)] for h in lab.hosts
                                              if (lab.project, h.name) in found}) for lab in labs]
