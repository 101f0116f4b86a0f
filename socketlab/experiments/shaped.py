"""What shaping opens: S1 (TCP delivers every byte under 10% loss, UDP loses about 10%),
S2 (the first SYN-ACK dropped: when connect() returns), S3 (TCP goodput against loss, beside
the model of Mathis et al., 1997).

The shaping is `socketlab.shaping` (lab-shape in the host): on this workplace's kernels, with
no netem, a seeded loss and the delay are decided by lab-nfq (NFQUEUE at POSTROUTING), a
packet-exact fault too. Both act before tcpdump's tap on the sending host (the tap sees a
leaving packet only after netfilter and the qdisc), so a packet the shaper drops is in
neither capture: the shaper's own counts (lab-nfq's log) account for it. Every shaping is
cleared in a `finally`, and what `lab-shape show` says afterwards is part of the evidence.
Every transfer is bounded: 200 kB, 2,000 datagrams, or a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from socketlab.act import instruments, shaping
from socketlab.act.programs import PROGRAMS_DIR, Options, PairRun, run_pair, run_programs
from socketlab.experiments.base import Evidence, Experiment, Verdict
from socketlab.experiments.stats import MATHIS_C, mathis_bps, wilson
from socketlab.observe.analysis import Pkt, handshake, tcp_flow, udp_datagrams
from socketlab.observe.observation import Context, Observation, events_of, ladder_files, observe
from socketlab.observe.wire import fault_packet

SEED = 7
S1_LOSS_PCT = 10.0
S1_SPEC = f"loss {S1_LOSS_PCT:g}% seed {SEED}"
S1_MESSAGE = "".join(chr(48 + i % 75) for i in range(1000))  # 1000 bytes, not all alike
S1_TCP_COUNT = 200         # 200 sendall() of 1000 bytes: 200 kB
S1_UDP_COUNT, S1_UDP_SIZE = 2000, 100
S2_FAULT = {"match": {"proto": "tcp", "flags": "SA", "nth": 1}, "action": "drop"}
S3_DELAY_MS = 20
S3_DELAY_SPEC = f"delay {S3_DELAY_MS}ms"  # on the server's egress: see run_s3
S3_LOSSES = (0.5, 1.0, 2.0, 5.0)   # percent
S3_SECONDS = 3.0           # each transfer sends for this long; goodput over the same window
S3_SNDBUF = 131072         # bounds what is still queued when the sender stops (drains fast)


# ---------------------------------------------------------------- shared
@contextmanager
def shaped(ctx: Context, host: str, spec: str, faults: list | None = None,
           direction: str = "egress") -> Iterator[dict[str, Any]]:
    """socketlab.act.shaping.shaped in an experiment's context (its lab, its progress)."""
    with shaping.shaped(ctx.lab, host, spec, direction, faults=faults,
                        progress=ctx.progress) as record:
        yield record


def resent(seqs: Sequence[tuple[int, int]]) -> int:
    """Data segments (rel_seq, length) sent again: each that starts below the highest byte
    already sent (pure). Unlike a repeated-seq count, it still sees a resend whose original
    never reached the capture (dropped before the sender's tap)."""
    highest, count = 0, 0
    for seq, length in seqs:
        if length > 0 and seq < highest:
            count += 1
        highest = max(highest, seq + length)
    return count


def field_of(events: Sequence[Any], name: str, key: str, default: Any = None) -> Any:
    found = [e.fields[key] for e in events if e.name == name and key in e.fields]
    return found[-1] if found else default


def summary_of(record: Mapping[str, Any]) -> dict[str, int]:
    """lab-nfq's counts for one shaping (zeros when it did not run or logged nothing)."""
    s = record.get("nfq_summary") or {}
    return {k: int(s.get(k, 0)) for k in ("packets", "dropped", "loss", "faults", "delayed")}


