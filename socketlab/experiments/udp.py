"""The post's UDP claims: C2 (connectionless), C5 (datagrams are cut), C8 (no MSS: fragments).

Each `run_*` observes the post's programs (counters, captures on both hosts, the programs'
own lines) and returns Evidence; each `judge_*` reads only that Evidence's facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from socketlab.act.programs import Options, PairRun, run_pair
from socketlab.experiments.base import Evidence, Experiment, Verdict
from socketlab.lab.lab import Lab
from socketlab.observe.analysis import Pkt, fragments, icmp_errors, tcp_flow, udp_datagrams
from socketlab.observe.observation import Context, Observation, events_of, ladder_files, observe

BIG_SIZE = 8000  # C8: well above a 1500-byte MTU, well below UDP's 65507-byte limit
BIG_BUFSIZE = 8192  # C8: the server reads the whole datagram (or big TCP pieces) at once
PATTERN = "0123456789"  # C8's payload, repeated: a fragment's bytes show where they belong


def big_message(size: int = BIG_SIZE) -> str:
    """`size` bytes of 0123456789 repeated: readable in a capture, easy to check whole."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


# ---------------------------------------------------------------- shared helpers
def picked(counters: Mapping[str, int], names: Iterable[str]) -> dict[str, int]:
    """The named counter deltas, 0 where the counter did not change."""
    return {name: counters.get(name, 0) for name in names}


def datagram_sizes(pkts: Iterable[Pkt], src: str, port: int) -> list[int]:
    """Payload sizes of the UDP datagrams `src` sent to `port` (a fragmented one once)."""
    return [d.length for d in udp_datagrams(pkts, port) if d.pkt.src == src and d.pkt.dport == port]


def fields_of(run_events: Sequence[Any], name: str) -> list[dict[str, Any]]:
    """The fields of a program's events called `name`, in order."""
    return [e.fields for e in run_events if e.name == name]


def brief(events: dict[str, list[dict[str, Any]]], keep: int = 24
          ) -> dict[str, list[dict[str, Any]]]:
    """Events with long `data` cut to `keep` characters (the byte count `n` stays exact)."""
    def cut(e: dict[str, Any]) -> dict[str, Any]:
        data = e.get("data")
        if isinstance(data, str) and len(data) > keep:
            return {**e, "data": data[:keep] + "..."}
        return e
    return {host: [cut(e) for e in evs] for host, evs in events.items()}


def link_mtu(lab: Lab, host: str) -> int | None:
    """eth0's MTU in a host, as `ip link` reports it."""
    out = lab.exec(host, ["ip", "-o", "link", "show", "dev", "eth0"], timeout=10).stdout
    m = re.search(r"\bmtu (\d+)", out)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- C2
C2_COUNTERS = {"client": ("Udp.OutDatagrams", "Icmp.InDestUnreachs", "Udp.InErrors"),
               "server": ("Udp.InDatagrams", "Udp.NoPorts", "Icmp.OutDestUnreachs")}


def run_c2(ctx: Context) -> Evidence:
    opts = Options(proto="udp", server=False)
    obs = observe(ctx, lambda: run_pair(ctx.lab, opts), name="udp-noserver")
    run, cfg = obs.result, ctx.lab.config
    sent = fields_of(run.client_events, "sent")
    err = run.error()
    facts = {
        "server_started": opts.server,
        "client_calls": [e.name for e in run.client_events],
        "sendto_returns": [s["n"] for s in sent],
        "sent_sizes": [len(s["data"].encode("latin-1")) for s in sent],
        "client_exit": run.client_exit,
        "client_error": err.raw if err else None,
        "left_client": datagram_sizes(obs.packets["client"], cfg.client_ip, cfg.port),
        "arrived_server": datagram_sizes(obs.packets["server"], cfg.client_ip, cfg.port),
        **c2_icmp_facts(obs, cfg.server_ip),
        "counters": {h: picked(obs.counters[h], names) for h, names in C2_COUNTERS.items()},
        "capture_dropped": obs.capture.dropped,
    }
    events = events_of(run)
    return Evidence("C2", facts, c2_observations(facts), events,
                    ladder_files(ctx, obs, "udp-noserver", events))


