"""Commands that run the post's programs: one exchange in a running lab, or the whole demo."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rich.console import Console

from socketlab.cli import common
from socketlab.cli.lab import ensure_image
from socketlab.lab.config import PROTOCOLS
from socketlab.lab.lab import Lab


def register(command) -> None:
    run_ = command("run", "run the post's server and client in the running lab", run)
    run_.add_argument("proto", choices=PROTOCOLS)
    common.program_options(run_)
    run_.add_argument("--capture", nargs="?", const="runs", metavar="DIR",
                      help="capture on both hosts; pcaps and a ladder diagram under DIR (default ./runs)")
    run_.add_argument("--underlay", action="store_true",
                      help="swarm: with --capture, also capture between the nodes and show the "
                           "exchange inside VXLAN (outer UDP 4789, VNI, inner frame)")
    run_.add_argument("--no-server", action="store_true",
                      help="run only the client, against a host with no server (the post's C1/C2)")
    run_.add_argument("--json", action="store_true", help="print the run as JSON")
    common.topology_options(command("demo", "the post's TCP and UDP exchanges, start to finish", demo))


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.act.programs import Options, run_pair

    opts = Options(proto=args.proto, message=args.message, bufsize=args.bufsize,
                   count=args.count, server=not args.no_server)
    if args.capture:
        common.writable_folder(args.capture, "--capture")  # before anything runs
    lab = common.running_lab(args, err)
    if args.capture:
        return _run_captured(args, out, err, lab, opts)
    shaping = shaped_now(lab)  # a run on shaped links says so
    result = run_pair(lab, opts, progress=common.progress(err))
    if args.json:
        common.dump_json(out, {**_run_json(result), "shaping": shaping})
    else:
        _show_shaping(out, shaping)
        _show_run(out, lab, result)
    return common.ExitCode.OK if result.ok else common.ExitCode.FAILED


def _run_captured(args, out: Console, err: Console, lab: Lab, opts) -> int:
    """A run with tcpdump on both hosts: the pcaps, and the ladder with the programs' calls."""
    from socketlab.act.programs import run_pair
    from socketlab.observe.capture import mark_complete, new_run_dir
    from socketlab.observe.observation import Context, events_of, ladder_files, observe

    ctx = Context(lab, new_run_dir(Path(args.capture), f"run-{opts.proto}"), common.progress(err))
    if args.underlay:
        return _run_underlay(out, ctx, opts)
    obs = observe(ctx, lambda: run_pair(lab, opts, progress=ctx.progress), name=opts.proto)
    files = ladder_files(ctx, obs, opts.proto, events_of(obs.result), opts.bufsize)
    mark_complete(ctx.run_dir)
    _show_run(out, lab, obs.result)
    out.print(Path(files[f"{opts.proto} ladder (text)"]).read_text(), soft_wrap=True, markup=False)
    for host in obs.capture.hosts.values():
        out.print(f"{host.host}: {host.pcap} ({host.captured} packets, {host.dropped} dropped)")
    out.print(f"ladder: {files[f'{opts.proto} ladder (SVG)']}")
    return common.ExitCode.OK if obs.result.ok else common.ExitCode.FAILED


def _run_underlay(out: Console, ctx, opts) -> int:
    """The exchange captured on the hosts and between the nodes: the VXLAN view."""
    from socketlab.act.programs import run_pair
    from socketlab.errors import ConfigError
    from socketlab.lab.engine_swarm import is_swarm
    from socketlab.observe.capture import mark_complete
    from socketlab.observe.observation import observe
    from socketlab.observe.underlay import UnderlayCapture, underlay_files

    if not is_swarm(ctx.lab):
        raise ConfigError("--underlay needs a lab on swarm (its nodes have an underlay)",
                          hint="socketlab --engine swarm run tcp --capture --underlay")
    with UnderlayCapture(ctx.lab, ctx.run_dir, name=f"{opts.proto}-underlay") as under:
        obs = observe(ctx, lambda: run_pair(ctx.lab, opts), name=opts.proto)
    _show_run(out, ctx.lab, obs.result)
    files = underlay_files(ctx, under.result)
    mark_complete(ctx.run_dir)
    out.print(Path(files["underlay (text)"]).read_text(), soft_wrap=True, markup=False)
    for host in (*obs.capture.hosts.values(), *under.result.hosts.values()):
        out.print(f"{host.host}: {host.pcap} ({host.captured} packets, {host.dropped} dropped)")
    return common.ExitCode.OK if obs.result.ok else common.ExitCode.FAILED


def _show_run(out: Console, lab: Lab, result) -> None:
    from socketlab.present.terminal import observation, side_by_side

    out.print(side_by_side(result, lab.config.client_ip, lab.config.server_ip))
    out.print(observation(result), soft_wrap=True)


def _run_json(result) -> dict:
    events = lambda evs: [{"event": e.name, **e.fields, "t": e.t} for e in evs]  # noqa: E731
    return {"options": dataclasses.asdict(result.options), "ok": result.ok,
            "seconds": round(result.seconds, 4), "server_exit": result.server_exit,
            "client_exit": result.client_exit, "server_stderr": result.server_stderr,
            "client_stderr": result.client_stderr, "server": events(result.server_events),
            "client": events(result.client_events)}


def shaped_now(lab: Lab) -> dict:
    """Each host's shaping now ({} where that cannot be asked)."""
    from socketlab.act import shaping
    from socketlab.errors import LabError

    try:
        return shaping.shaped_now(lab)
    except LabError:
        return {}


def _show_shaping(out: Console, found: dict) -> None:
    from socketlab.act.shaping import shaped_lines

    for line in shaped_lines(found):
        out.print(f"shaped: {line} (what this run crosses)", markup=False, soft_wrap=True)


def demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.act.programs import Options, run_pair
    from socketlab.lab.existing import this_or_running

    lab = common.lab_for(args, err)
    ensure_image(lab, err)
    ok = True
    with this_or_running(lab, common.asked(args)) as lab:  # a running lab: used, left running
        _show_shaping(out, shaped_now(lab))
        for proto in ("tcp", "udp"):
            result = run_pair(lab, Options(proto=proto))
            _show_run(out, lab, result)
            ok = ok and result.ok
    return common.ExitCode.OK if ok else common.ExitCode.FAILED