# ---------------------------------------------------------------- S1
def reader_argv(port: int, window: float = 0.0) -> list[str]:
    """A TCP receiver that counts: bytes, a SHA-256 of them, bytes within `window` s of the first."""
    return instruments.argv("tcp_sink", port, window=float(window))


def tcp_under_loss(ctx: Context) -> tuple[dict[str, Any], Observation[PairRun]]:
    """200 kB over TCP through the lossy egress, both hosts captured."""
    cfg = ctx.lab.config
    client = ["python3", f"{PROGRAMS_DIR}/tcp_client.py", "--host", cfg.server_ip, "--port",
              str(cfg.port), "--message", S1_MESSAGE, "--count", str(S1_TCP_COUNT)]
    obs = observe(ctx, lambda: run_programs(ctx.lab, Options(proto="tcp"),
                                            reader_argv(cfg.port), client), name="s1-tcp")
    run = obs.result
    sends = [e for e in run.client_events if e.name == "sent"]
    flow = tcp_flow(obs.packets["client"], (cfg.server_ip, cfg.port))
    data = [(s.rel_seq, s.length) for s in flow.data if s.from_client] if flow else []
    cc = obs.counters["client"]
    return {
        "bytes_sent": sum(int(e.fields.get("n", 0)) for e in sends),
        "bytes_received": field_of(run.server_events, "summary", "received", 0),
        "sha256_sent": hashlib.sha256(S1_MESSAGE.encode() * len(sends)).hexdigest(),
        "sha256_received": field_of(run.server_events, "summary", "sha256", ""),
        "client_segments": len(data),
        "resent_segments": resent(data),
        "repeated_in_capture": len(flow.retransmissions) if flow else 0,
        "retrans_segs": cc.get("Tcp.RetransSegs", 0), "out_segs": cc.get("Tcp.OutSegs", 0),
        "seconds": round(run.seconds, 3), "client_exit": run.client_exit,
        "capture_dropped": obs.capture.dropped,
    }, obs


def udp_under_loss(ctx: Context) -> tuple[dict[str, Any], Observation[PairRun]]:
    """2,000 datagrams through the lossy egress, both hosts captured; each missing one placed."""
    cfg = ctx.lab.config
    # a receive buffer forced to 8 MB: the socket drops nothing, the shaper's loss is the only loss
    server = instruments.argv("udp_sink", cfg.port, idle=2.0)
    client = ["python3", f"{PROGRAMS_DIR}/udp_client.py", "--host", cfg.server_ip, "--port",
              str(cfg.port), "--count", str(S1_UDP_COUNT), f"--size={S1_UDP_SIZE}", "--quiet",
              "--keep-going"]
    obs = observe(ctx, lambda: run_programs(ctx.lab, Options(proto="udp"), server, client),
                  name="s1-udp")
    run, cc, sc = obs.result, obs.counters["client"], obs.counters["server"]

    def wire(host: str) -> int:
        return sum(1 for d in udp_datagrams(obs.packets[host], cfg.port)
                   if d.pkt.src == cfg.client_ip and d.pkt.dport == cfg.port)
    return {
        "requested": S1_UDP_COUNT, "size": S1_UDP_SIZE,
        "sent": field_of(run.client_events, "summary", "sent", 0),
        "client_wire": wire("client"), "server_wire": wire("server"),
        "delivered": field_of(run.server_events, "summary", "received", 0),
        "rcvbuf": field_of(run.server_events, "listening", "rcvbuf"),
        "client_counters": {k: cc.get(k, 0) for k in ("Udp.OutDatagrams", "Udp.SndbufErrors")},
        "server_counters": {k: sc.get(k, 0) for k in ("Udp.InDatagrams", "Udp.RcvbufErrors",
                                                      "Udp.InErrors")},
        "capture_dropped": obs.capture.dropped,
    }, obs


