"""`bench shaping`: each shaping backend's figures, configured against observed.

Part of the benchmarks (socketlab.tools.bench): the same Figure and table, its own lab.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from rich.table import Table
from rich.text import Text

from socketlab.experiments.stats import p99, wilson
from socketlab.lab.assets import IMAGE_CONTEXT
from socketlab.lab.config import LabConfig
from socketlab.lab.docker_api import connect
from socketlab.lab.lab import Lab
from socketlab.lab.process import PlacedHosts
from socketlab.tools import shaping_probes as probes
from socketlab.tools.bench import Figure, bench_config

# -- bench shaping: each backend's figures, configured against observed ------------------------
LOSS_DATAGRAMS, LOSS_PPS = 10_000, 10_000
FLOW_DATAGRAMS, FLOW_PPS = 6_000, 5_000
RATE_BIT, RATE_SECONDS = 10_000_000, 3.0
BURST_DATAGRAMS, ENGINE_TARGET_PPS = 40_000, 20_000
FRAME = 1514                            # a full Ethernet frame: what tbf counts
TCP_PAYLOAD, UDP_PAYLOAD = 1448, 1472   # per full frame (TCP with timestamps; UDP unfragmented)
BACKENDS = ("engine", "netem")


def shaping(config: LabConfig, *, progress: Callable[[str], None] = lambda _m: None,
            backend: str | None = None) -> list[Figure]:
    """Configured against observed, for each shaping backend (egress of the client, in a lab
    of the bench's own; netem in a user-mode kernel where the lab's kernel has none), the same
    specs and the same probes for each; every shaping is cleared after its figure."""
    from socketlab.act import shaping as shaping_api
    from socketlab.lab.images import ensure_lab_image
    from socketlab.tools.doctor import parse_backends

    cfg = bench_config(config, "shaping")
    client = connect()
    ensure_lab_image(client, cfg.image, IMAGE_CONTEXT, progress)
    figures = [load_figure("at the start")]
    with Lab(cfg, client=client, progress=progress) as lab:
        support = parse_backends(shaping_api.backends(lab, "client"))
        progress(f"unshaped: {probes.PINGS} UDP pings, the baseline")
        base = probes.ping(lab)
        for name in [backend] if backend else BACKENDS:
            why = support.why_not(name, "delay")
            if not why:
                figures += [where_figure(name, "the lab's hosts (this kernel)"),
                            rtt_figure(f"{name}: unshaped: RTT median", base),
                            *backend_figures(lab, name, base, support, progress)]
            elif name == "netem":
                figures += _netem_in_uml(why, progress)
            else:
                progress(f"{name}: not on this kernel ({why})")
                figures.append(where_figure(name, f"not on this kernel ({why}): no figures"))
    return [*figures, load_figure("at the end")]


def _netem_in_uml(why: str, progress: Callable[[str], None]) -> list[Figure]:
    """netem where this kernel has none: in a user-mode Linux (socketlab.tools.uml), the
    image's own lab-shape on two hosts joined by a veth, measured by the same probes."""
    from socketlab.act import shaping as shaping_api
    from socketlab.tools.doctor import parse_backends
    from socketlab.tools.uml import UmlLab, UmlUnavailable

    try:
        with UmlLab(progress=progress) as uml:
            support = parse_backends(shaping_api.backends(uml, "client"))
            progress(f"netem, user-mode kernel: {probes.PINGS} UDP pings, its baseline")
            base = probes.ping(uml)
            where = f"user-mode Linux {uml.booted['uname']}, two namespaces (this kernel: {why})"
            return [where_figure("netem", where), rtt_figure("netem: unshaped: RTT median", base),
                    *backend_figures(uml, "netem", base, support, progress)]
    except UmlUnavailable as e:
        return [where_figure("netem", f"not on this kernel ({why}), and no user-mode kernel: {e}")]