def c2_icmp_facts(obs: Observation[PairRun], server_ip: str) -> dict[str, Any]:
    """The ICMP errors the server host sent (its capture) and the client host got (its own)."""
    sent = [e for e in icmp_errors(obs.packets["server"]) if e.pkt.src == server_ip]
    got = [e for e in icmp_errors(obs.packets["client"]) if e.pkt.src == server_ip]
    return {
        "icmp_sent_by_server": [e.description for e in sent],
        "icmp_received_by_client": [e.description for e in got],
        "icmp_quotes": [f"{q.proto} {q.src}:{q.sport} -> {q.dst}:{q.dport} id={q.ip_id}"
                        for q in (e.quote for e in got) if q is not None],
        "icmp_quoting_sent_datagram": sum(1 for e in got if e.refers_to is not None
                                          and e.refers_to.proto == "udp"),
    }


def c2_observations(f: Mapping[str, Any]) -> tuple[str, ...]:
    c, s = f["counters"]["client"], f["counters"]["server"]
    return (
        "no server was started; the client's calls: " + ", ".join(f["client_calls"]),
        f"client: sendto() returned {f['sendto_returns']}, exit status {f['client_exit']}, "
        f"error line: {f['client_error'] or 'none'}",
        f"on the wire: datagrams of {f['left_client']} bytes left the client; the server host's "
        f"capture shows {f['arrived_server']} arriving",
        f"server host answered: {f['icmp_sent_by_server'] or 'nothing'}; the client host got "
        f"{f['icmp_received_by_client'] or 'nothing'}, quoting {f['icmp_quotes'] or 'nothing'}",
        f"server counters: Udp.NoPorts +{s['Udp.NoPorts']}, Icmp.OutDestUnreachs "
        f"+{s['Icmp.OutDestUnreachs']}; client counters: Icmp.InDestUnreachs "
        f"+{c['Icmp.InDestUnreachs']}",
        "the client's socket is not connected: Linux hands ICMP errors only to connected UDP "
        "sockets (or with IP_RECVERR), so the program is never told",
    )


def judge_c2(ev: Evidence) -> Verdict:
    f = ev.facts
    returns, exit_code = f["sendto_returns"], f["client_exit"]
    if not returns or f["capture_dropped"]:
        return Verdict("C2", "inconclusive", "the client sent nothing, or the capture dropped "
                       f"packets ({f['capture_dropped']})")
    if exit_code != 0 or f["client_error"]:
        return Verdict("C2", "does not hold", f"with no server, the UDP client failed (exit "
                       f"{exit_code}): {f['client_error'] or 'no error line'}")
    if f["server_started"] or not f["arrived_server"]:
        return Verdict("C2", "inconclusive", "the client finished, but the server host's capture "
                       f"shows {f['arrived_server']} arriving with server_started="
                       f"{f['server_started']}: the case of no server was not shown")
    if returns != f["sent_sizes"]:
        return Verdict("C2", "holds in part", f"the client finished with exit 0, but sendto() "
                       f"returned {returns} for datagrams of {f['sent_sizes']} bytes")
    icmp = f["icmp_received_by_client"]
    back = (f"the server host answered {len(icmp)} ICMP {icmp[0]} (Udp.NoPorts "
            f"+{f['counters']['server']['Udp.NoPorts']}, Icmp.InDestUnreachs "
            f"+{f['counters']['client']['Icmp.InDestUnreachs']} on the client), but the "
            "unconnected socket was never told") if icmp else "nothing came back on the wire"
    return Verdict("C2", "holds", f"with no server started and no listen or connect, the UDP "
                   f"client's sendto() returned {returns} and it exited {exit_code} with no error "
                   f"while its datagrams of {f['arrived_server']} bytes reached the server host; "
                   f"{back}")


C2 = Experiment("C2", "UDP is connectionless",
                "UDP needs no listen and no connect; a UDP client finishes its work even when "
                "the server was never started.", run_c2, judge_c2)