def udp_places(u: Mapping[str, Any], shaper_loss: int) -> dict[str, Any]:
    """Where the missing datagrams went (pure), and the loss with its 95% interval."""
    lost = u["sent"] - u["delivered"]
    low, high = wilson(lost, u["sent"])
    by_shaper = u["sent"] - u["client_wire"]
    return {
        "lost": lost, "loss_pct": round(100 * lost / u["sent"], 2) if u["sent"] else None,
        "interval_pct": [round(100 * low, 2), round(100 * high, 2)],
        "failed_calls": u["requested"] - u["sent"],
        "dropped_by_shaper": by_shaper,          # sent, but not in the client's own capture
        "shaper_counted": shaper_loss,           # lab-nfq's own count of random losses
        "lost_between_hosts": u["client_wire"] - u["server_wire"],
        "dropped_at_socket": u["server_wire"] - u["delivered"],
        "unexplained": by_shaper - shaper_loss,
    }


def run_s1(ctx: Context) -> Evidence:
    with shaped(ctx, "client", S1_SPEC) as tcp_shaping:
        tcp, tobs = tcp_under_loss(ctx)
    tcp["shaper"] = summary_of(tcp_shaping)
    with shaped(ctx, "client", S1_SPEC) as udp_shaping:
        udp, uobs = udp_under_loss(ctx)
    udp |= udp_places(udp, summary_of(udp_shaping)["loss"])
    udp["shaper"] = summary_of(udp_shaping)
    facts = {"spec": S1_SPEC, "loss_pct": S1_LOSS_PCT, "tcp": tcp, "udp": udp,
             "backend": [tcp_shaping["backend"], udp_shaping["backend"]],
             "left_after_clear": tcp_shaping["left"] + udp_shaping["left"]}
    events = {f"tcp {h}": [e for e in evs if e["event"] != "sent"]
              for h, evs in events_of(tobs.result).items()}
    events |= {f"udp {h}": evs for h, evs in events_of(uobs.result).items()}
    artifacts = ladder_files(ctx, tobs, "s1-tcp", events_of(tobs.result))
    artifacts |= {f"s1-udp capture ({h}, pcap)": str(uobs.capture[h].pcap) for h in uobs.capture.hosts}
    return Evidence("S1", facts, s1_observations(facts), events, artifacts)


def s1_observations(f: Mapping[str, Any]) -> tuple[str, ...]:
    t, u = f["tcp"], f["udp"]
    return (
        f"shaping: client egress `{f['spec']}` (backend {f['backend'][0]}), cleared after each "
        f"run; left afterwards: {f['left_after_clear'] or 'nothing'}",
        f"TCP: {t['bytes_sent']} bytes sent ({S1_TCP_COUNT} sendall() of {len(S1_MESSAGE)}), "
        f"{t['bytes_received']} received, SHA-256 "
        f"{'equal' if t['sha256_sent'] == t['sha256_received'] else 'DIFFERENT'}, in {t['seconds']} s",
        f"TCP on the wire (client's capture): {t['client_segments']} data segments, "
        f"{t['resent_segments']} of them resends (starting below the highest byte already sent; "
        f"{t['repeated_in_capture']} repeat a segment the capture saw); client Tcp.RetransSegs "
        f"+{t['retrans_segs']}, Tcp.OutSegs +{t['out_segs']}; lab-nfq dropped {t['shaper']['loss']} "
        f"of the {t['shaper']['packets']} packets it saw",
        f"UDP: {u['requested']} datagrams of {u['size']} bytes asked for, {u['sent']} sendto() "
        f"succeeded; {u['client_wire']} in the client's capture, {u['server_wire']} in the "
        f"server's, {u['delivered']} delivered: {u['lost']} lost ({u['loss_pct']}%, 95% interval "
        f"{u['interval_pct'][0]}-{u['interval_pct'][1]}%)",
        f"UDP missing, by place: {u['dropped_by_shaper']} dropped by the shaper (egress, client: "
        f"lab-nfq's NF_DROP at POSTROUTING, before tcpdump's tap, so in neither capture; lab-nfq "
        f"counted {u['shaper_counted']}), {u['lost_between_hosts']} between the hosts, "
        f"{u['dropped_at_socket']} at the receiving socket, {u['failed_calls']} failed calls",
        f"UDP counters: client Udp.OutDatagrams +{u['client_counters']['Udp.OutDatagrams']} "
        f"(the shaper's drops count as sent); server Udp.InDatagrams "
        f"+{u['server_counters']['Udp.InDatagrams']}, Udp.RcvbufErrors "
        f"+{u['server_counters']['Udp.RcvbufErrors']}",
        f"capture drops (tcpdump): TCP {t['capture_dropped']}, UDP {u['capture_dropped']}",
    )


