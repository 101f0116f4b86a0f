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
    if args.capture:
        return _run_captured(args, out, err, lab, opts)
    result = run_pair(lab, opts)
    if args.json:
        dump_json(out, _run_json(result))
    else:
        _show_run(out, lab, result)
    return ExitCode.OK if result.ok else ExitCode.FAILED


def _run_captured(args, out: Console, err: Console, lab: Lab, opts) -> int:
    """A run with tcpdump on both hosts: the pcaps, and the ladder with the programs' calls."""
    from pathlib import Path

    from socketlab.capture import new_run_dir
    from socketlab.experiment import Context
    from socketlab.experiments.common import events_of, ladder_files, observe
    from socketlab.programs import run_pair

    ctx = Context(lab, new_run_dir(Path(args.capture), f"run-{opts.proto}"), _progress(err))
    obs = observe(ctx, lambda: run_pair(lab, opts), name=opts.proto)
    files = ladder_files(ctx, obs, opts.proto, events_of(obs.result), opts.bufsize)
    _show_run(out, lab, obs.result)
    out.print(Path(files[f"{opts.proto} ladder (text)"]).read_text(), soft_wrap=True, markup=False)
    for host in obs.capture.hosts.values():
        out.print(f"{host.host}: {host.pcap} ({host.captured} packets, {host.dropped} dropped)")
    out.print(f"ladder: {files[f'{opts.proto} ladder (SVG)']}")
    return ExitCode.OK if obs.result.ok else ExitCode.FAILED


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


