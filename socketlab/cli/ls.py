"""`socketlab ls`: every lab on this engine (as `docker compose ls` and `clab inspect --all`)."""

from __future__ import annotations

import argparse

from rich.console import Console

from socketlab.cli import common


def register(command) -> None:
    ls_ = command("ls", "list every lab on this engine: name, state, subnet, hosts, shaping", ls)
    ls_.add_argument("--json", action="store_true", help="print the labs as JSON")


def ls(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.lab.inventory import list_labs

    labs = list_labs(_engine(args))
    if args.json:
        common.dump_json(out, [lab.as_dict() for lab in labs])
        return common.ExitCode.OK
    if not labs:
        out.print("no socketlab lab on this engine (start one with `socketlab up`)")
        return common.ExitCode.OK
    from rich.table import Table

    table = Table(title_justify="left")
    for column in ("lab", "state", "subnet", "hosts"):
        table.add_column(column)
    for lab in labs:
        hosts = "\n".join(f"{h.name} {h.address}" + ("" if h.state == "running" else f" ({h.state})")
                          for h in lab.hosts)
        table.add_row(lab.project, lab.state, "\n".join(lab.subnets) or "-", hosts or "-")
    out.print(table)
    return common.ExitCode.OK


def _engine(args: argparse.Namespace):
    """This machine's engine, or every node of the swarm (--engine swarm)."""
    from socketlab.lab.docker_http import DockerHTTP

    if common.engine_of(args) == "swarm":
        from socketlab.lab.engine_swarm import NodesHTTP
        from socketlab.lab.swarm import Swarm

        return NodesHTTP(Swarm.from_settings())
    return DockerHTTP.from_env()