def backend_figures(lab: PlacedHosts, b: str, base: list[float], support,
                    progress: Callable[[str], None]) -> list[Figure]:
    """Every figure of backend `b` in `lab` (base: its unshaped RTTs); `support` says which
    parameters it serves there (a parameter it does not serve gets a row that says why)."""
    def under(spec: str, measure: Callable[[], object], faults: list | None = None):
        progress(f"{b}: {spec or 'lab-nfq with no impairment'}")
        return probes.under(lab, b, spec, measure, faults)

    def ping():
        return probes.ping(lab)

    def flow(count: int = LOSS_DATAGRAMS, pps: float = LOSS_PPS, early_ms: float = 0.0, size: int = 64):
        return probes.flow(lab, count, pps, early_ms, size)

    figures = delay_figures(b, base, under("delay 100ms", ping), 100.0)
    figures.append(jitter_figure(f"{b}: delay 100ms 10ms: sd of the added delay (uniform)", base,
                                 under("delay 100ms 10ms", ping), 10 / 3 ** 0.5, 3 ** 0.5))
    figures.append(jitter_figure(f"{b}: delay 100ms 10ms distribution normal: sd of the added delay",
                                 base, under("delay 100ms 10ms distribution normal", ping), 10.0, 1.349))
    for spec in ("loss 10%", "loss 10% seed 7"):
        no = support.why_not(b, "seed") if "seed" in spec else ""
        if no:
            figures.append(Figure(f"{b}: {spec}: observed loss", 0.0, "", note=f"not served: {no}"))
            continue
        sent, sink = under(spec, flow)
        figures.append(proportion_figure(f"{b}: {spec}: observed loss", sent["sent"] - sink["distinct"],
                                         sent["sent"], 10.0))
    sent, sink = under("loss 10% burst 4", flow)
    figures += burst_figures(b, sent, sink, 10.0, 4.0)
    sent, sink = under("corrupt 5%", flow)
    figures.append(proportion_figure(f"{b}: corrupt 5%: datagrams the receiver dropped",
                                     sent["sent"] - sink["distinct"], sent["sent"], 5.0))
    _sent, sink = under("duplicate 5%", lambda: flow(FLOW_DATAGRAMS, FLOW_PPS))
    figures.append(proportion_figure(f"{b}: duplicate 5%: observed duplicates", sink["dup"],
                                     sink["distinct"], 5.0))
    sent, sink = under("delay 50ms reorder 25%", lambda: flow(FLOW_DATAGRAMS, FLOW_PPS, 5.0))
    figures += reorder_figures(b, sent, sink)
    figures += _rate_figures(lab, b, under)
    if b == "engine":
        figures += _engine_cost(lab, base, under)
    return figures


def _rate_figures(lab: PlacedHosts, b: str, under: Callable) -> list[Figure]:
    tcp = under("rate 10mbit", lambda: probes.tcp_flow(lab, int(RATE_BIT / 8 * RATE_SECONDS)))
    pps = 1.1 * RATE_BIT / 8 / FRAME  # 10% over the rate: the queue never runs dry
    _sent, udp = under("rate 10mbit", lambda: probes.flow(lab, int(pps * RATE_SECONDS), pps,
                                                          size=UDP_PAYLOAD))
    return [goodput_figure(f"{b}: rate 10mbit: TCP goodput", tcp, RATE_BIT, TCP_PAYLOAD),
            goodput_figure(f"{b}: rate 10mbit: UDP goodput", udp, RATE_BIT, UDP_PAYLOAD)]


def _engine_cost(lab: PlacedHosts, base: list[float], under: Callable) -> list[Figure]:
    """lab-nfq holding nothing back (one fault that never fires): its rate, its latency."""
    sent, sink = under("", lambda: probes.flow(lab, BURST_DATAGRAMS, 0), probes.NEVER_FIRES)
    idle = under("", lambda: probes.ping(lab), probes.NEVER_FIRES)
    return engine_figures(sent, sink, base, idle)


# -- the figures, from measurements (pure) ------------------------------------------------------
def rtt_figure(name: str, rtts: list[float]) -> Figure:
    return Figure(name, statistics.median(rtts), "ms",
                  note=f"p99 {p99(rtts):.2f} ms, {len(rtts)} pings")


