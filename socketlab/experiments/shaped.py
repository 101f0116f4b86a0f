"""What shaping opens: S1 (TCP delivers every byte under 10% loss, UDP loses about 10%),
S2 (the first SYN-ACK dropped: when connect() returns); S3 (TCP goodput against loss, by
congestion control, beside the model of Mathis et al., 1997) is in congestion.py.

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from socketlab.act import instruments, shaping
from socketlab.act.programs import (
    Options,
    PairRun,
    run_pair,
    run_programs,
    tcp_client_argv,
    udp_client_argv,
)
from socketlab.experiments.base import Evidence, Experiment, Status, Verdict
from socketlab.experiments.stats import wilson
from socketlab.observe.analysis import Pkt, tcp_flow, udp_datagrams
from socketlab.observe.observation import Context, Observation, events_of, ladder_files, observe
from socketlab.observe.wire import fault_packet

SEED = 7
S1_LOSS_PCT = 10.0
S1_SPEC = f"loss {S1_LOSS_PCT:g}% seed {SEED}"
S1_MESSAGE = "".join(chr(48 + i % 75) for i in range(1000))  # 1000 bytes, not all alike
S1_TCP_COUNT = 200         # 200 sendall() of 1000 bytes: 200 kB
S1_UDP_COUNT, S1_UDP_SIZE = 2000, 100
S2_FAULT = {"match": {"proto": "tcp", "flags": "SA", "nth": 1}, "action": "drop"}


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
    client = tcp_client_argv(host=cfg.server_ip, port=cfg.port, message=S1_MESSAGE,
                             count=S1_TCP_COUNT)
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
    client = udp_client_argv(host=cfg.server_ip, port=cfg.port, count=S1_UDP_COUNT,
                             size=[S1_UDP_SIZE], quiet=True, keep_going=True)
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
    # the shaper drops before the client's tap: its log's lost packets are drawn as drops
    lost = [fault_packet(line, tobs.packets["client"]) for line in tcp_shaping["nfq_losses"]
            if line.get("proto") == "tcp"]
    tcp["drawn_lost"] = len(lost)
    drawn = replace(tobs, packets={**tobs.packets, "client": [*tobs.packets["client"], *lost]})
    artifacts = ladder_files(ctx, drawn, "s1-tcp", events_of(tobs.result))
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
    fault = shaping.labshape().fault_text(f["fault"])
    lines = [f"shaping: server egress, fault {fault} (backend {f['backend']}); "
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
    status: Status = "holds" if resent and 0.8 <= back <= 1.5 and whole else "holds in part"
    return Verdict("S2", status, f"{text}, {cause}; the exchange then carried "
                   f"{f['received']!r} whole")


S2 = Experiment("S2", "The first SYN-ACK dropped",
                "The first SYN-ACK dropped: when the client's connect returns, and what the "
                "ladder shows.", run_s2, judge_s2)


EXPERIMENTS = (S1, S2)  # S3, goodput against loss by congestion control: congestion.py
