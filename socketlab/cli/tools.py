"""Commands about socketlab itself: what this machine offers it, how fast it is, completion."""

from __future__ import annotations

import argparse
import dataclasses

from rich.console import Console

from socketlab.cli import common
from socketlab.lab.assets import COMPOSE_FILE, IMAGE_CONTEXT


def register(command) -> None:
    doc = command("doctor", "report Docker, compose, the image and the kernel's features", doctor)
    doc.add_argument("--json", action="store_true", help="print the checks as JSON")
    bench_ = command("bench", "measure socketlab (prints a table)", bench)
    bench_.add_argument("what", choices=["lifecycle", "analysis", "capture", "shaping", "swarm", "scale",
                                         "class", "plugin"])
    bench_.add_argument("--backend", choices=["netem", "engine"],
                        help="shaping: this backend only (default: both; netem in a user-mode "
                             "kernel where this one has none)")
    bench_.add_argument("--repeat", type=common.positive_int, default=3,
                        help="runs per figure (median is shown)")
    bench_.add_argument("--cold", action="store_true",
                        help="also time a cold image build (no cache) and, with --cold-base, the base")
    bench_.add_argument("--cold-base", action="store_true", help="also time making the Debian base")
    bench_.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_.add_argument("--sizes", type=sizes, default=(2, 8, 16, 32, 64), metavar="N,N,...",
                        help="scale: the lab sizes, in hosts (default 2,8,16,32,64)")
    bench_.add_argument("--jobs", type=jobs_list, default=(1, 2, 3), metavar="N,N,...",
                        help="class: the --jobs to time (default 1,2,3)")
    bench_.add_argument("--students", type=common.positive_int, default=10, metavar="N",
                        help="class: students prepared per --jobs (default 10)")
    comp = command("completion", "print the shell completion script for bash or zsh", completion)
    comp.add_argument("shell", choices=["bash", "zsh"])
    comp.epilog = ('bash: eval "$(socketlab completion bash)" in ~/.bashrc, or save it in '
                   "/etc/bash_completion.d/socketlab; zsh: socketlab completion zsh > "
                   '"${fpath[1]}/_socketlab", then start a new shell')


def completion(args: argparse.Namespace, out: Console, err: Console) -> int:
    """The completion script for a shell, made from the parser itself (shtab)."""
    import shtab

    from socketlab.cli.app import build_parser

    out.file.write(shtab.complete(build_parser(), shell=args.shell))
    return common.ExitCode.OK


def doctor(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.tools.doctor import kernel_checks, probe, render, render_backends, run_checks

    config = common.config_from(args)
    checks = run_checks(config, COMPOSE_FILE, IMAGE_CONTEXT, common.progress(err))
    found = probe(config, common.progress(err))  # None: no engine or no image (checks say so)
    if found is not None:
        checks += [found.round_trip, *kernel_checks(found.support)]
    ok = all(c.ok or not c.required for c in checks)
    if args.json:
        common.dump_json(out, {"ok": ok, "checks": [dataclasses.asdict(c) for c in checks],
                               "probed_in": found.where if found else None,
                               "shaping": dataclasses.asdict(found.support) if found else None})
        return common.ExitCode.OK if ok else common.ExitCode.FAILED
    out.print(render(checks))
    if found is not None:
        out.print(render_backends(found.support))
    return common.ExitCode.OK if ok else common.ExitCode.FAILED


def _numbers(text: str, low: int, high: int, example: str, each: str, unit: str = ""
             ) -> tuple[int, ...]:
    """A comma-separated list of numbers from `low` to `high`, or one line saying what is wrong."""
    try:
        found = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers such as {example}") from None
    if not found or any(not low <= n <= high for n in found):
        raise argparse.ArgumentTypeError(f"{text!r}: {each} must be {low} to {high}{unit}")
    return found


def sizes(text: str) -> tuple[int, ...]:
    """`--sizes 2,8,32`: lab sizes of 2 to 200 hosts."""
    return _numbers(text, 2, 200, "2,8,32", "each size", " hosts")


def jobs_list(text: str) -> tuple[int, ...]:
    """`--jobs 1,2,4`: 1 to 16 labs at once."""
    return _numbers(text, 1, 16, "1,2,4", "each --jobs")


def bench(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.tools import bench as b

    if args.what == "analysis":
        figures = b.analysis(repeat=args.repeat, progress=common.progress(err))
    elif args.what == "capture":
        figures = b.capture(common.config_from(args), progress=common.progress(err))
    elif args.what == "shaping":
        from socketlab.tools.bench_shaping import shaping

        figures = shaping(common.config_from(args), progress=common.progress(err),
                          backend=args.backend)
    elif args.what == "plugin":
        from socketlab.tools.bench_plugin import plugin

        figures = plugin(common.config_from(args), repeat=args.repeat, progress=common.progress(err))
    elif args.what == "scale":
        from socketlab.tools.bench_scale import scale

        figures = scale(common.config_from(args), sizes=args.sizes, repeat=args.repeat,
                        progress=common.progress(err))
    elif args.what == "class":
        from socketlab.tools.bench_class import class_figures

        figures = class_figures(common.config_from(args), jobs=args.jobs, students=args.students,
                                progress=common.progress(err))
    elif args.what == "swarm":
        from socketlab.tools.bench_swarm import swarm

        figures = swarm(common.config_from(args), repeat=args.repeat, progress=common.progress(err))
    else:
        figures = b.lifecycle(common.config_from(args), repeat=args.repeat, cold=args.cold,
                              cold_base=args.cold_base, progress=common.progress(err))
    if args.json:
        common.dump_json(out, [dataclasses.asdict(f) for f in figures])
    elif args.what == "shaping":
        from socketlab.tools.bench_shaping import render_columns

        out.print(render_columns(figures))
    else:
        out.print(b.render(figures, args.what))
    return common.ExitCode.OK
