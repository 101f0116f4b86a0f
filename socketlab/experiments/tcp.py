"""The post's TCP claims: C1 (connect refused), C3 (three-way handshake), C4 (byte stream)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from socketlab.act.programs import (
    Options,
    PairRun,
    run_pair,
)
from socketlab.experiments.base import Evidence, Experiment, Verdict
from socketlab.lab.lab import Lab
from socketlab.observe.analysis import Handshake, Pkt, handshake, tcp_flow
from socketlab.observe.counters import Counters
from socketlab.observe.events import payload
from socketlab.observe.observation import Context, events_of, ladder_files, observe

ACCEPT_DELAY_S = 1.0  # C3: the server sleeps this long between listen() and accept()
ESTABLISHED_STATES = ("ESTAB", "CLOSE-WAIT")  # ss's names; CLOSE-WAIT is only reached from ESTAB


# ---------------------------------------------------------------- shared
def _us(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1e6)


def _pkt_fact(hs: Handshake, pkt: Pkt | None) -> dict[str, Any] | None:
    """One handshake packet as plain data: absolute and relative numbers, options, time."""
    if pkt is None:
        return None
    rel_seq, rel_ack = hs.relative(pkt)
    return {"src": f"{pkt.src}:{pkt.sport}", "dst": f"{pkt.dst}:{pkt.dport}", "flags": pkt.flags,
            "seq": pkt.seq, "ack": pkt.ack, "rel_seq": rel_seq, "rel_ack": rel_ack,
            "window": hs.window(pkt), "mss": pkt.mss, "wscale": pkt.wscale, "ts": pkt.ts}


def _pkt_line(host: str, name: str, p: dict[str, Any], t0: float) -> str:
    opts = "".join(f" {k}={p[k]}" for k in ("mss", "wscale") if p[k] is not None)
    return (f"{host}'s capture: {name} {p['src']} > {p['dst']} [{p['flags']}] seq={p['seq']} "
            f"ack={p['ack']} (relative {p['rel_seq']}/{p['rel_ack']}) win={p['window']}{opts} "
            f"at +{_us(p['ts'] - t0)} µs")


def _tcp_counters(counters: Counters) -> dict[str, int]:
    return {k: v for k, v in counters.items() if k.startswith(("Tcp.", "TcpExt."))}


def _first(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in events if e["event"] == name), None)


# ---------------------------------------------------------------- C1
def run_c1(ctx: Context) -> Evidence:
    opts = Options(proto="tcp", server=False)
    obs = observe(ctx, lambda: run_pair(ctx.lab, opts), name="refused")
    cfg, events = ctx.lab.config, events_of(obs.result)
    error = _first(events["client"], "error")
    wire: dict[str, Any] = {}
    for host in ("client", "server"):
        hs = handshake(obs.packets[host], (cfg.server_ip, cfg.port))
        wire[host] = None if hs is None else {
            "syn": _pkt_fact(hs, hs.syn), "synack": _pkt_fact(hs, hs.synack),
            "rst": _pkt_fact(hs, hs.reset),
            "syn_to_rst_us": _us(hs.reset.ts - hs.syn.ts) if hs.reset else None}
    facts = {
        "server_ip": cfg.server_ip,
        "client_exit": obs.result.client_exit,
        "connected": _first(events["client"], "connected") is not None,
        "error": None if error is None else {k: error.get(k) for k in ("op", "errno", "msg")},
        "client_output": [e.raw for e in obs.result.client_events],
        "wire": wire,
        "counters": {h: _tcp_counters(obs.counters[h]) for h in ("client", "server")},
        "capture_dropped": obs.capture.dropped,
    }
    return Evidence("C1", facts, _c1_observations(facts), events,
                    ladder_files(ctx, obs, "refused", events))


def _c1_observations(f: dict[str, Any]) -> tuple[str, ...]:
    lines = [f"client printed: {line}" for line in f["client_output"]]
    lines.append(f"client exit status {f['client_exit']}")
    for host, w in f["wire"].items():
        if w is None:
            lines.append(f"{host}'s capture: no SYN to the server's port")
            continue
        t0 = w["syn"]["ts"]
        lines += [_pkt_line(host, name.upper(), w[name], t0)
                  for name in ("syn", "synack", "rst") if w[name]]
    for host, counters in f["counters"].items():
        changed = ", ".join(f"{k} +{v}" for k, v in counters.items()) or "none"
        lines.append(f"{host}'s TCP counters that changed: {changed}")
    return tuple(lines)


def judge_c1(ev: Evidence) -> Verdict:
    f = ev.facts
    err = f["error"] or {}
    answered = {h: w["rst"] for h, w in f["wire"].items()
                if w and w["rst"] and "R" in w["rst"]["flags"]
                and w["rst"]["src"].startswith(f["server_ip"] + ":")}
    if f["connected"]:
        return Verdict("C1", "does not hold", "the connect succeeded although no server was "
                       "started: something listens on the port")
    if not err:
        return Verdict("C1", "inconclusive", f"the client printed no error and never connected "
                       f"(exit status {f['client_exit']})")
    if err.get("errno") != "ECONNREFUSED":
        return Verdict("C1", "holds in part", f"the connect failed, but with {err.get('errno')} "
                       f"({err.get('msg')}), not a refusal")
    if not answered:
        why = "the capture dropped packets" if f["capture_dropped"] else "no RST was captured"
        return Verdict("C1", "holds in part", f"{err.get('op')}() failed with ECONNREFUSED, "
                       f"but the wire does not show why: {why}")
    host, rst = next(iter(answered.items()))
    us = f["wire"][host]["syn_to_rst_us"]
    return Verdict("C1", "holds", f"with no server, {err.get('op')}() failed at once with "
                   f"ECONNREFUSED: the client's SYN was answered in {us} µs by a "
                   f"[{rst['flags']}] from {f['server_ip']} (seen in the "
                   f"{' and '.join(sorted(answered))} capture{'s' * (len(answered) > 1)}), "
                   "the server host's kernel refusing a port nobody listens on")


C1 = Experiment("C1", "A TCP connect with no server is refused",
                "A TCP client must connect first; if the server is not running, the connect is "
                "refused.", run_c1, judge_c1)


# ---------------------------------------------------------------- C3
def run_queued(lab: Lab, opts: Options, delay: float) -> tuple[PairRun, str]:
    """Like run_pair, but the server waits `delay` s before accept(); meanwhile, once the
    client is done, `ss -tan` is read in the server (then the time, on the events' clock)."""
    run = run_pair(lab, opts, server_extra=["--accept-delay", f"{delay:g}"],
                   after_client=lambda: lab.exec("server", ["sh", "-c", "ss -tan; date +%s.%N"],
                                                 timeout=5).stdout)
    return run, run.between


def parse_ss(text: str) -> tuple[list[dict[str, Any]], float | None]:
    """`ss -tan` then `date +%s.%N` -> (one dict per socket, the time after ss ran)."""
    rows, when = [], None
    for line in text.splitlines():
        cols = line.split()
        if len(cols) == 1 and cols[0].replace(".", "", 1).isdigit():
            when = float(cols[0])
        elif len(cols) >= 5 and cols[1].isdigit() and cols[2].isdigit():
            rows.append({"state": cols[0], "recv_q": int(cols[1]), "send_q": int(cols[2]),
                         "local": cols[3], "peer": cols[4]})
    return rows, when


def _ss_facts(text: str, port: int, peer: str) -> dict[str, Any]:
    """The listener on `port` and the connection from `peer` ("ip:port", or "ip:" for any)."""
    rows, when = parse_ss(text)
    mine = [r for r in rows if r["local"].endswith(f":{port}")]
    listener = next((r for r in mine if r["state"] == "LISTEN"), None)
    conn = next((r for r in mine if r["peer"].startswith(peer)), None)
    return {"ss_t": when, "ss_lines": [" ".join(str(v) for v in r.values()) for r in mine],
            "listener_recv_q": listener["recv_q"] if listener else None,
            "conn_state": conn["state"] if conn else None,
            "conn_recv_q": conn["recv_q"] if conn else None}


def run_c3(ctx: Context) -> Evidence:
    opts, cfg = Options(proto="tcp"), ctx.lab.config
    obs = observe(ctx, lambda: run_queued(ctx.lab, opts, ACCEPT_DELAY_S), name="handshake")
    run, ss = obs.result
    events = events_of(run)
    hs = handshake(obs.packets["server"], (cfg.server_ip, cfg.port))
    names = ("syn", "synack", "ack")
    facts = {
        "accept_delay": ACCEPT_DELAY_S,
        "handshake": None if hs is None else {n: _pkt_fact(hs, getattr(hs, n)) for n in names},
        "syn_to_synack_us": _us(hs.syn_to_synack) if hs else None,
        "synack_to_ack_us": _us(hs.synack_to_ack) if hs else None,
        "connected_t": (_first(events["client"], "connected") or {}).get("t"),
        "accepted_t": (_first(events["server"], "accepted") or {}).get("t"),
        **_ss_facts(ss, cfg.port, f"{hs.client[0]}:{hs.client[1]}" if hs else f"{cfg.client_ip}:"),
        "capture_dropped": obs.capture.dropped,
    }
    return Evidence("C3", facts, _c3_observations(facts, events), events,
                    ladder_files(ctx, obs, "handshake", events))


def _c3_observations(f: dict[str, Any], events: dict[str, list[dict[str, Any]]]
                     ) -> tuple[str, ...]:
    hs = f["handshake"] or {}
    lines = [f"{host} printed: " + "; ".join(f"{e['event']} t={e['t']:.6f}" for e in evs)
             for host, evs in events.items()]
    if hs.get("syn"):
        t0 = hs["syn"]["ts"]
        lines += [_pkt_line("server", n.upper().replace("SYNACK", "SYN-ACK"), hs[n], t0)
                  for n in ("syn", "synack", "ack") if hs[n]]
    lines.append(f"SYN -> SYN-ACK {f['syn_to_synack_us']} µs, SYN-ACK -> ACK "
                 f"{f['synack_to_ack_us']} µs (the server's SYN_RECEIVED)")
    if f["connected_t"] and f["accepted_t"]:
        lines.append(f"client's connect() returned {f['accepted_t'] - f['connected_t']:.3f} s "
                     "before the server's accept() did")
    lines.append(f"server's `ss -tan` during the {f['accept_delay']:g} s accept delay "
                 f"(done at t={f['ss_t']}): " + " | ".join(f["ss_lines"]))
    return tuple(lines)


def _c3_wire_problem(f: Mapping[str, Any]) -> Verdict | None:
    """A verdict when the capture cannot carry the claim, or contradicts it."""
    hs = f["handshake"]
    if f["capture_dropped"] or not hs or not hs["syn"]:
        return Verdict("C3", "inconclusive", "the server's capture has no SYN to read "
                       f"(tcpdump dropped {f['capture_dropped']} packets)")
    if not hs["synack"] or not hs["ack"]:
        return Verdict("C3", "does not hold", "the SYN was not followed by a SYN-ACK and an ACK "
                       "that acknowledge it")
    numbers = [(hs[n]["rel_seq"], hs[n]["rel_ack"]) for n in ("syn", "synack", "ack")]
    stamps = [hs[n]["ts"] for n in ("syn", "synack", "ack")]
    if numbers != [(0, 0), (0, 1), (1, 1)]:
        return Verdict("C3", "does not hold", f"the handshake's relative seq/ack were {numbers}, "
                       "not 0/0, 0/1, 1/1")
    if stamps != sorted(stamps):
        return Verdict("C3", "does not hold", "the capture shows SYN, SYN-ACK and ACK out of "
                       f"order (at {', '.join(f'{t:.6f}' for t in stamps)})")
    return None


def judge_c3(ev: Evidence) -> Verdict:
    f = ev.facts
    problem = _c3_wire_problem(f)
    if problem:
        return problem
    ack_ts, accepted = f["handshake"]["ack"]["ts"], f["accepted_t"]
    if accepted is None:
        return Verdict("C3", "inconclusive", "the handshake completed but the server never "
                       "printed `accepted`")
    if accepted < ack_ts:
        return Verdict("C3", "does not hold", f"accept() returned {_us(ack_ts - accepted)} µs "
                       "before the final ACK arrived")
    wire = (f"SYN, SYN-ACK, ACK crossed in order with relative seq/ack 0/0, 0/1, 1/1 "
            f"(SYN -> SYN-ACK {f['syn_to_synack_us']} µs; SYN_RECEIVED lasted "
            f"{f['synack_to_ack_us']} µs, too short for ss to see)")
    queued = (f["ss_t"] is not None and f["ss_t"] < accepted and (f["listener_recv_q"] or 0) >= 1
              and f["conn_state"] in ESTABLISHED_STATES)
    if not queued:
        return Verdict("C3", "holds in part", f"{wire}, but ss did not show the connection "
                       f"waiting before accept() (state {f['conn_state']}, listener Recv-Q "
                       f"{f['listener_recv_q']})")
    state = f["conn_state"] if f["conn_state"] == "ESTAB" else (
        f"{f['conn_state']} (ESTABLISHED, then the client's data and FIN arrived: Recv-Q "
        f"{f['conn_recv_q']})")
    return Verdict("C3", "holds", f"{wire}; {accepted - f['ss_t']:.3f} s before accept() "
                   f"returned, ss showed the connection {state} and the listener's accept "
                   f"queue holding {f['listener_recv_q']}, and accept() returned "
                   f"{accepted - ack_ts:.3f} s after the final ACK: the kernel made the "
                   "connection, accept() only took it from the queue")


C3 = Experiment("C3", "TCP connects by a three-way handshake",
                "SYN; the server queues the connection in the kernel and answers SYN+ACK "
                "(SYN_RECEIVED); the client ACKs; both are ESTABLISHED; accept() then takes the "
                "connection from the queue.", run_c3, judge_c3)


# ---------------------------------------------------------------- C4
def run_c4(ctx: Context) -> Evidence:
    opts = Options(proto="tcp")
    obs = observe(ctx, lambda: run_pair(ctx.lab, opts), name="tcp")
    run = obs.result
    cfg = ctx.lab.config
    flow = tcp_flow(obs.packets["server"], (cfg.server_ip, cfg.port))
    wire = [s for s in flow.data if s.from_client] if flow else []
    pieces = [e.fields["data"] for e in run.server_events if e.name == "recv"]
    facts = {
        "sent": payload(run.client_events, "sent").decode("latin-1"),
        "received": payload(run.server_events, "recv").decode("latin-1"),
        "recv_pieces": pieces,
        "bufsize": opts.bufsize,
        "wire_segments": [s.pkt.length for s in wire],
        "wire_bytes": b"".join(s.pkt.payload for s in wire).decode("latin-1"),
        "capture_dropped": obs.capture.dropped,
    }
    observations = (
        f"client sent {facts['sent']!r} with one sendall()",
        f"on the wire (server's capture): {len(wire)} data segment(s) of "
        f"{facts['wire_segments']} bytes carrying {facts['wire_bytes']!r}",
        "server's recv(3) calls returned " + ", ".join(repr(p) for p in pieces),
    )
    return Evidence("C4", facts, observations, events_of(run),
                    ladder_files(ctx, obs, "tcp", events_of(run)))


def judge_c4(ev: Evidence) -> Verdict:
    f = ev.facts
    pieces = [p for p in f["recv_pieces"] if p]
    if not f["sent"] or f["capture_dropped"]:
        return Verdict("C4", "inconclusive", "nothing was sent, or the capture dropped packets")
    whole = f["received"] == f["sent"]
    cut = len(pieces) > 1 and all(len(p) <= f["bufsize"] for p in pieces)
    if whole and cut:
        return Verdict("C4", "holds", f"the {len(f['sent'])} bytes the client sent in one call "
                       f"crossed the wire as {f['wire_segments']} and the server read all of them "
                       f"in {len(pieces)} recv({f['bufsize']}) calls: the stream kept every byte, "
                       "the message boundaries are the reader's to choose")
    if whole:
        return Verdict("C4", "holds in part", "every byte arrived, but not in pieces of the "
                       f"receive size: {pieces}")
    return Verdict("C4", "does not hold", f"the server read {f['received']!r} of {f['sent']!r}")


C4 = Experiment("C4", "TCP is a byte stream",
                "With recv(3) the server reads the 11 bytes in pieces and loses nothing; the "
                "application loops to read them all.", run_c4, judge_c4)

EXPERIMENTS = (C1, C3, C4)