def experiments(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run the chosen experiments in a fresh lab, then write the report of the run."""
    from pathlib import Path

    from socketlab.capture import new_run_dir
    from socketlab.experiment import run_experiment, run_meta, select

    chosen = select(args.ids)  # unknown ids are refused before anything starts
    lab = _lab(args, err)
    _ensure_image(lab, err)
    run_dir = new_run_dir(Path(args.out), "experiments")
    results = []
    with lab:
        meta = run_meta(lab)
        for number, exp in enumerate(chosen, 1):
            lab.progress(f"[{number}/{len(chosen)}] {exp.id}: {exp.title}")
            results.append(run_experiment(exp, lab, run_dir, lab.progress))
    return _show_results(args, out, results, run_dir, meta)


def experiment(args: argparse.Namespace, out: Console, err: Console) -> int:
    """One experiment, with its evidence and ladder printed."""
    return experiments(args, out, err)


def _show_results(args, out: Console, results, run_dir, meta: dict[str, str]) -> int:
    from socketlab import report
    from socketlab.render import evidence_text, verdict_table

    files = report.write_report(results, meta, run_dir)
    if args.junit:
        from pathlib import Path

        Path(args.junit).write_text(report.to_junit(results, meta))
    if args.json:
        out.file.write(report.to_json(results, meta) + "\n")
    else:
        if len(results) == 1:
            out.print(evidence_text(results[0]), markup=False, soft_wrap=True)
        out.print(verdict_table(results))
        for name, path in files.items():
            out.print(f"{name}: {path}")
    return ExitCode.OK if all(r.verdict.status != "inconclusive" for r in results) else ExitCode.FAILED


def report(args: argparse.Namespace, out: Console, err: Console) -> int:
    from pathlib import Path

    from socketlab.errors import ConfigError
    from socketlab.report import load_run

    runs = sorted(Path("runs").glob("*-experiments*"))
    run_dir = Path(args.run_dir) if args.run_dir else (runs[-1] if runs else None)
    if run_dir is None or not (run_dir / "verdicts.json").is_file():
        raise ConfigError(f"no run with a verdicts.json at {run_dir or './runs'}",
                          hint="run `socketlab experiments` first, or name a run folder")
    results, meta = load_run(run_dir)
    args.junit, args.json = None, False
    return _show_results(args, out, results, run_dir, meta)


def doctor(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.doctor import render, render_backends, run_checks, shaping_support

    checks = run_checks(config_from(args), COMPOSE_FILE, IMAGE_CONTEXT, _progress(err))
    out.print(render(checks))
    support = shaping_support(config_from(args), _progress(err))  # None: no engine or image
    if support is not None:
        out.print(render_backends(support))
    return ExitCode.OK if all(c.ok or not c.required for c in checks) else ExitCode.FAILED


def bench(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab import bench as b

    if args.what == "analysis":
        figures = b.analysis(repeat=args.repeat, progress=_progress(err))
    elif args.what == "capture":
        figures = b.capture(config_from(args), progress=_progress(err))
    elif args.what == "shaping":
        figures = b.shaping(config_from(args), progress=_progress(err), backend=args.backend)
    else:
        figures = b.lifecycle(config_from(args), repeat=args.repeat, cold=args.cold,
                              cold_base=args.cold_base, progress=_progress(err))
    if args.json:
        dump_json(out, [dataclasses.asdict(f) for f in figures])
    else:
        out.print(b.render(figures, args.what))
    return ExitCode.OK


# `socketlab shape` options -> spec words: (option, spec word, the option it needs)
_SHAPE_WORDS = (("delay", "delay", None), ("jitter", "", "delay"), ("distribution", "distribution", "jitter"),
                ("loss", "loss", None), ("loss_burst", "burst", "loss"), ("duplicate", "duplicate", None),
                ("reorder", "reorder", None), ("gap", "gap", "reorder"), ("corrupt", "corrupt", None),
                ("rate", "rate", None), ("limit", "limit", "rate"), ("seed", "seed", None))


def shape_spec(args: argparse.Namespace) -> str:
    """The spec text from --spec and the one-parameter options (in the spec's own order)."""
    from socketlab.errors import ConfigError

    words = [args.spec] if args.spec else []
    for option, word, needs in _SHAPE_WORDS:
        value = getattr(args, option)
        if value is None:
            continue
        if needs and getattr(args, needs) is None:
            raise ConfigError(f"--{option.replace('_', '-')} needs --{needs}",
                              hint="e.g. --delay 100ms --jitter 10ms --distribution normal")
        words += [word, value] if word else [value]
    return " ".join(words)


def shape(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Validate first (no Docker needed for that), then apply, show, clear or plan in the host."""
    from socketlab import shaping
    from socketlab.errors import ConfigError

    spec = shape_spec(args)
    faults = [shaping.parse_fault(text) for text in args.fault or []]
    direction = args.dir or "egress"
    wants_spec = not (args.show or args.clear or args.backends)
    if wants_spec and not spec and not faults:
        raise ConfigError("nothing to do: give a spec, or --show, --clear or --backends",
                          hint=f"e.g. `socketlab shape {args.host} --delay 100ms --loss 5%`")
    if (spec or faults) and not wants_spec:
        raise ConfigError("a spec cannot go with --show, --clear or --backends", hint="give one or the other")
    # a bad spec or fault stops here: nothing touched
    impairment = shaping.parse(spec, faults) if spec or faults else None
    shaping.check_request(args.host, args.dir, args.backend)
    lab = _running_lab(args, err)
    if args.clear:
        shaping.clear(lab, args.host, args.dir)
        out.print(f"{args.host}: shaping cleared ({args.dir or 'both directions'})")
    elif args.show:
        out.print(shaping.show(lab, args.host), markup=False, highlight=False, soft_wrap=True)
    elif args.backends:
        from socketlab.doctor import parse_backends, render_backends

        out.print(render_backends(parse_backends(shaping.backends(lab, args.host))))
    elif args.plan:
        out.print(shaping.plan(lab, args.host, spec, direction, args.backend, faults),
                  markup=False, soft_wrap=True)
    else:
        done = shaping.shape(lab, args.host, impairment, direction, args.backend)
        shown = "; ".join([done.spec] * bool(done.spec) + [f"fault {t}" for t in args.fault or []])
        out.print(f"{done.host} {done.direction}: {shown} (backend {done.backend})", markup=False)
    return ExitCode.OK
