"""S3: TCP goodput against loss at a fixed delay, per congestion control (reno, cubic, bbr),
beside the Mathis et al. (1997) model, which describes Reno: the verdict is about reno's curve.

The shaping is the experiments' own (shaped.shaped): the delay on the server's egress for the
whole sweep, a seeded loss on the client's egress per point; each sender sets its algorithm on
its own socket (TCP_CONGESTION), and says which one the kernel ran.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from socketlab.act import instruments
from socketlab.act.programs import Options, run_programs
from socketlab.experiments.base import Evidence, Experiment, Verdict
from socketlab.experiments.shaped import SEED, field_of, reader_argv, shaped, summary_of
from socketlab.experiments.stats import MATHIS_C, Fit, loglog_fit, mathis_bps, wilson
from socketlab.observe.analysis import handshake
from socketlab.observe.observation import Context, observe

S3_DELAY_MS = 20
S3_DELAY_SPEC = f"delay {S3_DELAY_MS}ms"  # on the server's egress: see run_s3
S3_LOSSES = (0.5, 1.0, 2.0, 5.0)   # percent
S3_SECONDS = 3.0           # each transfer sends for this long; goodput over the same window
S3_SNDBUF = 131072         # bounds what is still queued when the sender stops (drains fast)
S3_ALGORITHMS = ("reno", "cubic", "bbr")  # per connection (TCP_CONGESTION); reno is the model's
S3_MODEL_CC = "reno"
S3_ROUNDS = 3              # reno's sweep, at most this many times, until its slope's interval decides
# The laws a goodput-against-loss curve is told apart from: what a 95% interval on the log-log
# slope must choose between (flat: goodput held by something else than loss).
S3_MODELS = {"flat (0)": 0.0, "1/√p (-0.5, the model)": -0.5, "1/p (-1)": -1.0}


# ---------------------------------------------------------------- S3
def s3_spec(loss_pct: float) -> str:
    """The data's loss, on the client's egress (the delay is on the server's: see run_s3)."""
    return f"loss {loss_pct:g}% seed {SEED}"


def goodput_point(ctx: Context, loss_pct: float, cc: str) -> tuple[dict[str, Any], str]:
    """One bounded transfer with congestion control `cc` through `loss p%` (and the server's
    delay): goodput at the receiver, the sender's RTT, MSS and algorithm (TCP_INFO,
    TCP_CONGESTION), the handshake's MSS (client's capture), lab-nfq's counts."""
    cfg = ctx.lab.config
    sender = instruments.argv("tcp_send", cfg.server_ip, cfg.port, seconds=S3_SECONDS, sndbuf=S3_SNDBUF,
                              cc=cc)
    with shaped(ctx, "client", s3_spec(loss_pct)) as rec:
        obs = observe(ctx, lambda: run_programs(ctx.lab, Options(proto="tcp"),
                                                reader_argv(cfg.port, S3_SECONDS), sender),
                      name=f"s3-{cc}-loss-{loss_pct:g}", hosts=("client",), snaplen=128)
    run = obs.result
    hs = handshake(obs.packets["client"], (cfg.server_ip, cfg.port))
    mss = [m for m in (hs.syn.mss, hs.synack.mss if hs.synack else None) if m] if hs else []
    nfq = summary_of(rec)
    window_bytes = field_of(run.server_events, "summary", "window_bytes", 0)
    return {"loss_pct": loss_pct, "cc": field_of(run.client_events, "summary", "cc", None),
            "spec": s3_spec(loss_pct), "backend": rec["backend"],
            "left": rec["left"], "handshake_mss": min(mss) if mss else None,
            "snd_mss": field_of(run.client_events, "summary", "mss"),
            "rtt_ms": field_of(run.client_events, "summary", "rtt_median_us", 0) / 1000,
            "rtt_samples": field_of(run.client_events, "summary", "rtt_samples", 0),
            "retrans": field_of(run.client_events, "summary", "retrans", 0),
            "sent": field_of(run.client_events, "summary", "sent", 0),
            "received": field_of(run.server_events, "summary", "received", 0),
            "goodput_bps": round(window_bytes * 8 / S3_SECONDS),
            "shaper_packets": nfq["packets"], "shaper_lost": nfq["loss"],
            "realized_pct": realized_pct({"shaper_packets": nfq["packets"], "shaper_lost": nfq["loss"]}),
            "capture_dropped": obs.capture.dropped}, str(obs.capture["client"].pcap)


def realized_pct(point: Mapping[str, Any]) -> float | None:
    """The loss the shaper really dealt at a point, in percent (lab-nfq's own counts), or None
    where it counted nothing (netem keeps no such count)."""
    n = point.get("shaper_packets") or 0
    return round(100 * (point.get("shaper_lost") or 0) / n, 3) if n else None


def loss_of(point: Mapping[str, Any]) -> float:
    """The loss a point is judged at: the realized one where the shaper counted, else the
    configured one (said so in the evidence)."""
    realized = point.get("realized_pct")
    return point["loss_pct"] if realized is None else realized


def model_points(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each point with the model's rate at its realized loss and measured/model (pure); None
    where it cannot be had."""
    out = []
    for p in points:
        ok = p["handshake_mss"] and p["rtt_ms"] > 0
        model = mathis_bps(p["handshake_mss"], p["rtt_ms"] / 1000, loss_of(p) / 100) if ok else None
        ratio = round(p["goodput_bps"] / model, 3) if model else None
        out.append({**p, "model_bps": round(model) if model else None, "ratio": ratio})
    return out


def fit_of(points: Sequence[Mapping[str, Any]]) -> Fit | None:
    """The log-log slope of goodput against the (realized) loss, with its 95% interval (pure)."""
    return loglog_fit([loss_of(p) for p in points], [p["goodput_bps"] for p in points])


def models_inside(fit: Fit) -> list[str]:
    """The candidate laws whose slope the interval holds (pure): more than one, and the points
    cannot tell them apart."""
    return [name for name, slope in S3_MODELS.items() if fit.contains(slope)]


def decided(fit: Fit | None) -> bool:
    """Whether another sweep could still change the answer: not once the interval holds one
    law or none."""
    return fit is not None and len(models_inside(fit)) <= 1


def sweep(ctx: Context, cc: str, round_: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One goodput point per configured loss with congestion control `cc`."""
    raw, artifacts = [], {}
    for loss in S3_LOSSES:
        ctx.progress(f"{cc}: goodput at {loss:g}% loss, {S3_DELAY_MS} ms delay"
                     + (f" (sweep {round_})" if round_ > 1 else ""))
        point, pcap = goodput_point(ctx, loss, cc)
        raw.append({**point, "round": round_})
        artifacts[f"{cc}, loss {loss:g}%{f' sweep {round_}' if round_ > 1 else ''} capture "
                  "(client, pcap)"] = pcap
    return model_points(raw), artifacts


def load_now(ctx: Context) -> str:
    """The engine machine's load averages (its kernel's /proc/loadavg, read in the client)."""
    return " ".join(ctx.lab.exec("client", ["cat", "/proc/loadavg"], timeout=10).stdout.split()[:3])


def run_s3(ctx: Context) -> Evidence:
    """The delay sits on the server's egress (the ACKs' way), the loss on the client's (the
    data's): lab-nfq holds a delayed packet in the kernel's queue, and a sender's packets held
    there still count against its TCP Small Queues budget (about 1 ms of its pacing rate), so
    data delayed in the sender's own host throttles the sender to a few segments per RTT.
    netem orphans the packets it delays for that reason; NFQUEUE cannot. The RTT is the same.
    The sweep runs once per congestion control the kernel has (reno, cubic, bbr: each one set
    on the sender's socket); the model is Reno's, so the verdict is about reno's curve."""
    available = ctx.lab.exec("client", ["cat", "/proc/sys/net/ipv4/tcp_available_congestion_control"],
                             timeout=10).stdout.split()
    default = ctx.lab.exec("client", ["cat", "/proc/sys/net/ipv4/tcp_congestion_control"],
                           timeout=10).stdout.strip() or None
    curves: dict[str, dict[str, Any]] = {}
    artifacts: dict[str, str] = {}
    load_before = load_now(ctx)
    with shaped(ctx, "server", S3_DELAY_SPEC) as delay:
        for cc in S3_ALGORITHMS:
            if cc not in available:
                curves[cc] = {"points": [], "slope": None, "fit": None, "rounds": 0,
                              "missing": "not in this kernel"}
                continue
            points, files = sweep(ctx, cc, 1)
            artifacts.update(files)
            rounds = 1
            # reno's curve is the one judged: sweep it again, pooling the points, until the
            # slope's interval tells the candidate laws apart (or the budget is spent)
            while cc == S3_MODEL_CC and not decided(fit_of(points)) and rounds < S3_ROUNDS:
                rounds += 1
                more, files = sweep(ctx, cc, rounds)
                points += more
                artifacts.update(files)
            fit = fit_of(points)
            curves[cc] = {"points": points, "missing": "", "rounds": rounds,
                          "fit": asdict(fit) if fit else None, "slope": fit.slope if fit else None}
    reno = curves[S3_MODEL_CC]
    facts = {"delay_ms": S3_DELAY_MS, "delay_spec": S3_DELAY_SPEC, "delay_backend": delay["backend"],
             "available": available, "default_cc": default, "model_cc": S3_MODEL_CC,
             "left_after_clear": delay["left"] + [x for c in curves.values() for p in c["points"]
                                                  for x in p["left"]],
             "seconds": S3_SECONDS, "c": round(MATHIS_C, 4), "curves": curves,
             "points": reno["points"], "slope": reno["slope"], "fit": reno.get("fit"),
             "rounds": reno.get("rounds", 0), "load": {"before": load_before, "after": load_now(ctx)},
             "plot": s3_plot(curves)}
    lines: tuple[str, ...] = (
             f"server egress `{S3_DELAY_SPEC}` (backend {delay['backend']}) for the whole sweep; "
             f"client egress `loss p% seed {SEED}` per point; the kernel's algorithms: "
             f"{' '.join(available) or '-'} (default {default}); left after the clears: "
             f"{facts['left_after_clear'] or 'nothing'}",)
    for cc, curve in curves.items():
        if curve["missing"]:
            lines += (f"{cc}: {curve['missing']}",)
            continue
        lines += tuple(
            f"{cc} (the socket ran {p['cc']}), loss {p['loss_pct']:g}% ({p['spec']}, backend "
            f"{p['backend']}{realized_words(p)}): goodput {p['goodput_bps'] / 1e6:.2f} Mbit/s at the "
            "receiver "
            f"({S3_SECONDS:g} s window), RTT {p['rtt_ms']:.1f} ms (median of {p['rtt_samples']} TCP_INFO "
            f"samples), MSS {p['handshake_mss']} (handshake; {p['snd_mss']} per segment), model "
            f"{(p['model_bps'] or 0) / 1e6:.2f} Mbit/s, measured/model {p['ratio']}; sender "
            f"retransmitted {p['retrans']}, lab-nfq dropped {p['shaper_lost']} of "
            f"{p['shaper_packets']}" for p in curve["points"])
        lines += (f"{cc}: {slope_words(curve)} (the model: -0.5)",)
    lines += (f"the machine's load averages (1, 5, 15 min): {facts['load']['before']} before, "
              f"{facts['load']['after']} after",)
    return Evidence("S3", facts, lines, {}, artifacts)


def realized_words(p: Mapping[str, Any]) -> str:
    """How much the shaper really dropped at a point, with its interval (pure)."""
    if p.get("realized_pct") is None:
        return "; the shaper counted nothing: judged at the configured loss"
    low, high = wilson(p["shaper_lost"], p["shaper_packets"])
    return (f"; realized {p['realized_pct']:.2f}% ({p['shaper_lost']} of {p['shaper_packets']}, "
            f"95% interval {100 * low:.2f}-{100 * high:.2f}%)")


def slope_words(curve: Mapping[str, Any]) -> str:
    """A curve's log-log slope against the realized loss, with its interval (pure)."""
    fit = curve.get("fit")
    if not fit:
        return "no slope: fewer than three points with a goodput"
    return (f"log-log slope of goodput against the realized loss {fit['slope']} (95% interval "
            f"{fit['low']} to {fit['high']}, {fit['n']} points over {curve.get('rounds', 1)} sweep(s))")


def s3_plot(curves: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One series per algorithm measured (the median goodput of its sweeps at each configured
    loss), and the model's (from reno's RTT and MSS at the loss the shaper realized) (pure)."""
    measured = [cc for cc, c in curves.items() if c["points"]]
    reno = curves.get(S3_MODEL_CC, {}).get("points") or []
    rows = []
    for loss in S3_LOSSES:
        row: dict[str, Any] = {"loss %": loss}
        for cc in measured:
            at = [p["goodput_bps"] for p in curves[cc]["points"] if p["loss_pct"] == loss]
            row[f"{cc} Mbit/s"] = round(statistics.median(at) / 1e6, 3) if at else None
        models = [p["model_bps"] for p in reno if p["loss_pct"] == loss and p["model_bps"]]
        row["model Mbit/s"] = round(statistics.median(models) / 1e6, 3) if models else None
        rows.append(row)
    return {"x": "loss %", "series": [f"{cc} Mbit/s" for cc in measured] + ["model Mbit/s"],
            "title": f"TCP goodput by congestion control, {S3_DELAY_MS} ms delay (ACK path) and loss "
                     f"on the data (x: the loss configured), against Mathis et al. (C={MATHIS_C:.2f}, "
                     "Reno's model, at the loss the shaper realized)",
            "points": rows}


def judge_s3(ev: Evidence) -> Verdict:
    """About reno's curve (the algorithm the model describes); the others are said beside it.
    The slope is fitted against the loss the shaper realized, and its 95% interval decides:
    holding more than one candidate law (flat, 1/√p, 1/p) is inconclusive."""
    f = ev.facts
    pts = [p for p in f["points"] if p["ratio"] is not None and p["goodput_bps"] > 0]
    fit = fit_of(pts)
    if fit is None or any(p["capture_dropped"] for p in f["points"]):
        return Verdict("S3", "inconclusive", f"only {len(pts)} of reno's points have both a goodput "
                       "and a model rate (or a capture dropped packets)" + beside_model(f))
    ratios = [p["ratio"] for p in pts]
    realized = [p["realized_pct"] for p in pts if p.get("realized_pct") is not None]
    inside = models_inside(fit)
    first, last = min(pts, key=loss_of), max(pts, key=loss_of)
    text = (f"with {f['delay_ms']} ms of delay (RTT {first['rtt_ms']:.1f}-{last['rtt_ms']:.1f} ms) "
            f"goodput went from {first['goodput_bps'] / 1e6:.2f} Mbit/s at {loss_of(first):g}% loss "
            f"to {last['goodput_bps'] / 1e6:.2f} Mbit/s at {loss_of(last):g}% "
            + (f"(the loss the shaper realized: {min(realized):g}-{max(realized):g}% where "
               f"{min(S3_LOSSES):g}-{max(S3_LOSSES):g}% was configured)" if realized
               else "(the configured loss: the shaper counted nothing)")
            + f", a log-log slope of {fit.slope} (95% interval {fit.low} to {fit.high}, {fit.n} "
            f"points over {f.get('rounds') or 1} sweep(s)) against the model's -0.5, at "
            f"{min(ratios):.2f}-{max(ratios):.2f} times the Mathis rate (C={f['c']:.2f}, MSS "
            f"{first['handshake_mss']}; the sender ran "
            f"{first.get('cc') or 'an unknown congestion control'}, the model is Reno's"
            + (f"; load {f['load']['before']} before, {f['load']['after']} after" if f.get("load") else "")
            + ")" + beside_model(f))
    if len(inside) > 1:
        return Verdict("S3", "inconclusive", f"{text}: the interval holds {' and '.join(inside)}, "
                       "so these points cannot tell them apart")
    if fit.contains(-0.5):
        near = all(0.5 <= r <= 2 for r in ratios)
        return Verdict("S3", "holds" if near else "holds in part",
                       text if near else f"{text}: the shape is the model's, the level is not")
    if fit.high >= -0.1:
        return Verdict("S3", "does not hold", f"{text}: goodput did not fall with the loss")
    return Verdict("S3", "holds in part", f"{text}: it falls, but not like 1/√p")


def beside_model(f: Mapping[str, Any]) -> str:
    """The other algorithms' curves, in words (pure): the verdict is not about them."""
    said = []
    for cc, curve in (f.get("curves") or {}).items():
        if cc == f.get("model_cc"):
            continue
        pts = [p for p in curve["points"] if p["ratio"] is not None]
        if curve.get("missing") or not pts:
            said.append(f"{cc}: {curve.get('missing') or 'no point measured'}")
            continue
        ratios = [p["ratio"] for p in pts]
        fit = curve.get("fit")
        slope = (f"slope {fit['slope']} ({fit['low']} to {fit['high']})" if fit
                 else f"slope {curve.get('slope')}")
        said.append(f"{cc}: {slope}, {min(ratios):.2f}-{max(ratios):.2f} times the rate")
    return f"; beside it (the model does not describe them) {'; '.join(said)}" if said else ""


S3 = Experiment("S3", "TCP goodput against loss, beside the Mathis model",
                "TCP goodput against loss at a fixed delay, with reno, cubic and bbr, plotted beside "
                "the Mathis et al. (1997) model rate ≈ (MSS/RTT)·(C/√p), which describes Reno.",
                run_s3, judge_s3, slow=True)  # 12 transfers: 128 of the 242 s of all 14

EXPERIMENTS = (S3,)
