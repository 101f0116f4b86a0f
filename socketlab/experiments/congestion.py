"""S3: TCP goodput against loss at a fixed delay, per congestion control (reno, cubic, bbr),
beside the Mathis et al. (1997) model, which describes Reno: the verdict is about reno's curve.

The shaping is the experiments' own (shaped.shaped): the delay on the server's egress for the
whole sweep, a seeded loss on the client's egress per point; each sender sets its algorithm on
its own socket (TCP_CONGESTION), and says which one the kernel ran.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from socketlab.act import instruments
from socketlab.act.programs import Options, run_programs
from socketlab.experiments.base import Evidence, Experiment, Verdict
from socketlab.experiments.shaped import SEED, field_of, reader_argv, shaped, summary_of
from socketlab.experiments.stats import MATHIS_C, mathis_bps
from socketlab.observe.analysis import handshake
from socketlab.observe.observation import Context, observe

S3_DELAY_MS = 20
S3_DELAY_SPEC = f"delay {S3_DELAY_MS}ms"  # on the server's egress: see run_s3
S3_LOSSES = (0.5, 1.0, 2.0, 5.0)   # percent
S3_SECONDS = 3.0           # each transfer sends for this long; goodput over the same window
S3_SNDBUF = 131072         # bounds what is still queued when the sender stops (drains fast)
S3_ALGORITHMS = ("reno", "cubic", "bbr")  # per connection (TCP_CONGESTION); reno is the model's
S3_MODEL_CC = "reno"


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
            "capture_dropped": obs.capture.dropped}, str(obs.capture["client"].pcap)


def model_points(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each point with the model's rate and measured/model (pure); None where it cannot be had."""
    out = []
    for p in points:
        ok = p["handshake_mss"] and p["rtt_ms"] > 0
        model = mathis_bps(p["handshake_mss"], p["rtt_ms"] / 1000, p["loss_pct"] / 100) if ok else None
        ratio = round(p["goodput_bps"] / model, 3) if model else None
        out.append({**p, "model_bps": round(model) if model else None, "ratio": ratio})
    return out


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The least-squares slope of log(y) on log(x) (pure): -0.5 is the model's 1/√p."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pairs) < 2:
        return None
    mx = sum(x for x, _ in pairs) / len(pairs)
    my = sum(y for _, y in pairs) / len(pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    return round(sum((x - mx) * (y - my) for x, y in pairs) / sxx, 3) if sxx else None


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
    with shaped(ctx, "server", S3_DELAY_SPEC) as delay:
        for cc in S3_ALGORITHMS:
            if cc not in available:
                curves[cc] = {"points": [], "slope": None, "missing": "not in this kernel"}
                continue
            raw = []
            for loss in S3_LOSSES:
                ctx.progress(f"{cc}: goodput at {loss:g}% loss, {S3_DELAY_MS} ms delay")
                point, pcap = goodput_point(ctx, loss, cc)
                raw.append(point)
                artifacts[f"{cc}, loss {loss:g}% capture (client, pcap)"] = pcap
            points = model_points(raw)
            curves[cc] = {"points": points, "missing": "", "slope": loglog_slope(
                [p["loss_pct"] for p in points], [p["goodput_bps"] for p in points])}
    reno = curves[S3_MODEL_CC]
    facts = {"delay_ms": S3_DELAY_MS, "delay_spec": S3_DELAY_SPEC, "delay_backend": delay["backend"],
             "available": available, "default_cc": default, "model_cc": S3_MODEL_CC,
             "left_after_clear": delay["left"] + [x for c in curves.values() for p in c["points"]
                                                  for x in p["left"]],
             "seconds": S3_SECONDS, "c": round(MATHIS_C, 4), "curves": curves,
             "points": reno["points"], "slope": reno["slope"], "plot": s3_plot(curves)}
    lines = (f"server egress `{S3_DELAY_SPEC}` (backend {delay['backend']}) for the whole sweep; "
             f"client egress `loss p% seed {SEED}` per point; the kernel's algorithms: "
             f"{' '.join(available) or '-'} (default {default}); left after the clears: "
             f"{facts['left_after_clear'] or 'nothing'}",)
    for cc, curve in curves.items():
        if curve["missing"]:
            lines += (f"{cc}: {curve['missing']}",)
            continue
        lines += tuple(
            f"{cc} (the socket ran {p['cc']}), loss {p['loss_pct']:g}% ({p['spec']}, backend "
            f"{p['backend']}): goodput {p['goodput_bps'] / 1e6:.2f} Mbit/s at the receiver "
            f"({S3_SECONDS:g} s window), RTT {p['rtt_ms']:.1f} ms (median of {p['rtt_samples']} TCP_INFO "
            f"samples), MSS {p['handshake_mss']} (handshake; {p['snd_mss']} per segment), model "
            f"{(p['model_bps'] or 0) / 1e6:.2f} Mbit/s, measured/model {p['ratio']}; sender "
            f"retransmitted {p['retrans']}, lab-nfq dropped {p['shaper_lost']} of "
            f"{p['shaper_packets']}" for p in curve["points"])
        lines += (f"{cc}: log-log slope of goodput against loss {curve['slope']} (the model: -0.5)",)
    return Evidence("S3", facts, lines, {}, artifacts)


def s3_plot(curves: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One series per algorithm measured, and the model's (from reno's RTT and MSS) (pure)."""
    measured = [cc for cc, c in curves.items() if c["points"]]
    model_from = curves.get(S3_MODEL_CC, {}).get("points") or []
    rows = []
    for i, loss in enumerate(S3_LOSSES):
        row: dict[str, Any] = {"loss %": loss}
        for cc in measured:
            row[f"{cc} Mbit/s"] = round(curves[cc]["points"][i]["goodput_bps"] / 1e6, 3)
        model = model_from[i]["model_bps"] if i < len(model_from) else None
        row["model Mbit/s"] = round(model / 1e6, 3) if model else None
        rows.append(row)
    return {"x": "loss %", "series": [f"{cc} Mbit/s" for cc in measured] + ["model Mbit/s"],
            "title": f"TCP goodput by congestion control, {S3_DELAY_MS} ms delay (ACK path) and loss "
                     f"on the data, against Mathis et al. (C={MATHIS_C:.2f}, Reno's model)",
            "points": rows}


def judge_s3(ev: Evidence) -> Verdict:
    """About reno's curve (the algorithm the model describes); the others are said beside it."""
    f = ev.facts
    pts = [p for p in f["points"] if p["ratio"] is not None and p["goodput_bps"] > 0]
    if len(pts) < 3 or f["slope"] is None or any(p["capture_dropped"] for p in f["points"]):
        return Verdict("S3", "inconclusive", f"only {len(pts)} of reno's points have both a goodput "
                       "and a model rate (or a capture dropped packets)" + beside_model(f))
    ratios = [p["ratio"] for p in pts]
    shape_ok = -0.75 <= f["slope"] <= -0.25
    near = all(0.5 <= r <= 2 for r in ratios)
    text = (f"with {f['delay_ms']} ms of delay (RTT {pts[0]['rtt_ms']:.1f} ms at the first "
            f"point, {pts[-1]['rtt_ms']:.1f} ms at the last) goodput went from "
            f"{pts[0]['goodput_bps'] / 1e6:.2f} Mbit/s at "
            f"{pts[0]['loss_pct']:g}% loss to {pts[-1]['goodput_bps'] / 1e6:.2f} Mbit/s at "
            f"{pts[-1]['loss_pct']:g}%, a log-log slope of {f['slope']} against the model's -0.5, "
            f"at {min(ratios):.2f}-{max(ratios):.2f} times the Mathis rate "
            f"(C={f['c']:.2f}, MSS {pts[0]['handshake_mss']}; the sender ran "
            f"{pts[0].get('cc') or 'an unknown congestion control'}, the model is Reno's)"
            + beside_model(f))
    if shape_ok and near:
        return Verdict("S3", "holds", text)
    if f["slope"] >= -0.1:
        return Verdict("S3", "does not hold", f"{text}: goodput did not fall with the loss")
    return Verdict("S3", "holds in part", text + (": the shape is the model's, the level is not"
                                                  if shape_ok else ": it falls, but not like 1/√p"))


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
        said.append(f"{cc}: slope {curve['slope']}, {min(ratios):.2f}-{max(ratios):.2f} times the rate")
    return f"; beside it (the model does not describe them) {'; '.join(said)}" if said else ""


S3 = Experiment("S3", "TCP goodput against loss, beside the Mathis model",
                "TCP goodput against loss at a fixed delay, with reno, cubic and bbr, plotted beside "
                "the Mathis et al. (1997) model rate ≈ (MSS/RTT)·(C/√p), which describes Reno.",
                run_s3, judge_s3, slow=True)  # 12 transfers: 128 of the 242 s of all 14

EXPERIMENTS = (S3,)