def judge_s1(ev: Evidence) -> Verdict:
    f = ev.facts
    t, u = f["tcp"], f["udp"]
    if not t["bytes_sent"] or not u["sent"] or t["capture_dropped"] or u["capture_dropped"]:
        return Verdict("S1", "inconclusive", f"TCP sent {t['bytes_sent']} bytes and UDP "
                       f"{u['sent']} datagrams; the captures dropped "
                       f"{t['capture_dropped'] + u['capture_dropped']} packets")
    whole = t["bytes_received"] == t["bytes_sent"] and t["sha256_received"] == t["sha256_sent"]
    tcp_text = (f"under `{f['spec']}` on the client's egress TCP delivered "
                f"{t['bytes_received']} of {t['bytes_sent']} bytes"
                + (" in order (SHA-256 equal)" if whole else "")
                + f", resending {t['resent_segments']} segments (client's capture; Tcp.RetransSegs "
                f"+{t['retrans_segs']}) for the {t['shaper']['loss']} the shaper dropped")
    placed = u["unexplained"] == 0 and u["lost"] == (u["dropped_by_shaper"] + u["lost_between_hosts"]
                                                    + u["dropped_at_socket"])
    low, high = u["interval_pct"]
    udp_text = (f"UDP delivered {u['delivered']} of {u['sent']} datagrams: {u['lost']} lost "
                f"({u['loss_pct']}%, 95% interval {low}-{high}%), {u['dropped_by_shaper']} "
                f"dropped by the shaper on the client's egress before tcpdump's tap (in neither "
                f"capture; lab-nfq counted {u['shaper_counted']})")
    if not whole:
        return Verdict("S1", "does not hold", f"{tcp_text}; {udp_text}")
    if not u["lost"]:
        return Verdict("S1", "does not hold", f"{tcp_text}, but {udp_text}")
    if not placed:
        return Verdict("S1", "holds in part", f"{tcp_text}; {udp_text}, and "
                       f"{u['unexplained']} missing datagrams are not accounted for")
    if not low <= f["loss_pct"] <= high:
        return Verdict("S1", "holds in part", f"{tcp_text}; {udp_text}, an interval that "
                       f"misses the {f['loss_pct']:g}% asked for")
    return Verdict("S1", "holds", f"{tcp_text}; {udp_text}, every missing one accounted for")


S1 = Experiment("S1", "TCP delivers every byte under 10% loss, UDP loses about 10%",
                "TCP delivers every byte under 10% loss (retransmissions counted from the "
                "capture) while UDP loses about 10%, with the loss attributed.", run_s1, judge_s1)


# ---------------------------------------------------------------- S2
def handshake_times(pkts: Sequence[Pkt], server: tuple[str, int]) -> dict[str, list[float]]:
    """When each SYN to `server` and each SYN-ACK from it appears in one capture."""
    tcp = [p for p in pkts if p.proto == "tcp"]
    return {"syn": [p.ts for p in tcp if p.flags == "S" and (p.dst, p.dport) == server],
            "synack": [p.ts for p in tcp if p.flags == "SA" and (p.src, p.sport) == server]}