# ---------------------------------------------------------------- C5
C5_COUNTERS = ("Udp.InDatagrams", "Udp.InErrors", "Udp.RcvbufErrors", "Udp.NoPorts")


def run_c5(ctx: Context) -> Evidence:
    opts = Options(proto="udp", count=2)
    obs = observe(ctx, lambda: run_pair(ctx.lab, opts), name="udp")
    run, cfg = obs.result, ctx.lab.config
    facts: dict[str, Any] = {
        "sent_datagrams": [s["data"] for s in fields_of(run.client_events, "sent")],
        "recvfrom_returns": [r["data"] for r in fields_of(run.server_events, "recvfrom")],
        "bufsize": opts.bufsize,
        "wire_client": datagram_sizes(obs.packets["client"], cfg.client_ip, cfg.port),
        "wire_server": datagram_sizes(obs.packets["server"], cfg.client_ip, cfg.port),
        "server_counters": picked(obs.counters["server"], C5_COUNTERS),
        "server_exit": run.server_exit,
        "capture_dropped": obs.capture.dropped,
    }
    observations = (
        "client sent datagrams " + ", ".join(repr(d) for d in facts["sent_datagrams"]),
        f"on the wire: {facts['wire_client']} bytes left the client, {facts['wire_server']} "
        "arrived at the server",
        f"server's recvfrom({opts.bufsize}) calls returned "
        + ", ".join(repr(p) for p in facts["recvfrom_returns"]),
        "server counters: " + ", ".join(f"{k} +{v}" for k, v in
                                        facts["server_counters"].items()),
        "compare C4: over TCP the next recv(3) returned 'lo,'; here each call starts a new "
        "datagram",
    )
    events = events_of(run)
    return Evidence("C5", facts, observations, events,
                    ladder_files(ctx, obs, "udp", events, opts.bufsize))


def judge_c5(ev: Evidence) -> Verdict:
    f = ev.facts
    sent, got, b = f["sent_datagrams"], f["recvfrom_returns"], f["bufsize"]
    if not sent or f["capture_dropped"] or not f["wire_server"]:
        return Verdict("C5", "inconclusive", "nothing was sent, the server's capture shows no "
                       "datagram, or the capture dropped packets")
    if not any(len(d) > b for d in sent):
        return Verdict("C5", "inconclusive", f"no datagram was longer than recvfrom({b}): "
                       f"{[len(d) for d in sent]} bytes")
    leaked = [p for p in got if p and not any(d.startswith(p) for d in sent)]
    if leaked:
        return Verdict("C5", "does not hold", f"recvfrom({b}) returned {leaked}, bytes from "
                       "inside a datagram: the rest was kept for the next call")
    cut = got == [d[:b] for d in sent]
    whole = f["wire_server"] == [len(d.encode("latin-1")) for d in sent]
    if not (cut and whole):
        return Verdict("C5", "holds in part", f"recvfrom({b}) returned {got} for datagrams "
                       f"{sent} that crossed the wire as {f['wire_server']} bytes")
    rests = [d[b:] for d in sent if len(d) > b]
    return Verdict("C5", "holds", f"the {len(sent)} datagrams crossed the wire whole as "
                   f"{f['wire_server']} bytes, yet recvfrom({b}) returned {got}: the first {b} "
                   f"bytes of each; the other {sum(map(len, rests))} bytes ({rests}) were "
                   f"discarded, no later call returned them (Udp.InDatagrams "
                   f"+{f['server_counters']['Udp.InDatagrams']}, Udp.InErrors "
                   f"+{f['server_counters']['Udp.InErrors']})")


C5 = Experiment("C5", "UDP is datagrams",
                "With recvfrom(3) the datagram is truncated and the rest of it is gone.",
                run_c5, judge_c5)


# ---------------------------------------------------------------- C8
C8_COUNTERS = {"client": ("Ip.FragCreates", "Ip.FragOKs", "Ip.FragFails"),
               "server": ("Ip.ReasmReqds", "Ip.ReasmOKs", "Ip.ReasmFails")}


