"""Commands that check the post's claims: run experiments, and write a run's report again."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.console import Console

from socketlab.cli import common
from socketlab.cli.lab import ensure_image

if TYPE_CHECKING:
    from pathlib import Path

    from socketlab.experiments.base import Result


def register(command) -> None:
    # {claims}: what the registry holds, filled in when a help is shown (app._Filled)
    exps = command("experiments", "check the post's claims {claims} in the running lab "
                   "(else a fresh one); write a report", experiments)
    exps.add_argument("ids", nargs="*", metavar="ID", help="claims to check (default: all), e.g. C4")
    one = command("experiment", "check one claim of the post, with its evidence", experiment)
    one.add_argument("ids", nargs=1, metavar="ID", help="e.g. C4")
    for cmd, what in ((exps, "verdicts"), (one, "verdict")):
        cmd.add_argument("--out", default="runs", help="folder for the run's files (default ./runs)")
        cmd.add_argument("--json", action="store_true", help=f"print the {what} as JSON")
        cmd.add_argument("--junit", metavar="FILE", help="also write JUnit XML here (for CI)")
        cmd.add_argument("--fail-on", action="append", metavar="VERDICTS",
                         help="exit 1 if a claim gets one of these verdicts (comma-separated, "
                              "repeatable): holds, 'holds in part', 'does not hold', inconclusive "
                              "(default: inconclusive only)")
        common.topology_options(cmd)
    rep = command("report", "write the report of a run again, verdicts recomputed from its evidence",
                  report)
    rep.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                     help="a folder made by `socketlab experiments` (default: the latest in ./runs)")


def experiments(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run the chosen experiments in a lab per topology they need (the lab of that name that
    runs now, if it runs that topology: used as it is and left running; else a fresh one,
    removed after), then write the report of the run."""
    from socketlab.experiments.base import run_experiment, run_meta
    from socketlab.experiments.registry import select
    from socketlab.lab.assets import TOPOLOGIES
    from socketlab.lab.existing import refuse_unusable, this_or_running
    from socketlab.observe.capture import new_run_dir

    chosen = select(args.ids)  # unknown ids are refused before anything starts
    args.fail_on = fail_on(args.fail_on)  # so are unknown verdicts
    out_dir = common.writable_folder(args.out, "--out")  # so are paths that cannot be written
    if args.junit:
        common.writable_file(args.junit, "--junit")
    # one lab per topology the chosen experiments need, one after the other
    needs = {e.topology: None for e in chosen}
    labs = {t: common.lab_for(args, err, topology=str(TOPOLOGIES / t) if t else None) for t in needs}
    asked = common.asked(args) | {"topology"}  # a running lab is used only if it runs that topology
    for lab in labs.values():
        lab.topology  # a broken topology file is refused before any lab starts  # noqa: B018
        refuse_unusable(lab, asked)  # so is a lab of that name that cannot be used
    ensure_image(next(iter(labs.values())), err)
    run_dir: Path | None = None
    results: list[Result] = []
    meta: dict[str, str] = {}
    number = 0
    for t, lab in labs.items():
        with this_or_running(lab, asked) as used:
            run_dir = run_dir or new_run_dir(out_dir, "experiments")  # once a lab is there
            meta = meta or run_meta(used)
            for exp in (e for e in chosen if e.topology == t):
                number += 1
                used.progress(f"[{number}/{len(chosen)}] {exp.id}: {exp.title}")
                results.append(run_experiment(exp, used, run_dir, used.progress))
    assert run_dir is not None  # chosen is never empty: select() refuses an empty choice
    return _show_results(args, out, err, results, run_dir, meta)


def experiment(args: argparse.Namespace, out: Console, err: Console) -> int:
    """One experiment, with its evidence and ladder printed."""
    return experiments(args, out, err)


def _show_results(args, out: Console, err: Console, results, run_dir, meta: dict[str, str]) -> int:
    from pathlib import Path

    from socketlab.observe.capture import mark_complete
    from socketlab.present import report
    from socketlab.present.terminal import evidence_text, verdict_table

    files = report.write_report(results, meta, run_dir)
    mark_complete(run_dir)  # from here on `report` may pick it
    if args.junit:
        Path(args.junit).write_text(report.to_junit(results, meta))
    if args.json:
        out.file.write(report.to_json(results, meta) + "\n")
    else:
        if len(results) == 1:
            out.print(evidence_text(results[0]), markup=False, soft_wrap=True)
        out.print(verdict_table(results))
        for name, path in files.items():
            out.print(f"{name}: {path}")
    failing = getattr(args, "fail_on", None) or {"inconclusive"}
    why = failed_because(results, failing)
    if why:
        err.print(why, soft_wrap=True)
    return common.ExitCode.FAILED if why else common.ExitCode.OK


def failed_because(results, failing: set[str]) -> str:
    """The line that says why the exit is 1 ("" when it is not): which claims got a verdict
    that --fail-on (by default inconclusive) names."""
    hit = [f"{r.experiment.id} {r.verdict.status}" for r in results if r.verdict.status in failing]
    if not hit:
        return ""
    from socketlab.experiments.base import STATUSES

    named = ", ".join(s for s in STATUSES if s in failing)
    return f"exit 1: {', '.join(hit)} (--fail-on {named})"


def fail_on(values: list[str] | None) -> set[str]:
    """--fail-on's verdicts (comma-separated, repeatable); ConfigError naming an unknown one."""
    from socketlab.errors import ConfigError
    from socketlab.experiments.base import STATUSES

    chosen = {v.strip() for value in values or [] for v in value.split(",") if v.strip()}
    unknown = sorted(chosen - set(STATUSES))
    if unknown:
        raise ConfigError(f"--fail-on: unknown verdict {', '.join(map(repr, unknown))}",
                          hint="use holds, 'holds in part', 'does not hold' or inconclusive")
    return chosen or {"inconclusive"}


def report(args: argparse.Namespace, out: Console, err: Console) -> int:
    from pathlib import Path

    from socketlab.errors import ConfigError
    from socketlab.observe.capture import is_complete
    from socketlab.present.report import load_run

    finished = [r for r in sorted(Path("runs").glob("*-experiments*"))
                if is_complete(r) and (r / "verdicts.json").is_file()]  # failed runs skipped
    run_dir = Path(args.run_dir) if args.run_dir else (finished[-1] if finished else None)
    if run_dir is None or not (run_dir / "verdicts.json").is_file():
        raise ConfigError(f"no finished run with a verdicts.json at {run_dir or './runs'}",
                          hint="run `socketlab experiments` first, or name a run folder")
    if not is_complete(run_dir):
        raise ConfigError(f"the run in {run_dir} did not finish: its files may be partial",
                          hint="run `socketlab experiments` again, or name another run folder")
    results, meta = load_run(run_dir)
    args.junit, args.json = None, False
    return _show_results(args, out, err, results, run_dir, meta)