def run_s2(ctx: Context) -> Evidence:
    cfg = ctx.lab.config
    server = (cfg.server_ip, cfg.port)
    with shaped(ctx, "server", "", faults=[S2_FAULT]) as rec:
        obs = observe(ctx, lambda: run_pair(ctx.lab, Options(proto="tcp")), name="s2-synack-drop",
                      immediate=True)
    events = events_of(obs.result)
    fired = [f for f in rec["nfq_faults"] if f.get("action") == "drop"]
    connected = next((e for e in events["client"] if e["event"] == "connected"), None)
    facts = {
        "fault": S2_FAULT, "backend": rec["backend"], "left_after_clear": rec["left"],
        "fired": [{k: f.get(k) for k in ("time", "hook", "flags", "seq", "ack", "ordinal", "src",
                                         "dst", "sport", "dport")} for f in fired],
        "client_capture": handshake_times(obs.packets["client"], server),
        "server_capture": handshake_times(obs.packets["server"], server),
        "connected_t": connected["t"] if connected else None,
        "received": "".join(str(e.get("data", "")) for e in events["server"] if e["event"] == "recv"),
        "sent": "".join(str(e.get("data", "")) for e in events["client"] if e["event"] == "sent"),
        "capture_dropped": obs.capture.dropped,
    }
    dropped = [fault_packet(line, obs.packets["server"]) for line in fired]
    drawn = replace(obs, packets={**obs.packets, "server": [*obs.packets["server"], *dropped]})
    return Evidence("S2", facts, s2_observations(facts), events,
                    ladder_files(ctx, drawn, "s2-synack-drop", events))


def s2_times(f: Mapping[str, Any]) -> dict[str, Any]:
    """The handshake's moments relative to the first SYN leaving the client (pure)."""
    c, s = f["client_capture"], f["server_capture"]
    if not c["syn"]:
        return {}
    t0 = c["syn"][0]

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 4)
    first_synack = c["synack"][0] if c["synack"] else None
    return {"syns": [rel(t) for t in c["syn"]], "synacks_at_client": [rel(t) for t in c["synack"]],
            "synacks_in_server_capture": [rel(t) for t in s["synack"]],
            "dropped_at": [rel(x["time"]) for x in f["fired"]],
            "connect_returned": rel(f["connected_t"]), "first_synack_at_client": rel(first_synack)}


def s2_observations(f: Mapping[str, Any]) -> tuple[str, ...]:
    t = s2_times(f)
    lines = [f"shaping: server egress, fault {json.dumps(f['fault'])} (backend {f['backend']}); "
             f"left after the clear: {f['left_after_clear'] or 'nothing'}"]
    lines += [f"lab-nfq's log: {x['hook']} {x['src']}:{x['sport']} > {x['dst']}:{x['dport']} "
              f"[{x['flags']}] seq={x['seq']} ack={x['ack']} (SYN-ACK #{x['ordinal']}) dropped"
              for x in f["fired"]]
    if t:
        lines += [f"times from the first SYN leaving the client (s): SYNs {t['syns']}, dropped "
                  f"SYN-ACK {t['dropped_at']}, SYN-ACKs reaching the client "
                  f"{t['synacks_at_client']}, connect() returned {t['connect_returned']}",
                  f"the server's capture holds {len(t['synacks_in_server_capture'])} SYN-ACK(s) at "
                  f"{t['synacks_in_server_capture']}: the dropped one is not among them (NFQUEUE "
                  "at POSTROUTING comes before tcpdump's tap); the ladder draws it from the log",
                  f"SYN-ACKs reaching the client after the one that completed the handshake: "
                  f"{len(t['synacks_at_client']) - 1}, at {t['synacks_at_client'][1:]} s (the "
                  "client's capture; a duplicate changes nothing once the client is connected)"]
    lines.append(f"client sent {f['sent']!r}; server's recv(3) calls read {f['received']!r}")
    return tuple(lines)


