"""`bench shaping`: each shaping backend's figures, configured against observed.

Part of the benchmarks (socketlab.tools.bench): the same Figure and table, its own lab.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from socketlab.act import instruments
from socketlab.act.programs import Options
from socketlab.experiments.stats import p99, wilson
from socketlab.lab.assets import IMAGE_CONTEXT
from socketlab.lab.config import LabConfig
from socketlab.lab.docker_api import connect
from socketlab.lab.lab import Lab
from socketlab.tools.bench import Figure, bench_config

# -- bench shaping: each backend's figures, configured against observed ------------------------
PINGS, PING_GAP_S = 400, 0.004          # 1.6 s of pings, 4 ms apart, each matched by number
LOSS_DATAGRAMS, LOSS_PPS = 10_000, 10_000
FLOW_DATAGRAMS, FLOW_PPS = 6_000, 5_000
RATE_BIT, RATE_SECONDS = 10_000_000, 3.0
BURST_DATAGRAMS, ENGINE_TARGET_PPS = 40_000, 20_000
FRAME = 1514                            # a full Ethernet frame: what tbf counts
TCP_PAYLOAD, UDP_PAYLOAD = 1448, 1472   # per full frame (TCP with timestamps; UDP unfragmented)
NEVER_FIRES = [{"match": {"proto": "icmp", "nth": [10**9]}, "action": "drop"}]  # lab-nfq, idle

def shaping(config: LabConfig, *, progress: Callable[[str], None] = lambda _m: None,
            backend: str | None = None) -> list[Figure]:
    """Configured against observed, for each shaping backend this machine has (egress of the
    client, in a lab of the bench's own); every shaping is cleared after its figure."""
    from socketlab.act import shaping as shaping_api
    from socketlab.lab.images import ensure_lab_image
    from socketlab.tools.doctor import parse_backends

    cfg = bench_config(config, "shaping")
    client = connect()
    ensure_lab_image(client, cfg.image, IMAGE_CONTEXT, progress)
    figures = [load_figure("at the start")]
    with Lab(cfg, client=client, progress=progress) as lab:
        support = parse_backends(shaping_api.backends(lab, "client"))
        progress(f"unshaped: {PINGS} UDP pings, the baseline")
        base = _ping(lab)
        figures.append(rtt_figure("unshaped: RTT median", base))
        for name in [backend] if backend else ["netem", "engine"]:
            why = support.why_not(name, "delay")
            if why:
                progress(f"{name}: not on this kernel ({why})")
                figures.append(Figure(f"{name}: every figure", 0.0, "",
                                      note=f"not on this kernel ({why}): no figures"))
                continue
            figures += _backend_figures(lab, name, base, support.why_not(name, "seed"), progress)
    return [*figures, load_figure("at the end")]


def _backend_figures(lab: Lab, backend: str, base: list[float], no_seed: str,
                     progress: Callable[[str], None]) -> list[Figure]:
    def under(spec: str, measure: Callable[[], object], faults: list | None = None):
        progress(f"{backend}: {spec or 'lab-nfq with no impairment'}")
        return _under(lab, backend, spec, measure, faults)

    b = backend
    figures = delay_figures(b, base, under("delay 100ms", lambda: _ping(lab)), 100.0)
    figures.append(jitter_figure(f"{b}: delay 100ms 10ms: sd of the added delay (uniform)", base,
                                 under("delay 100ms 10ms", lambda: _ping(lab)), 10 / 3 ** 0.5,
                                 3 ** 0.5))
    figures.append(jitter_figure(f"{b}: delay 100ms 10ms distribution normal: sd of the added delay",
                                 base, under("delay 100ms 10ms distribution normal",
                                             lambda: _ping(lab)), 10.0, 1.349))
    for spec in ["loss 10%"] + ([] if no_seed else ["loss 10% seed 7"]):
        sent, sink = under(spec, lambda: _flow(lab, LOSS_DATAGRAMS, LOSS_PPS))
        figures.append(proportion_figure(f"{b}: {spec}: observed loss", sent["sent"] - sink["distinct"],
                                         sent["sent"], 10.0))
    _sent, sink = under("duplicate 5%", lambda: _flow(lab, FLOW_DATAGRAMS, FLOW_PPS))
    figures.append(proportion_figure(f"{b}: duplicate 5%: observed duplicates", sink["dup"],
                                     sink["distinct"], 5.0))
    _sent, sink = under("delay 10ms reorder 25%", lambda: _flow(lab, FLOW_DATAGRAMS, FLOW_PPS, 5.0))
    figures += reorder_figures(b, sink)
    figures += _rate_figures(lab, b, under)
    if backend == "engine":
        figures += _engine_cost(lab, base, under)
    return figures


def _rate_figures(lab: Lab, b: str, under: Callable) -> list[Figure]:
    tcp = under("rate 10mbit", lambda: _tcp_flow(lab, int(RATE_BIT / 8 * RATE_SECONDS)))
    pps = 1.1 * RATE_BIT / 8 / FRAME  # 10% over the rate: the queue never runs dry
    _sent, udp = under("rate 10mbit", lambda: _flow(lab, int(pps * RATE_SECONDS), pps,
                                                    size=UDP_PAYLOAD))
    return [goodput_figure(f"{b}: rate 10mbit: TCP goodput", tcp, RATE_BIT, TCP_PAYLOAD),
            goodput_figure(f"{b}: rate 10mbit: UDP goodput", udp, RATE_BIT, UDP_PAYLOAD)]


def _engine_cost(lab: Lab, base: list[float], under: Callable) -> list[Figure]:
    """lab-nfq holding nothing back (one fault that never fires): its rate, its latency."""
    sent, sink = under("", lambda: _flow(lab, BURST_DATAGRAMS, 0), NEVER_FIRES)
    idle = under("", lambda: _ping(lab), NEVER_FIRES)
    return engine_figures(sent, sink, base, idle)


def _under(lab: Lab, backend: str, spec: str, measure: Callable[[], object],
           faults: list | None = None):
    """`measure()` with the client's egress shaped by `spec`; cleared afterwards, whatever happens."""
    from socketlab.act import shaping as shaping_api

    try:
        shaping_api.shape(lab, "client", spec, "egress", backend, faults=faults)
        return measure()
    finally:
        shaping_api.clear(lab, "client")


def _pair(lab: Lab, proto: str, server: list[str], client: list[str]) -> tuple[dict, dict]:
    """Run a bench server and client (run_programs: bounded, server first); their summaries."""
    from socketlab.act.programs import run_programs

    run = run_programs(lab, Options(proto), server, client)
    why = f"(exit codes: server {run.server_exit}, client {run.client_exit})"
    return (instruments.summary(run.server_events, f"bench's {proto} server {why}"),
            instruments.summary(run.client_events, f"bench's {proto} client {why}"))


def _ping(lab: Lab) -> list[float]:
    """RTTs (ms) of PINGS UDP pings against an echo on the server."""
    c = lab.config
    _server, client = _pair(lab, "udp", instruments.argv("udp_echo", c.port, idle=3.0, most=15.0),
                            instruments.argv("udp_ping", c.server_ip, c.port, count=PINGS,
                                             gap=PING_GAP_S, wait=1.5))
    return instruments.numbers(client["rtts"])


def _flow(lab: Lab, count: int, pps: float, early_ms: float = 0.0,
          size: int = 64) -> tuple[dict, dict]:
    """(the sender's summary, the sink's) for `count` numbered datagrams at `pps` (0: at once)."""
    c = lab.config
    sink, sent = _pair(lab, "udp", instruments.argv("udp_sink", c.port, first=10.0, idle=0.5, most=18.0,
                                                    numbered=True, early_ms=early_ms),
                       instruments.argv("udp_blast", c.server_ip, c.port, count=count, pps=float(pps),
                                        size=size, most=12.0))
    return sent, sink


def _tcp_flow(lab: Lab, nbytes: int) -> dict:
    c = lab.config
    sink, _sent = _pair(lab, "tcp", instruments.argv("tcp_sink", c.port, most=15.0),
                        instruments.argv("tcp_send", c.server_ip, c.port, bytes=nbytes, most=12.0))
    return sink


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


def reorder_figures(b: str, sink: dict) -> list[Figure]:
    """netem's reorder: 25% of the packets skip the 10 ms delay. With a fixed delay, exactly
    those overtake an earlier-numbered datagram, whatever the host's stalls do to timing."""
    n = sink["distinct"]
    early = f"{100 * sink['early'] / n:.2f} %" if n else "-"
    return [proportion_figure(f"{b}: delay 10ms reorder 25%: sent without the delay",
                              sink["overtook"], n, 25.0),
            Figure(f"{b}: delay 10ms reorder 25%: arrived out of order",
                   100 * sink["ooo"] / n if n else 0.0, "%",
                   note=f"after a later-numbered one; {FLOW_PPS:,} datagrams/s; one-way delay "
                        f"< 5 ms (stalls push some over): {early}")]


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