def run_c8(ctx: Context) -> Evidence:
    message = big_message()
    udp = observe(ctx, lambda: run_pair(ctx.lab, Options(proto="udp", message=message,
                                                         bufsize=BIG_BUFSIZE)), name="udp-big")
    tcp = observe(ctx, lambda: run_pair(ctx.lab, Options(proto="tcp", message=message,
                                                         bufsize=BIG_BUFSIZE)), name="tcp-big")
    facts = {
        "size": len(message),
        "mtu": {h: link_mtu(ctx.lab, h) for h in ("client", "server")},
        **c8_udp_facts(ctx, udp),
        **c8_tcp_facts(ctx, tcp),
        "capture_dropped": udp.capture.dropped + tcp.capture.dropped,
    }
    udp_ev, tcp_ev = brief(events_of(udp.result)), brief(events_of(tcp.result))
    events = {h: udp_ev[h] + tcp_ev[h] for h in ("client", "server")}
    artifacts = {**ladder_files(ctx, udp, "udp-big", udp_ev, BIG_BUFSIZE),
                 **ladder_files(ctx, tcp, "tcp-big", tcp_ev, BIG_BUFSIZE)}
    return Evidence("C8", facts, c8_observations(facts, udp, tcp), events, artifacts)


def c8_udp_facts(ctx: Context, obs: Observation[PairRun]) -> dict[str, Any]:
    """The big datagram: its fragments as the client sent them and the server got them."""
    cfg = ctx.lab.config
    sent = [g for g in fragments(obs.packets["client"])
            if g.proto == "udp" and g.src == cfg.client_ip]
    got = [g for g in fragments(obs.packets["server"])
           if g.proto == "udp" and g.src == cfg.client_ip]
    return {
        "udp_datagrams": [n for n in datagram_sizes(obs.packets["client"], cfg.client_ip,
                                                    cfg.port) if n],
        "udp_fragments": [[p.frag_offset, p.ip_payload, p.mf, p.df]
                          for p in (sent[0].pieces if sent else ())],
        "udp_fragments_at_server": len(got[0].pieces) if got else 0,
        "udp_reassembly_complete": bool(got) and got[0].complete,
        "udp_received": [r["n"] for r in fields_of(obs.result.server_events, "recvfrom")
                         if r["n"]],
        "udp_counters": {h: picked(obs.counters[h], n) for h, n in C8_COUNTERS.items()},
    }


def c8_tcp_facts(ctx: Context, obs: Observation[PairRun]) -> dict[str, Any]:
    """The same bytes over TCP: the MSS each side announced, the segments the client sent."""
    cfg = ctx.lab.config
    flow = tcp_flow(obs.packets["client"], (cfg.server_ip, cfg.port))
    hs = flow.handshake if flow else None
    data = [s for s in flow.data if s.from_client] if flow else []
    got = tcp_flow(obs.packets["server"], (cfg.server_ip, cfg.port))
    return {
        "tcp_segments_at_server": [s.length for s in got.data if s.from_client] if got else [],
        "tcp_mss": [hs.syn.mss, hs.synack.mss if hs.synack else None] if hs else [],
        "tcp_segments": [s.length for s in data],
        "tcp_df": [s.pkt.df for s in data],
        "tcp_fragments": sum(1 for h in ("client", "server")
                             for g in fragments(obs.packets[h]) if g.proto == "tcp"),
        "tcp_received": sum(r["n"] for r in fields_of(obs.result.server_events, "recv")),
        "tcp_frag_creates": obs.counters["client"].get("Ip.FragCreates", 0),
    }