def judge_s2(ev: Evidence) -> Verdict:
    f = ev.facts
    t = s2_times(f)
    if not f["fired"]:
        return Verdict("S2", "inconclusive", "the fault never fired: lab-nfq logged no dropped "
                       "SYN-ACK")
    if not t or t["connect_returned"] is None or f["capture_dropped"]:
        return Verdict("S2", "inconclusive", "the client's capture has no SYN or connect() never "
                       f"returned (captures dropped {f['capture_dropped']} packets)")
    synack, syns, back = t["first_synack_at_client"], t["syns"], t["connect_returned"]
    after_synack = synack is not None and back >= synack
    resent = len(syns) >= 2 and synack is not None and syns[1] <= synack
    text = (f"with the first SYN-ACK dropped at the server's egress (lab-nfq logged it at "
            f"+{t['dropped_at'][0]:.4f} s; it is in neither capture), connect() returned "
            f"{back:.3f} s after the first SYN")
    if not after_synack:
        return Verdict("S2", "does not hold", f"{text}, before any SYN-ACK reached the client")
    cause = (f"after the client resent its SYN at +{syns[1]:.3f} s (Linux's initial RTO of 1 s) "
             f"and the second SYN-ACK arrived at +{synack:.3f} s" if resent else
             f"when the server's own SYN-ACK retransmission arrived at +{synack:.3f} s, before "
             f"the client resent its SYN ({len(syns)} SYN(s) in its capture)")
    whole = f["received"] == f["sent"] and f["sent"]
    status = "holds" if resent and 0.8 <= back <= 1.5 and whole else "holds in part"
    return Verdict("S2", status, f"{text}, {cause}; the exchange then carried "
                   f"{f['received']!r} whole")


S2 = Experiment("S2", "The first SYN-ACK dropped",
                "The first SYN-ACK dropped: when the client's connect returns, and what the "
                "ladder shows.", run_s2, judge_s2)


# ---------------------------------------------------------------- S3
def s3_spec(loss_pct: float) -> str:
    """The data's loss, on the client's egress (the delay is on the server's: see run_s3)."""
    return f"loss {loss_pct:g}% seed {SEED}"


