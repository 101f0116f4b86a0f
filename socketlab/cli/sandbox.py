"""The swarm sandbox: a real two-node Docker Swarm on this machine, for `--engine swarm`.

    socketlab sandbox up        two dockerds in their own namespaces, a veth, swarm init/join
    socketlab sandbox status    its nodes, endpoints and what runs on them
    socketlab sandbox down      nothing of it is left
"""

from __future__ import annotations

import argparse

from rich.console import Console

from socketlab.cli import common


def register(command) -> None:
    sandbox = command("sandbox", "a two-node Docker Swarm on this machine (needs root)", _usage)
    actions = sandbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    up_ = actions.add_parser("up", help="make the sandbox and copy the lab image to its nodes")
    up_.set_defaults(handler=up)
    up_.add_argument("--image", action="append",
                     help="image to copy to both nodes (repeatable; default the lab image)")
    up_.add_argument("--storage", choices=["auto", "overlay2", "vfs"], default="auto",
                     help="the nodes' storage driver (default auto: overlay2, else vfs)")
    actions.add_parser("down", help="remove the sandbox, leaving nothing").set_defaults(handler=down)
    actions.add_parser("status", help="show the sandbox's nodes").set_defaults(handler=status)
    for action in actions.choices.values():
        action.add_argument("--name", help="sandbox name (default slswarm; env SOCKETLAB_SANDBOX)")


def _usage(_args: argparse.Namespace, _out: Console, _err: Console) -> int:
    return common.ExitCode.USAGE  # argparse requires an action; never reached


def up(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.cli.lab import ensure_image
    from socketlab.lab.lab import Lab
    from socketlab.lab.sandbox import Sandbox

    images = args.image
    if not images:  # the lab image, built first if this checkout's is missing or stale
        lab = Lab(common.config_from(args))
        ensure_image(lab, err)
        images = [lab.config.image]
    state = Sandbox(args.name, progress=common.progress(err)).up(images, args.storage)
    _show(out, state)
    out.print(f"up in {state.up_seconds:.1f} s; now `socketlab --engine swarm up`, "
              "and `socketlab sandbox down` at the end")
    return common.ExitCode.OK


def down(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.lab.sandbox import Sandbox

    sandbox = Sandbox(args.name, progress=common.progress(err))
    removed = sandbox.down()
    if removed:
        out.print("removed " + ", ".join(removed), soft_wrap=True)
    out.print(f"nothing of sandbox {sandbox.name!r} is left" if removed
              else f"no sandbox {sandbox.name!r} was there; nothing to remove")
    return common.ExitCode.OK


def status(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.lab.sandbox import find, node_status

    state = find(args.name)
    rows = node_status(state)
    _show(out, state, rows)
    return common.ExitCode.OK if all(r["daemon"] == "answers" for r in rows) else common.ExitCode.FAILED


def _show(out: Console, state, rows: list[dict[str, str]] | None = None) -> None:
    from rich.table import Table

    from socketlab.lab.sandbox import node_status

    rows = rows if rows is not None else node_status(state)
    table = Table(title=f"sandbox {state.name!r}: {state.underlay}, {state.storage}",
                  title_justify="left")
    columns = ("node", "address", "role", "daemon", "containers")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    out.print(table)
    for row in rows:  # whole, for DOCKER_HOST=... docker ps (a table column would cut them)
        out.print(f"{row['node']}: {row['endpoint']}", soft_wrap=True)