def delay_figures(b: str, base: list[float], shaped: list[float], delay_ms: float) -> list[Figure]:
    """Added delay = shaped RTT - unshaped RTT; target: within 1 ms or 2%, whichever is larger."""
    tolerance = max(1.0, 0.02 * delay_ms)
    added = statistics.median(shaped) - statistics.median(base)
    rtts = f"RTT median {statistics.median(shaped):.2f} ms, p99 {p99(shaped):.2f} ms, {len(shaped)} pings"
    return [Figure(f"{b}: delay {delay_ms:g}ms: added delay (median)", added, "ms",
                   f"{delay_ms:g} ± {tolerance:g}", abs(added - delay_ms) <= tolerance, note=rtts),
            Figure(f"{b}: delay {delay_ms:g}ms: added delay (p99)",
                   p99(shaped) - statistics.median(base), "ms",
                   note="the shaped RTT's p99 less the unshaped median")]


def jitter_figure(name: str, base: list[float], shaped: list[float], expected_sd: float,
                  iqr_per_sd: float) -> Figure:
    """The added delay's standard deviation (the baseline's own variance taken out); target
    within 10% of what the distribution gives (a uniform ±J has J/√3, a normal J). The note
    adds the estimate from the interquartile range, which the host's stalls barely move."""
    sd = max(0.0, statistics.variance(shaped) - statistics.variance(base)) ** 0.5
    quartiles = statistics.quantiles(shaped, n=4)
    robust = (quartiles[2] - quartiles[0]) / iqr_per_sd
    added = statistics.median(shaped) - statistics.median(base)
    return Figure(name, sd, "ms", f"{expected_sd:.2f} ± {0.1 * expected_sd:.2f}",
                  abs(sd - expected_sd) <= 0.1 * expected_sd,
                  note=f"from the IQR {robust:.2f} ms; median added {added:.2f} ms, {len(shaped)} pings")


def proportion_figure(name: str, k: int, n: int, target_pct: float) -> Figure:
    """An observed rate with its 95% Wilson interval; met when the interval holds the target."""
    low, high = wilson(k, n)
    return Figure(name, 100 * k / n if n else 0.0, "%", f"95% interval holds {target_pct:g}",
                  low * 100 <= target_pct <= high * 100,
                  note=f"{k:,} of {n:,}; 95% interval {100 * low:.2f}-{100 * high:.2f} %")


def reorder_figures(b: str, sent: dict, sink: dict) -> list[Figure]:
    """netem's reorder: 25% of the packets skip the 50 ms delay. With a fixed delay and
    datagrams well under 50 ms apart, exactly those overtake an earlier-numbered one, whatever
    the host's stalls do to timing (behind 10 ms, a sender stalled longer than the delay left
    some skippers nothing to overtake: 23.7 % of 25 % in one run on a busy user-mode kernel)."""
    n = sink["distinct"]
    early = f"{100 * sink['early'] / n:.2f} %" if n else "-"
    pps = sent["sent"] / sent["seconds"] if sent.get("seconds") else 0.0
    return [proportion_figure(f"{b}: delay 50ms reorder 25%: sent without the delay",
                              sink["overtook"], n, 25.0),
            Figure(f"{b}: delay 50ms reorder 25%: arrived out of order",
                   100 * sink["ooo"] / n if n else 0.0, "%",
                   note=f"after a later-numbered one; {pps:,.0f} datagrams/s sent; one-way delay "
                        f"< 5 ms (stalls push some over): {early}")]


def burst_figures(b: str, sent: dict, sink: dict, loss_pct: float, burst: float) -> list[Figure]:
    """The Gilbert model's bursts: the mean length of the runs of lost datagrams, with a 95%
    interval from the geometric spread of run lengths (sd = sqrt(B(B-1))). The loss rate is
    shown without a target: with bursts, losses are not independent, so Wilson's interval
    would be too narrow."""
    missing, runs = sink["missing"], sink["lost_runs"]
    mean = missing / runs if runs else 0.0
    half = 1.96 * (mean * max(mean - 1, 0.0)) ** 0.5 / runs ** 0.5 if runs else 0.0
    spec = f"loss {loss_pct:g}% burst {burst:g}"
    return [Figure(f"{b}: {spec}: mean loss burst", mean, "datagrams", f"95% interval holds {burst:g}",
                   mean - half <= burst <= mean + half if runs else False,
                   note=f"{missing:,} lost in {runs:,} runs; 95% interval "
                        f"{mean - half:.2f}-{mean + half:.2f}"),
            Figure(f"{b}: {spec}: observed loss", 100 * missing / sent["sent"] if sent["sent"] else 0.0, "%",
                   note=f"{missing:,} of {sent['sent']:,}; configured {loss_pct:g}% in bursts")]