def goodput_point(ctx: Context, loss_pct: float) -> tuple[dict[str, Any], str]:
    """One bounded transfer through `loss p%` (and the server's delay): goodput at the receiver, the
    sender's RTT and MSS (TCP_INFO), the handshake's MSS (client's capture), lab-nfq's counts."""
    cfg = ctx.lab.config
    sender = instruments.argv("tcp_send", cfg.server_ip, cfg.port, seconds=S3_SECONDS, sndbuf=S3_SNDBUF)
    with shaped(ctx, "client", s3_spec(loss_pct)) as rec:
        obs = observe(ctx, lambda: run_programs(ctx.lab, Options(proto="tcp"),
                                                reader_argv(cfg.port, S3_SECONDS), sender),
                      name=f"s3-loss-{loss_pct:g}", hosts=("client",), snaplen=128)
    run = obs.result
    hs = handshake(obs.packets["client"], (cfg.server_ip, cfg.port))
    mss = [m for m in (hs.syn.mss, hs.synack.mss if hs.synack else None) if m] if hs else []
    nfq = summary_of(rec)
    window_bytes = field_of(run.server_events, "summary", "window_bytes", 0)
    return {"loss_pct": loss_pct, "spec": s3_spec(loss_pct), "backend": rec["backend"],
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
    netem orphans the packets it delays for that reason; NFQUEUE cannot. The RTT is the same."""
    raw, artifacts = [], {}
    with shaped(ctx, "server", S3_DELAY_SPEC) as delay:
        for loss in S3_LOSSES:
            ctx.progress(f"goodput at {loss:g}% loss, {S3_DELAY_MS} ms delay")
            point, pcap = goodput_point(ctx, loss)
            raw.append(point)
            artifacts[f"loss {loss:g}% capture (client, pcap)"] = pcap
    points = model_points(raw)
    plot = {"x": "loss %", "series": ["measured Mbit/s", "model Mbit/s"],
            "title": f"TCP goodput, {S3_DELAY_MS} ms delay (ACK path) and loss on the data, "
                     f"against Mathis et al. (C={MATHIS_C:.2f})",
            "points": [{"loss %": p["loss_pct"], "measured Mbit/s": round(p["goodput_bps"] / 1e6, 3),
                        "model Mbit/s": round(p["model_bps"] / 1e6, 3) if p["model_bps"] else None}
                       for p in points]}
    cc = ctx.lab.exec("client", ["cat", "/proc/sys/net/ipv4/tcp_congestion_control"], timeout=10)
    facts = {"delay_ms": S3_DELAY_MS, "delay_spec": S3_DELAY_SPEC,
             "congestion_control": cc.stdout.strip() or None, "delay_backend": delay["backend"],
             "left_after_clear": delay["left"] + [x for p in points for x in p["left"]],
             "seconds": S3_SECONDS, "c": round(MATHIS_C, 4),
             "points": points, "plot": plot,
             "slope": loglog_slope([p["loss_pct"] for p in points],
                                   [p["goodput_bps"] for p in points])}
    lines = (f"server egress `{S3_DELAY_SPEC}` (backend {delay['backend']}) for the whole sweep; "
             f"client egress `loss p% seed {SEED}` per point; left after the clears: "
             f"{facts['left_after_clear'] or 'nothing'}",)
    lines += tuple(
        f"loss {p['loss_pct']:g}% ({p['spec']}, backend {p['backend']}): goodput "
        f"{p['goodput_bps'] / 1e6:.2f} Mbit/s at the receiver ({S3_SECONDS:g} s window), RTT "
        f"{p['rtt_ms']:.1f} ms (median of {p['rtt_samples']} TCP_INFO samples), MSS "
        f"{p['handshake_mss']} (handshake; {p['snd_mss']} per segment), model "
        f"{(p['model_bps'] or 0) / 1e6:.2f} Mbit/s, measured/model {p['ratio']}; sender "
        f"retransmitted {p['retrans']}, lab-nfq dropped {p['shaper_lost']} of "
        f"{p['shaper_packets']}" for p in points)
    lines += (f"log-log slope of goodput against loss: {facts['slope']} (the model: -0.5); the "
              f"client's congestion control: {facts['congestion_control']}",)
    return Evidence("S3", facts, lines, {}, artifacts)


def judge_s3(ev: Evidence) -> Verdict:
    f = ev.facts
    pts = [p for p in f["points"] if p["ratio"] is not None and p["goodput_bps"] > 0]
    if len(pts) < 3 or f["slope"] is None or any(p["capture_dropped"] for p in f["points"]):
        return Verdict("S3", "inconclusive", f"only {len(pts)} points have both a goodput and a "
                       "model rate (or a capture dropped packets)")
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
            f"{f.get('congestion_control') or 'an unknown congestion control'}, the model is Reno's)")
    if shape_ok and near:
        return Verdict("S3", "holds", text)
    if f["slope"] >= -0.1:
        return Verdict("S3", "does not hold", f"{text}: goodput did not fall with the loss")
    return Verdict("S3", "holds in part", text + (": the shape is the model's, the level is not"
                                                  if shape_ok else ": it falls, but not like 1/√p"))


S3 = Experiment("S3", "TCP goodput against loss, beside the Mathis model",
                "TCP goodput against loss at a fixed delay, plotted beside the Mathis et al. "
                "(1997) model rate ≈ (MSS/RTT)·(C/√p).", run_s3, judge_s3)

EXPERIMENTS = (S1, S2, S3)
