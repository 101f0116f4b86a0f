"""The CLI's commands: each takes parsed arguments and two consoles, calls the API, renders.

No logic lives here that a Python user of the API would miss: this is only glue.
"""

from __future__ import annotations

import argparse
import dataclasses

from rich.console import Console

from socketlab.cli import ExitCode, config_from, dump_json
from socketlab.errors import LabNotRunning
from socketlab.lab import COMPOSE_FILE, IMAGE_CONTEXT, Lab, connect, remove_all_labs


def _progress(err: Console):
    return lambda message: err.print(f"[cyan]•[/] {message}", markup=True, soft_wrap=True)


def _lab(args: argparse.Namespace, err: Console) -> Lab:
    """A lab to start: its settings from the options and the environment."""
    return Lab(config_from(args), progress=_progress(err))


def _running_lab(args: argparse.Namespace, err: Console) -> Lab:
    """The lab that runs now: its settings read from its containers."""
    return Lab.running(config_from(args).project, progress=_progress(err))


def build(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.images import ensure_lab_image

    cfg = config_from(args)
    info = ensure_lab_image(connect(), cfg.image, IMAGE_CONTEXT, _progress(err), base=args.base,
                            force=args.force or args.no_cache, nocache=args.no_cache)
    what = f"built in {info.seconds:.1f} s" if info.built else "up to date"
    out.print(f"{info.tag}: {what}, {info.size_bytes / 1e6:.0f} MB")
    return ExitCode.OK


def _ensure_image(lab: Lab, err: Console) -> None:
    from socketlab.images import ensure_lab_image

    ensure_lab_image(lab.client, lab.config.image, IMAGE_CONTEXT, _progress(err))


def up(args: argparse.Namespace, out: Console, err: Console) -> int:
    lab = _lab(args, err)
    _ensure_image(lab, err)
    try:
        lab.up()
    except BaseException:
        lab.down()
        raise
    status(args, out, err, lab)
    out.print("the lab stays up: `socketlab run tcp`, `socketlab exec server ss -tan`, "
              "then `socketlab down`")
    return ExitCode.OK


def down(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.all:
        removed = remove_all_labs(connect())
        out.print("\n".join(f"removed {r}" for r in removed) or "no socketlab lab was left")
        return ExitCode.OK
    _lab(args, err).down()
    out.print("lab removed")
    return ExitCode.OK


def status(args: argparse.Namespace, out: Console, err: Console, lab: Lab | None = None) -> int:
    from rich.table import Table

    if lab is None:
        try:
            lab = _running_lab(args, err)
        except LabNotRunning:
            lab = _lab(args, err)
    rows = lab.status()
    table = Table(title=f"lab {lab.config.project!r} on {lab.config.subnet}", title_justify="left")
    for column in ("host", "address", "state", "container"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(row[k] for k in ("host", "address", "state", "container")))
    out.print(table)
    return ExitCode.OK if all(r["state"] == "running" for r in rows) else ExitCode.FAILED


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.programs import Options, run_pair

    opts = Options(proto=args.proto, message=args.message, bufsize=args.bufsize,
                   count=args.count, server=not args.no_server)
    lab = _running_lab(args, err)
    result = run_pair(lab, opts)
    if args.json:
        dump_json(out, _run_json(result))
    else:
        _show_run(out, lab, result)
    return ExitCode.OK if result.ok else ExitCode.FAILED


def _show_run(out: Console, lab: Lab, result) -> None:
    from socketlab.render import observation, side_by_side

    out.print(side_by_side(result, lab.config.client_ip, lab.config.server_ip))
    out.print(observation(result), soft_wrap=True)


def _run_json(result) -> dict:
    events = lambda evs: [{"event": e.name, **e.fields, "t": e.t} for e in evs]  # noqa: E731
    return {"options": dataclasses.asdict(result.options), "ok": result.ok,
            "seconds": round(result.seconds, 4), "server_exit": result.server_exit,
            "client_exit": result.client_exit, "server": events(result.server_events),
            "client": events(result.client_events)}


def exec_(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.config import HOSTS
    from socketlab.errors import ConfigError, UnknownHost

    if args.host not in HOSTS:
        raise UnknownHost(f"unknown host {args.host!r}", hint=f"the lab's hosts are {', '.join(HOSTS)}")
    if not args.argv:
        raise ConfigError("no command given", hint="e.g. `socketlab exec server ip -br addr`")
    result = _running_lab(args, err).exec(args.host, args.argv)
    out.file.write(result.stdout)
    err.file.write(result.stderr)
    return result.exit_code


def demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.programs import Options, run_pair

    lab = _lab(args, err)
    _ensure_image(lab, err)
    ok = True
    with lab:
        for proto in ("tcp", "udp"):
            result = run_pair(lab, Options(proto=proto))
            _show_run(out, lab, result)
            ok = ok and result.ok
    return ExitCode.OK if ok else ExitCode.FAILED


def doctor(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.doctor import render, run_checks

    checks = run_checks(config_from(args), COMPOSE_FILE, IMAGE_CONTEXT, _progress(err))
    out.print(render(checks))
    return ExitCode.OK if all(c.ok or not c.required for c in checks) else ExitCode.FAILED


def bench(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.bench import lifecycle, render

    figures = lifecycle(config_from(args), repeat=args.repeat, cold=args.cold,
                        cold_base=args.cold_base, progress=_progress(err))
    if args.json:
        dump_json(out, [dataclasses.asdict(f) for f in figures])
    else:
        out.print(render(figures))
    return ExitCode.OK