def where_figure(b: str, where: str) -> Figure:
    """Where backend `b` was measured (a row without a value)."""
    return Figure(f"{b}: where", 0.0, "", note=where)


def goodput_figure(name: str, sink: dict, rate_bit: int, payload: int) -> Figure:
    """What the receiver got per second (after the first 5%), against the configured rate;
    tbf counts whole frames, so the payload's share of a frame is the most it can be."""
    seconds = sink["steady_s"]
    mbit = sink["steady_bytes"] * 8 / seconds / 1e6 if seconds > 0 else 0.0
    want = rate_bit / 1e6
    wire = mbit * FRAME / payload
    return Figure(name, mbit, "Mbit/s", f"{0.95 * want:g}-{1.05 * want:g}",
                  abs(mbit - want) <= 0.05 * want,
                  note=f"{wire:.2f} Mbit/s of frames: {payload} payload bytes per {FRAME}-byte "
                       f"frame, so at most {want * payload / FRAME:.2f} Mbit/s of payload")


def engine_figures(sent: dict, sink: dict, base: list[float], idle: list[float]) -> list[Figure]:
    """lab-nfq passing everything: the sender's rate, the rate through the queue, added RTT."""
    through = sink["distinct"] / sink["span_s"] if sink["span_s"] > 0 else 0.0
    name = "engine: lab-nfq, no impairment"
    return [Figure(f"{name}: the sender's rate", sent["sent"] / sent["seconds"], "packets/s",
                   note=f"{sent['sent']:,} datagrams, {sent['errors']:,} send errors; a queued "
                        "packet still counts against the sender's buffer, so it waits for lab-nfq"),
            Figure(f"{name}: the rate through the queue", through, "packets/s",
                   f">= {ENGINE_TARGET_PPS:,}", through >= ENGINE_TARGET_PPS,
                   note=f"{sink['distinct']:,} of {sent['sent']:,} arrived"),
            Figure(f"{name}: added RTT (median)",
                   1000 * (statistics.median(idle) - statistics.median(base)), "µs",
                   note=f"RTT median {statistics.median(idle):.2f} ms with, "
                        f"{statistics.median(base):.2f} ms without"),
            Figure(f"{name}: RTT p99", p99(idle), "ms", note=f"{p99(base):.2f} ms without")]


def load_figure(when: str) -> Figure:
    """The host's 1-minute load average: on a busy host, every timing above is noisier."""
    import os

    return Figure(f"host load average (1 min), {when}", os.getloadavg()[0], f"/ {os.cpu_count()} CPUs")


# -- the table: one row per figure, one column per backend -------------------------------------
def render_columns(figures: list[Figure]) -> Table:
    """`bench shaping` side by side: what was configured, what each backend gave (met or not
    against the target), and the notes (how it was measured, intervals) of each."""
    from socketlab.tools.bench import render_value

    backends = [b for b in BACKENDS if any(f.name.startswith(f"{b}: ") for f in figures)]
    rows: dict[str, dict[str, Figure]] = {}
    for f in figures:
        b, _, what = f.name.partition(": ")
        if b in backends:
            rows.setdefault(what, {})[b] = f
        else:
            rows.setdefault(f.name, {})[""] = f
    table = Table(title="socketlab bench shaping: configured against observed", title_justify="left")
    table.add_column("figure")
    for b in backends:
        table.add_column(b, justify="right")
    table.add_column("target")
    table.add_column("notes", overflow="fold")
    for what, cells in rows.items():
        if "" in cells:  # not a backend's figure (the host's load)
            load = cells[""]
            table.add_row(what, render_value(load), *[""] * (len(backends) - 1), "", load.note)
            continue
        shown = []
        for b in backends:
            got = cells.get(b)
            mark = ("", "") if got is None or got.met is None else \
                ((" met", "green") if got.met else (" not met", "red"))
            shown.append(Text() if got is None else Text.assemble(render_value(got), mark))
        target = next((f"{f.target} {f.unit}" for f in cells.values() if f.target), "")
        notes = "; ".join(f"{b}: {cells[b].note}" for b in backends if b in cells and cells[b].note)
        table.add_row(what, *shown, target, notes)
    return table
