"""The post's load claims on the sending side: C7 (SO_SNDBUF and the largest UDP datagram) and
C9 (a full link-layer queue: ENOBUFS). The receiving side, and what the load experiments share
(a burst's programs, the counters, attribution), are socketlab.experiments.load's.

Every run is bounded: at most 2,000 datagrams, each program bounded in time in its host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from socketlab.act.programs import PairRun
from socketlab.experiments.base import Evidence, Experiment, Verdict
from socketlab.experiments.load import (
    SENDER_COUNTERS,
    UDP_MAX,
    burst_client_argv,
    burst_server_argv,
    by_errno,
    counter_facts,
    counters_line,
    field,
    run_variant,
    wire_count,
)
from socketlab.observe.events import Event
from socketlab.observe.observation import Context, Observation, events_of, observe

C7_SNDBUF = 4096
C7_SIZES = (2000, 6000, 12000, 20000, 65507, 65508)
C9_QDISC = "tbf rate 1mbit burst 2kb limit 3000"
C9_COUNT, C9_SIZE = 2000, 1000


# ---------------------------------------------------------------- C7
def call_results(events: Sequence[Event]) -> list[dict[str, Any]]:
    """Each sendto() of the client, in order: its size and what it returned (bytes or errno)."""
    return [{"size": int(e.fields.get("n", 0)), "ok": True, "result": e.fields.get("n")}
            if e.name == "sent" else
            {"size": int(e.fields.get("size", 0)), "ok": False, "result": e.fields.get("errno")}
            for e in events if e.name in ("sent", "error")]


def results_text(results: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{r['size']} -> {r['result']}" for r in results)


def run_c7(ctx: Context) -> Evidence:
    cfg = ctx.lab.config

    def sends(sndbuf: int | None) -> PairRun:
        return run_variant(ctx, burst_server_argv(cfg.port),
                           burst_client_argv(cfg.server_ip, cfg.port, C7_SIZES, sndbuf=sndbuf,
                                           quiet=False))

    obs = observe(ctx, lambda: (sends(C7_SNDBUF), sends(None)), name="udp-sndbuf")
    small, default = obs.result
    wmem = ctx.lab.exec("client", ["cat", "/proc/sys/net/core/wmem_default"], timeout=10)
    facts = {
        "sndbuf_set": C7_SNDBUF, "sndbuf": field(small.client_events, "sndbuf", "got", None),
        "default_sndbuf": int(wmem.stdout.strip() or 0), "protocol_max": UDP_MAX,
        "small": call_results(small.client_events),
        "default": call_results(default.client_events),
        "wire_datagrams": wire_count(obs.packets["client"], cfg.client_ip, cfg.port),
        "delivered": sum(field(r.server_events, "summary", "received") for r in obs.result),
        "sndbuf_errors": obs.counters["client"].get("Udp.SndbufErrors", 0),
        "capture_dropped": obs.capture.dropped,
    }
    accepted = sum(r["ok"] for r in facts["small"] + facts["default"])
    observations = (
        f"SO_SNDBUF set to {C7_SNDBUF}: getsockopt returns {facts['sndbuf']}",
        f"sendto() with that buffer: {results_text(facts['small'])}",
        f"sendto() with the default buffer ({facts['default_sndbuf']}): {results_text(facts['default'])}",
        f"{accepted} calls accepted; the client's capture holds {facts['wire_datagrams']} "
        f"datagrams, the server read {facts['delivered']}"
        + ("; each went out once, none resent" if facts["wire_datagrams"] == accepted else ""),
        f"client counters: Udp.SndbufErrors +{facts['sndbuf_errors']}",
    )
    return Evidence("C7", facts, observations, {
        f"{tag} {h}": evs for tag, r in (("small", small), ("default", default))
        for h, evs in events_of(r).items()},
        {f"{h} pcap": str(obs.capture[h].pcap) for h in obs.capture.hosts})


def judge_c7(ev: Evidence) -> Verdict:
    f = ev.facts
    if not f["small"] or f["sndbuf"] is None:
        return Verdict("C7", "inconclusive", "the client made no sendto() call with a small SO_SNDBUF")
    over = [r for r in f["small"] if f["sndbuf_set"] < r["size"] <= f["protocol_max"]]
    emsg = [r["size"] for r in over if r["result"] == "EMSGSIZE"]
    other = [f"{r['size']} ({r['result']})" for r in over if not r["ok"] and r["size"] not in emsg]
    taken = [str(r["size"]) for r in over if r["ok"]]
    limit = [r for r in f["default"] if r["size"] > f["protocol_max"]]
    at_limit = (f"; {limit[0]['size']} bytes, over the protocol's {f['protocol_max']}, got "
                f"{limit[0]['result']} whatever the buffer") if limit else ""
    text = (f"with SO_SNDBUF {f['sndbuf_set']} (getsockopt: {f['sndbuf']}) the kernel accepted "
            f"{' and '.join(taken) or 'no'}-byte datagrams larger than it, refused "
            f"{', '.join(other) or 'none'} otherwise, and answered EMSGSIZE for "
            f"{emsg or 'none'}{at_limit}")
    if over and len(emsg) == len(over):
        return Verdict("C7", "holds", text)
    return Verdict("C7", "holds in part" if emsg else "does not hold", text)


C7 = Experiment("C7", "SO_SNDBUF and the largest UDP datagram",
                "UDP's SO_SNDBUF is only an upper bound on the datagram size: writing a datagram "
                "larger than it returns EMSGSIZE. UDP keeps no copy of the data.", run_c7, judge_c7)


# ---------------------------------------------------------------- C9
def set_qdisc(ctx: Context) -> str | None:
    """The tiny slow queue on the client's eth0; None if tc took it, else tc's complaint."""
    res = ctx.lab.exec("client", ["tc", "qdisc", "replace", "dev", "eth0", "root",
                                  *C9_QDISC.split()], timeout=10)
    return None if res.exit_code == 0 else (res.stderr or res.stdout).strip() or "tc failed"


def remove_qdisc(ctx: Context) -> str:
    """Back to the default qdisc; returns what `tc qdisc show` says afterwards."""
    ctx.lab.exec("client", ["tc", "qdisc", "del", "dev", "eth0", "root"], timeout=10)
    return ctx.lab.exec("client", ["tc", "qdisc", "show", "dev", "eth0"], timeout=10).stdout.strip()


def queue_burst(ctx: Context, recverr: bool) -> tuple[dict[str, Any], Observation[PairRun]]:
    cfg = ctx.lab.config
    client = burst_client_argv(cfg.server_ip, cfg.port, [C9_SIZE], count=C9_COUNT, recverr=recverr)
    obs = observe(ctx, lambda: run_variant(ctx, burst_server_argv(cfg.port), client),
                  name="udp-full-queue" + ("-recverr" if recverr else ""))
    run, cc = obs.result, obs.counters["client"]
    sent = field(run.client_events, "summary", "sent")
    wire = wire_count(obs.packets["client"], cfg.client_ip, cfg.port)
    return {"recverr": recverr, "requested": C9_COUNT, "size": C9_SIZE, "sent": sent,
            "failed": field(run.client_events, "summary", "errors"),
            "by_errno": by_errno(run.client_events), "client_wire": wire,
            "server_wire": wire_count(obs.packets["server"], cfg.client_ip, cfg.port),
            "delivered": field(run.server_events, "summary", "received"),
            "succeeded_not_sent": sent - wire,
            "capture_dropped": obs.capture.dropped,
            "client_counters": counter_facts(cc, SENDER_COUNTERS)}, obs


def queue_lines(f: Mapping[str, Any]) -> list[str]:
    mode = "with IP_RECVERR" if f["recverr"] else "without IP_RECVERR (the default)"
    return [f"{mode}: {f['requested']} sendto() of {f['size']} bytes: {f['sent']} succeeded, "
            f"{f['failed']} failed {f['by_errno'] or ''}".rstrip(),
            f"  on the wire {f['client_wire']} (client), {f['server_wire']} (server), delivered "
            f"{f['delivered']}; {f['succeeded_not_sent']} succeeded but never left the host",
            "  " + counters_line("client", f["client_counters"], SENDER_COUNTERS)]


def run_c9(ctx: Context) -> Evidence:
    runs: list[dict[str, Any]] = []
    artifacts: dict[str, str] = {}
    events: dict[str, list[dict[str, Any]]] = {}
    problem = None
    try:
        problem = set_qdisc(ctx)
        for recverr in (False, True) if problem is None else ():
            facts, obs = queue_burst(ctx, recverr)
            runs.append(facts)
            tag = "recverr" if recverr else "default"
            events |= {f"{tag} {h}": evs for h, evs in events_of(obs.result).items()}
            artifacts |= {f"{tag} {h} pcap": str(obs.capture[h].pcap) for h in obs.capture.hosts}
    finally:
        after = remove_qdisc(ctx)
    facts = {"qdisc": C9_QDISC, "qdisc_error": problem, "runs": runs, "qdisc_after": after,
             "qdisc_removed": "tbf" not in after}
    observations = (f"client eth0: tc qdisc replace root {C9_QDISC}"
                    + (f" failed: {problem}" if problem else ""),
                    *(ln for r in runs for ln in queue_lines(r)),
                    f"afterwards: {after or 'no qdisc shown'}")
    return Evidence("C9", facts, observations, events, artifacts)


def judge_c9(ev: Evidence) -> Verdict:
    f = ev.facts
    runs = {r["recverr"]: r for r in f["runs"]}
    if f["qdisc_error"] or set(runs) != {False, True}:
        return Verdict("C9", "inconclusive", f"the slow queue could not be set up: {f['qdisc_error']}")
    plain, err = runs[False], runs[True]
    drops = [r["client_counters"]["qdisc.drops"] for r in (plain, err)]
    if not any(drops):
        return Verdict("C9", "inconclusive", f"the queue never overflowed ({plain['sent']} and "
                       f"{err['sent']} datagrams passed a {f['qdisc']} qdisc without a drop)")
    enobufs = [r["by_errno"].get("ENOBUFS", 0) for r in (plain, err)]
    text = (f"by default {plain['sent']} of {plain['requested']} sendto() calls succeeded but "
            f"only {plain['client_wire']} datagrams left the host: the queue dropped {drops[0]} "
            f"(Udp.SndbufErrors +{plain['client_counters']['Udp.SndbufErrors']}, Udp.OutDatagrams "
            f"+{plain['client_counters']['Udp.OutDatagrams']}) and "
            f"{enobufs[0]} calls returned ENOBUFS; with IP_RECVERR {enobufs[1]} calls failed with "
            f"ENOBUFS (queue drops {drops[1]})")
    if enobufs[0]:
        return Verdict("C9", "holds", text)
    return Verdict("C9", "holds in part" if plain["succeeded_not_sent"] > 0 else "does not hold",
                   text)


C9 = Experiment("C9", "A full link-layer queue and ENOBUFS",
                "A successful UDP write only means the datagram was queued for the link layer; if "
                "that queue is full the kernel usually returns ENOBUFS (some systems return no "
                "error).", run_c9, judge_c9)


EXPERIMENTS = (C7, C9)
