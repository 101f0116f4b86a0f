"""Commands that run the post's programs: one exchange in a running lab, or the whole demo."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from socketlab.cli import common
from socketlab.cli.lab import ensure_image
from socketlab.lab.config import PROTOCOLS
from socketlab.lab.lab import Lab
from socketlab.meanwhile import Meanwhile, load_meanwhile

if TYPE_CHECKING:
    from rich.console import Console


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
    run_.add_argument("--server-cmd", metavar="CMD",
                      help="your own server instead of the post's, e.g. 'python3 /work/srv.py' "
                           "(ready once --port is open: TCP listening, UDP bound)")
    run_.add_argument("--client-cmd", metavar="CMD",
                      help="your own client instead of the post's (starts once the server is ready)")
    run_.add_argument("--port", type=int, help="the server's port (default: the lab's)")
    run_.add_argument("--json", action="store_true", help="print the run as JSON")
    common.topology_options(command("demo", "the post's TCP and UDP exchanges, start to finish", demo))


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.act.programs import Options, command_argv

    opts = Options(proto=args.proto, message=args.message, bufsize=args.bufsize,
                   count=args.count, server=not args.no_server, port=args.port)
    for cmd in (args.server_cmd, args.client_cmd):  # an unreadable command stops here
        if cmd is not None:
            command_argv(cmd)
    if args.capture:
        common.writable_folder(args.capture, "--capture")  # before anything runs
    lab = common.running_lab(args, err)
    if args.capture:
        return _run_captured(args, out, err, lab, opts)
    asking = Meanwhile(lambda: shaped_now(lab))  # a run on shaped links says so
    # the output's modules load while the exchange waits on the engine
    loading = load_meanwhile("rich.console", "socketlab.present.terminal")
    result = _exchange(args, lab, opts, common.progress(err))()
    shaping = asking.answer()
    loading.answer()
    if args.json:
        common.dump_json(out, {**_run_json(result), "shaping": shaping})
    else:
        _show_shaping(out, shaping)
        _show_run(out, lab, result, own=_own(args))
    return common.ExitCode.OK if result.ok else common.ExitCode.FAILED


def _own(args: argparse.Namespace) -> bool:
    return args.server_cmd is not None or args.client_cmd is not None


def _run_captured(args, out: Console, err: Console, lab: Lab, opts) -> int:
    """A run with tcpdump on both hosts: the pcaps, and the ladder with the programs' calls."""
    from socketlab.observe.capture import default_filter, mark_complete, new_run_dir
    from socketlab.observe.observation import Context, events_of, ladder_files, observe

    ctx = Context(lab, new_run_dir(Path(args.capture), f"run-{opts.proto}"), common.progress(err))
    if args.underlay:
        return _run_underlay(out, ctx, opts)
    obs = observe(ctx, _exchange(args, lab, opts, ctx.progress), name=opts.proto,
                  bpf=None if not opts.port else default_filter(opts.port))
    files = ladder_files(ctx, obs, opts.proto, events_of(obs.result), opts.bufsize)
    mark_complete(ctx.run_dir)
    _show_run(out, lab, obs.result, own=_own(args))
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


def _exchange(args: argparse.Namespace, lab: Lab, opts, progress=None):
    """The run asked for: the post's programs, or your own commands in their place (each
    side independently; the server is ready by its port when it is yours)."""
    from socketlab.act import programs

    if args.server_cmd is None and args.client_cmd is None:
        return lambda: programs.run_pair(lab, opts, progress=progress)
    port = opts.port or lab.config.port
    server_host, _ = programs.roles(lab)
    server = None if args.no_server else (
        programs.command_argv(args.server_cmd) if args.server_cmd is not None
        else programs.server_argv(opts, port))
    client = programs.command_argv(args.client_cmd) if args.client_cmd is not None \
        else programs.client_argv(opts, lab.topology.ip(server_host), port)
    ready = "port" if args.server_cmd is not None else "event"
    return lambda: programs.run_programs(lab, opts, server, client, ready=ready, progress=progress)


def _show_run(out: Console, lab: Lab, result, *, own: bool = False) -> None:
    from socketlab.act.programs import roles
    from socketlab.present.terminal import observation, side_by_side

    server, client = roles(lab)
    if own:  # programs of your own: what they printed and how they ended, nothing read into it
        for host, text, code in ((server, result.server_output, result.server_exit),
                                 (client, result.client_output, result.client_exit)):
            if code is None:
                continue
            out.print(f"{host} ({lab.topology.ip(host)}) exited {code}", markup=False)
            for line in text.splitlines():
                out.print(f"  {line}", markup=False, soft_wrap=True)
        return
    out.print(side_by_side(result, lab.topology.ip(client), lab.topology.ip(server)))
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
            if proto == "udp":
                out.print()  # a line between the two exchanges
            _show_run(out, lab, result)
            ok = ok and result.ok
    return common.ExitCode.OK if ok else common.ExitCode.FAILED