def c8_observations(f: Mapping[str, Any], udp: Observation[PairRun],
                    tcp: Observation[PairRun]) -> tuple[str, ...]:
    offloads = dict.fromkeys(r.describe() for r in (*udp.capture.offloads,
                                                     *tcp.capture.offloads))
    c, s = f["udp_counters"]["client"], f["udp_counters"]["server"]
    return (
        f"eth0 MTU: client {f['mtu']['client']}, server {f['mtu']['server']}",
        f"UDP: one sendto() of {f['size']} bytes ({PATTERN!r} repeated) left the client as "
        f"{len(f['udp_fragments'])} IP fragments [offset, IP payload bytes, MF, DF]: {f['udp_fragments']}",
        f"UDP: {f['udp_fragments_at_server']} fragments reached the server, reassembled "
        f"{'whole' if f['udp_reassembly_complete'] else 'NOT whole'}; recvfrom("
        f"{BIG_BUFSIZE}) returned {f['udp_received']} bytes",
        f"UDP counters: client Ip.FragCreates +{c['Ip.FragCreates']}, Ip.FragOKs "
        f"+{c['Ip.FragOKs']}; server Ip.ReasmReqds +{s['Ip.ReasmReqds']}, Ip.ReasmOKs "
        f"+{s['Ip.ReasmOKs']}",
        f"TCP: MSS announced (client, server) {f['tcp_mss']}; sendall() of {f['size']} bytes "
        f"left as {len(f['tcp_segments'])} segments of {f['tcp_segments']} bytes, DF set on "
        f"{sum(f['tcp_df'])} of them, {f['tcp_fragments']} IP fragments (Ip.FragCreates "
        f"+{f['tcp_frag_creates']}); the server read {f['tcp_received']} bytes",
        "capture offloads: " + "; ".join(offloads),
    ) + coalesced_words(f)


def coalesced_words(f: Mapping[str, Any]) -> tuple[str, ...]:
    """What the server's capture shows of segments merged on the way (pure): bigger than any
    the client sent, so a receive offload outside the hosts (on an overlay, the nodes' VXLAN
    devices, which the lab's hosts cannot switch) coalesced them before the server's tap."""
    sent = max(f["tcp_segments"], default=0)
    big = [n for n in f.get("tcp_segments_at_server", []) if n > sent]
    if not big:
        return ()
    return (f"TCP at the server: {len(big)} segment(s) of {big} bytes, bigger than any the client "
            f"sent ({sent}): coalesced on the way by a receive offload outside the hosts; the "
            "ladder draws the client's segments as sent and notes the merge",)


def judge_c8(ev: Evidence) -> Verdict:
    f = ev.facts
    pieces, segs, mss = f["udp_fragments"], f["tcp_segments"], [m for m in f["tcp_mss"] if m]
    if f["capture_dropped"] or not (pieces or f["udp_datagrams"]) or not segs:
        return Verdict("C8", "inconclusive", "the captures missed the UDP datagram or the TCP "
                       "data, or dropped packets")
    mtu = f["mtu"]["client"]
    if len(pieces) < 2:
        return Verdict("C8", "does not hold", f"the {f['size']}-byte UDP datagram left in one "
                       f"piece over a {mtu}-byte MTU: no IP fragmentation")
    if f["tcp_fragments"]:
        return Verdict("C8", "does not hold", f"TCP data was IP-fragmented too "
                       f"({f['tcp_fragments']} fragment groups)")
    limit = min(mss) if mss else None
    if limit is None or max(segs) > limit:
        return Verdict("C8", "holds in part", f"UDP left as {len(pieces)} fragments and TCP was "
                       f"not fragmented, but its segments {segs} are not bounded by the MSS "
                       f"{limit} (segmentation offload on?)")
    return Verdict("C8", "holds", f"over a {mtu}-byte MTU the {f['size']}-byte UDP datagram "
                   f"left as {len(pieces)} IP fragments at offsets {[p[0] for p in pieces]} "
                   f"(Ip.FragCreates +{f['udp_counters']['client']['Ip.FragCreates']}, "
                   f"Ip.ReasmOKs +{f['udp_counters']['server']['Ip.ReasmOKs']} at the server), "
                   f"while the same bytes over TCP went as {len(segs)} segments of at most "
                   f"{max(segs)} bytes (MSS {limit}), DF set on {sum(f['tcp_df'])} of "
                   f"{len(segs)}, and no IP fragment")


C8 = Experiment("C8", "UDP has no MSS",
                "A large UDP datagram is more easily IP-fragmented than TCP data, which TCP "
                "cuts into MSS-sized segments.", run_c8, judge_c8)

EXPERIMENTS = (C2, C5, C8)
