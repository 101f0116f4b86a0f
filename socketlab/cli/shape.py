"""`socketlab shape`: impair a host's link, add packet-exact faults, show or clear them."""

from __future__ import annotations

import argparse

from rich.console import Console

from socketlab.cli import common


def register(command) -> None:
    cmd = command("shape", "impair a host's link: delay, loss, duplicate, reorder, corrupt, rate "
                  "(netem-like)", shape)
    cmd.add_argument("host", metavar="HOST", help="a host of the lab, e.g. server or client")
    cmd.add_argument("--dir", choices=["egress", "ingress"],
                     help="egress: what leaves HOST (default); ingress: what arrives at it")
    cmd.add_argument("--backend", default="auto", choices=["auto", "netem", "engine"])
    cmd.add_argument("--spec", help="the whole spec in one, e.g. 'delay 100ms loss 5%%'")
    for flag, example in (("delay", "100ms"), ("jitter", "10ms"), ("distribution", "normal"),
                          ("loss", "5%%"), ("loss-burst", "3"), ("duplicate", "1%%"),
                          ("reorder", "25%%"), ("gap", "5"), ("corrupt", "0.1%%"),
                          ("rate", "1mbit"), ("limit", "100"), ("seed", "42")):
        cmd.add_argument(f"--{flag}", metavar=flag.upper().replace("-", "_"), help=f"e.g. {example}")
    cmd.add_argument("--for", dest="for_", metavar="TIME",
                     help="revert by itself after TIME (e.g. 30s), as Pumba does: the host's own "
                          "timer reverts it, and this command waits and says so (Ctrl-C: revert now)")
    cmd.add_argument("--fault", action="append", metavar="FAULT",
                     help="a packet-exact fault for lab-nfq (repeatable; needs the engine), e.g. "
                          "'drop tcp flags=SA nth=1', 'delay 300ms tcp min_len=1 nth=3', "
                          "'duplicate udp dport=6666 nth=2'")
    for flag, help_ in (("show", "show what is in place, with counters"),
                        ("clear", "remove the shaping (of --dir if given, else both)"),
                        ("backends", "which backend serves which parameter in HOST"),
                        ("plan", "print the commands an apply would run; change nothing")):
        cmd.add_argument(f"--{flag}", action="store_true", help=help_)
    cmd.add_argument("--json", action="store_true", help="with --show or --backends: as JSON")


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
    from socketlab.act import shaping
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
    if args.for_ is not None and not wants_spec:
        raise ConfigError("--for goes with a spec",
                          hint=f"e.g. `socketlab shape {args.host} --loss 5% --for 30s`")
    # a bad spec, fault or time stops here: nothing touched
    impairment = shaping.parse(spec, faults) if spec or faults else None
    for_s = shaping.parse_duration(args.for_) if args.for_ is not None else None
    shaping.check_request(args.host, args.dir, args.backend)
    if args.json and not (args.show or args.backends):
        raise ConfigError("--json goes with --show or --backends",
                          hint=f"e.g. `socketlab shape {args.host} --show --json`")
    lab = common.running_lab(args, err)
    shaping.check_request(args.host, args.dir, args.backend, lab)  # one of its hosts
    if args.clear:
        shaping.clear(lab, args.host, args.dir)
        out.print(f"{args.host}: shaping cleared ({args.dir or 'both directions'})")
    elif args.show and args.json:
        common.dump_json(out, {"host": args.host, **shaping.state(lab, args.host)})
    elif args.show:
        out.print(shaping.show(lab, args.host), markup=False, highlight=False, soft_wrap=True)
    elif args.backends:
        import dataclasses

        from socketlab.tools.doctor import parse_backends, render_backends

        support = parse_backends(shaping.backends(lab, args.host))
        if args.json:
            common.dump_json(out, {"host": args.host, **dataclasses.asdict(support)})
        else:
            out.print(render_backends(support))
    elif args.plan:
        out.print(shaping.plan(lab, args.host, spec, direction, args.backend, faults),
                  markup=False, soft_wrap=True)
    else:
        done = shaping.shape(lab, args.host, impairment, direction, args.backend, for_s=for_s)
        shown = "; ".join([done.spec] * bool(done.spec) + [f"fault {t}" for t in args.fault or []])
        bounded = f", for {args.for_}: it reverts by itself" if for_s is not None else ""
        out.print(f"{done.host} {done.direction}: {shown} (backend {done.backend}{bounded})", markup=False)
        if for_s is not None:
            return _wait_reverted(lab, done, args.for_, out)
    return common.ExitCode.OK


def _wait_reverted(lab, done, for_text: str, out: Console) -> int:
    """Wait until the host's timer has reverted it, and say so; Ctrl-C (or SIGTERM) reverts
    it at once and says that instead."""
    from socketlab.act import shaping
    from socketlab.errors import LabError
    from socketlab.lab import signals

    where = f"{done.host} {done.direction}"
    try:
        outcome = shaping.wait_reverted(lab, done)
    except KeyboardInterrupt:
        with signals.deferred(raise_after=False):
            shaping.clear(lab, done.host, done.direction)
        raise signals.Interrupted(f"{where}: reverted early (cleared before its {for_text} "
                                  "were up)") from None
    if outcome == "reverted":
        out.print(f"{where}: reverted after {for_text}, as asked", markup=False)
        return common.ExitCode.OK
    if outcome == "replaced":
        out.print(f"{where}: another shaping replaced it before its {for_text} were up", markup=False)
        return common.ExitCode.OK
    raise LabError(f"{where}: still in place after its {for_text}",
                   hint=f"see `socketlab shape {done.host} --show`; `--clear` removes it")
