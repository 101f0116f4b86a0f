"""The post's load claims on the receiving side: C6 (a fast UDP sender overflows a slow reader,
TCP's window does not) and C10 (the receive buffer discards what does not fit); and what every
load experiment shares (socketlab.experiments.sending has the sender's side, C7 and C9).

Every run is bounded: at most 20,000 datagrams, each program bounded in time in its host.
The counters are the kernel's (socketlab.counters); every missing datagram is attributed to
a place (the sender's kernel, the bridge, the receiving socket, no listener) and the judges
say when the numbers do not add up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from socketlab.act import instruments
from socketlab.act.programs import (
    Options,
    PairRun,
    run_programs,
    tcp_client_argv,
    udp_client_argv,
    udp_server_argv,
)
from socketlab.experiments.base import Evidence, Experiment, Status, Verdict
from socketlab.observe.analysis import Pkt, tcp_flow, udp_datagrams
from socketlab.observe.counters import delta, snapshot
from socketlab.observe.events import Event
from socketlab.observe.observation import Context, Observation, events_of, observe

BURST = 20_000           # C6: datagrams in the fast burst
DATAGRAM = 100           # C6/C10: bytes per datagram of a burst
SMALL_RCVBUF = 4096      # C6/C10: SO_RCVBUF asked for by the slow reader (Linux doubles it)
SWEEP_RCVBUFS = (SMALL_RCVBUF, 32768, 212992)  # C6: the plot's points
READ_DELAY = 0.001       # C6/C10: the slow reader sleeps this long before each recvfrom
C10_BURST = 5_000
C10_BIG = 20_000         # C10: a datagram bigger than the whole (doubled) small buffer
UDP_MAX = 65507          # 65535 - 20 (IPv4 header) - 8 (UDP header)
FIRST_WAIT_S = 10.0  # how long a slow reader waits for the first datagram of a burst
SENDER_COUNTERS = ("Udp.OutDatagrams", "Udp.SndbufErrors", "qdisc.drops", "link.tx_dropped")
RECEIVER_COUNTERS = ("Udp.InDatagrams", "Udp.RcvbufErrors", "Udp.InErrors", "Udp.NoPorts",
                     "link.rx_dropped")


# ---------------------------------------------------------------- running a variant
def burst_server_argv(port: int, *, rcvbuf: int | None = None, delay: float = 0.0,
                      bufsize: int = 65535, timeout: float = 1.5) -> list[str]:
    """udp_server.py as the load experiments run it, a slow reader that says only its summary:
    it waits up to FIRST_WAIT_S for the burst to begin (a loaded host may start the client
    late), then stops after `timeout` seconds of silence."""
    return udp_server_argv(port=port, bufsize=bufsize, timeout=timeout, first_timeout=FIRST_WAIT_S,
                           delay=delay, rcvbuf=rcvbuf, quiet=True)


def burst_client_argv(host: str, port: int, sizes: Sequence[int], *, count: int = 1,
                      sndbuf: int | None = None, recverr: bool = False,
                      quiet: bool = True) -> list[str]:
    """udp_client.py as the load experiments run it: a bounded sender that goes on after a
    failed sendto() and counts it."""
    return udp_client_argv(host=host, port=port, size=sizes, count=count, sndbuf=sndbuf,
                           recverr=recverr, quiet=quiet, keep_going=True)


def run_variant(ctx: Context, server: list[str], client: list[str], proto: str = "udp"
                ) -> PairRun:
    """Start `server`, wait for its `listening` line, run `client`, wait for the server."""
    return run_programs(ctx.lab, Options(proto=proto), server, client)


def field(events: Sequence[Event], name: str, key: str, default: Any = 0) -> Any:
    """A field of the last event called `name` (e.g. the summary's `sent`)."""
    found = [e.fields[key] for e in events if e.name == name and key in e.fields]
    return found[-1] if found else default


def by_errno(events: Sequence[Event]) -> dict[str, int]:
    """The client's summary `by_errno=ENOBUFS:3,EMSGSIZE:1` as a dict."""
    text = str(field(events, "summary", "by_errno", "-"))
    pairs = (p.split(":") for p in text.split(",") if ":" in p)
    return {name: int(n) for name, n in pairs}


def wire_count(pkts: Sequence[Pkt], src: str, port: int) -> int:
    """UDP datagrams from `src` to `port` in one capture (a fragmented one counts once)."""
    return sum(1 for d in udp_datagrams(pkts, port) if d.pkt.src == src and d.pkt.dport == port)


def counter_facts(counters: Mapping[str, int], names: Sequence[str]) -> dict[str, int]:
    return {n: counters.get(n, 0) for n in names}


def counters_line(host: str, counters: Mapping[str, int], names: Sequence[str]) -> str:
    shown = ", ".join(f"{n} +{counters.get(n, 0)}" for n in names)
    return f"{host} counters: {shown}"



# ---------------------------------------------------------------- C6: UDP half
def attribute(f: Mapping[str, Any]) -> dict[str, int]:
    """Where each of the requested datagrams went (pure): every missing one has a place, and
    `*_unexplained` is what the kernel's counters do not account for (0 when it adds up)."""
    cc, sc = f["client_counters"], f["server_counters"]
    hidden = f["sent"] - f["client_wire"]  # calls that succeeded, datagram never on the wire
    not_delivered = f["server_wire"] - f["delivered"]
    return {
        "failed_calls": f["requested"] - f["sent"],
        "dropped_in_sender": hidden,
        "sender_unexplained": hidden - (cc["Udp.SndbufErrors"] - f["by_errno"].get("ENOBUFS", 0)),
        "lost_between_hosts": f["client_wire"] - f["server_wire"],
        "dropped_at_socket": not_delivered - sc["Udp.NoPorts"],
        "no_listener": sc["Udp.NoPorts"],
        "receiver_unexplained": not_delivered - sc["Udp.RcvbufErrors"] - sc["Udp.NoPorts"],
    }


def adds_up(f: Mapping[str, Any]) -> bool:
    places = ("failed_calls", "dropped_in_sender", "lost_between_hosts", "dropped_at_socket",
              "no_listener")
    return (f["sender_unexplained"] == 0 and f["receiver_unexplained"] == 0
            and f["lost_between_hosts"] >= 0
            and f["delivered"] + sum(f[p] for p in places) == f["requested"])


def udp_burst(ctx: Context, name: str, count: int, size: int, rcvbuf: int,
              delay: float = READ_DELAY) -> tuple[dict[str, Any], Observation[PairRun]]:
    """A fast bounded sender against a slow reader, captured on both hosts; facts attributed."""
    cfg = ctx.lab.config
    server = burst_server_argv(cfg.port, rcvbuf=rcvbuf, delay=delay)
    client = burst_client_argv(cfg.server_ip, cfg.port, [size], count=count)
    obs = observe(ctx, lambda: run_variant(ctx, server, client), name=name)
    run = obs.result
    facts: dict[str, Any] = {
        "requested": count, "size": size, "rcvbuf_set": rcvbuf, "read_delay": delay,
        "rcvbuf": field(run.server_events, "listening", "rcvbuf", None),
        "sent": field(run.client_events, "summary", "sent"),
        "by_errno": by_errno(run.client_events),
        "send_seconds": wire_seconds(obs.packets["client"], cfg.client_ip, cfg.port),
        "client_wire": wire_count(obs.packets["client"], cfg.client_ip, cfg.port),
        "server_wire": wire_count(obs.packets["server"], cfg.client_ip, cfg.port),
        "delivered": field(run.server_events, "summary", "received"),
        "capture_dropped": obs.capture.dropped,
        "client_counters": counter_facts(obs.counters["client"], SENDER_COUNTERS),
        "server_counters": counter_facts(obs.counters["server"], RECEIVER_COUNTERS),
    }
    return {**facts, **attribute(facts)}, obs


def wire_seconds(pkts: Sequence[Pkt], src: str, port: int) -> float | None:
    """First to last datagram from `src` to `port` in one capture: how long the burst took."""
    times = [d.pkt.ts for d in udp_datagrams(pkts, port) if d.pkt.src == src]
    return round(max(times) - min(times), 3) if times else None


def burst_lines(f: Mapping[str, Any]) -> list[str]:
    return [
        f"UDP: {f['requested']} datagrams of {f['size']} bytes asked for; {f['sent']} sendto() "
        f"calls succeeded, {f['failed_calls']} failed {f['by_errno'] or ''}".rstrip(),
        f"slow reader: SO_RCVBUF {f['rcvbuf_set']} asked, {f['rcvbuf']} granted, "
        f"{f['read_delay'] * 1000:g} ms before each recvfrom",
        f"on the wire: {f['client_wire']} in the client's capture, {f['server_wire']} in the "
        f"server's; {f['delivered']} delivered to the program",
        f"missing, by place: {f['dropped_in_sender']} dropped in the sender's kernel, "
        f"{f['lost_between_hosts']} lost between the hosts, {f['dropped_at_socket']} dropped at "
        f"the receiving socket, {f['no_listener']} with no listener",
        f"the counters {'account for every one' if adds_up(f) else 'do NOT add up'} (unexplained: "
        f"sender {f['sender_unexplained']}, receiver {f['receiver_unexplained']})",
        counters_line("client", f["client_counters"], SENDER_COUNTERS),
        counters_line("server", f["server_counters"], RECEIVER_COUNTERS),
        f"capture drops (tcpdump): {f['capture_dropped']}",
    ]


def sweep_point(ctx: Context, rcvbuf: int, count: int = BURST) -> dict[str, Any]:
    """One point of the plot: the same burst with another receive buffer (counters only)."""
    cfg = ctx.lab.config
    before = {h: snapshot(ctx.lab, h) for h in ("client", "server")}
    run = run_variant(ctx, burst_server_argv(cfg.port, rcvbuf=rcvbuf, delay=READ_DELAY),
                      burst_client_argv(cfg.server_ip, cfg.port, [DATAGRAM], count=count))
    after = {h: snapshot(ctx.lab, h) for h in ("client", "server")}
    server = delta(before["server"], after["server"])
    return {"rcvbuf_set": rcvbuf, "rcvbuf": field(run.server_events, "listening", "rcvbuf", None),
            "sent": field(run.client_events, "summary", "sent"),
            "delivered": field(run.server_events, "summary", "received"),
            "rcvbuf_errors": server.get("Udp.RcvbufErrors", 0)}


# ---------------------------------------------------------------- C6: TCP half
TCP_SERVER_COUNTERS = ("TcpExt.TCPWantZeroWindowAdv", "TcpExt.TCPToZeroWindowAdv",
                       "TcpExt.TCPFromZeroWindowAdv", "TcpExt.TCPRcvQDrop",
                       "TcpExt.TCPZeroWindowDrop", "TcpExt.PruneCalled", "TcpExt.RcvPruned",
                       "TcpExt.TCPBacklogDrop")
TCP_CLIENT_COUNTERS = ("Tcp.OutSegs", "Tcp.RetransSegs", "TcpExt.TCPWinProbe",
                       "TcpExt.TCPTimeouts")


def tcp_slow_reader(ctx: Context) -> tuple[dict[str, Any], Observation[PairRun]]:
    """The same volume over TCP to a reader as slow as the UDP one, captured."""
    cfg = ctx.lab.config
    # tcp_server.py reads as fast as it can: this reader is as slow as the UDP one (a small
    # SO_RCVBUF set before listen(), which the accepted socket inherits; a pause before every recv)
    server = instruments.argv("tcp_sink", cfg.port, rcvbuf=SMALL_RCVBUF, read_delay=READ_DELAY,
                              chunk=2048, most=30.0)
    client = tcp_client_argv(host=cfg.server_ip, port=cfg.port, message="x" * DATAGRAM, count=BURST)
    obs = observe(ctx, lambda: run_variant(ctx, server, client, "tcp"), name="tcp-slow-reader")
    run = obs.result
    flow = tcp_flow(obs.packets["server"], (cfg.server_ip, cfg.port))
    adverts = [s for s in flow.segments if not s.from_client and "S" not in s.flags] if flow else []
    windows = [s.window for s in adverts]
    step = max(1, len(adverts) // 200)
    facts = {
        "bytes_sent": sum(int(e.fields.get("n", 0)) for e in run.client_events if e.name == "sent"),
        "bytes_received": field(run.server_events, "summary", "received"),
        "rcvbuf": field(run.server_events, "listening", "rcvbuf", None),
        "wire_bytes": flow.bytes_sent(True) if flow else 0,
        "zero_windows": sum(1 for s in adverts if s.window == 0 and "R" not in s.flags),
        "window_min": min(windows, default=None), "window_max": max(windows, default=None),
        "window_series": [[round(s.pkt.ts - adverts[0].pkt.ts, 4), s.window]
                          for s in adverts[::step]],
        "retransmissions": len(flow.retransmissions) if flow else 0,
        "capture_dropped": obs.capture.dropped,
        "server_counters": counter_facts(obs.counters["server"], TCP_SERVER_COUNTERS),
        "client_counters": counter_facts(obs.counters["client"], TCP_CLIENT_COUNTERS),
    }
    return facts, obs


def tcp_lines(f: Mapping[str, Any]) -> list[str]:
    return [
        f"TCP: the client sent {f['bytes_sent']} bytes ({BURST} sendall() calls), the slow reader "
        f"(SO_RCVBUF {f['rcvbuf']}) received {f['bytes_received']}",
        f"the server advertised windows from {f['window_min']} to {f['window_max']} bytes, "
        f"{f['zero_windows']} of them zero; {f['retransmissions']} retransmissions on the wire",
        counters_line("server", f["server_counters"], TCP_SERVER_COUNTERS),
        counters_line("client", f["client_counters"], TCP_CLIENT_COUNTERS),
        f"capture drops (tcpdump): {f['capture_dropped']}",
    ]


# ---------------------------------------------------------------- C6
def run_c6(ctx: Context) -> Evidence:
    udp, uobs = udp_burst(ctx, "udp-burst", BURST, DATAGRAM, SMALL_RCVBUF)
    sweep = [{"rcvbuf_set": udp["rcvbuf_set"], "rcvbuf": udp["rcvbuf"], "sent": udp["sent"],
              "delivered": udp["delivered"],
              "rcvbuf_errors": udp["server_counters"]["Udp.RcvbufErrors"]}]
    for rcvbuf in SWEEP_RCVBUFS[1:]:
        ctx.progress(f"udp burst with SO_RCVBUF {rcvbuf}")
        sweep.append(sweep_point(ctx, rcvbuf))
    tcp, tobs = tcp_slow_reader(ctx)
    observations = (*burst_lines(udp),
                    *(f"sweep: SO_RCVBUF {p['rcvbuf']}: sent {p['sent']}, delivered "
                      f"{p['delivered']}, Udp.RcvbufErrors +{p['rcvbuf_errors']}" for p in sweep),
                    *tcp_lines(tcp))
    events = {f"udp {h}": evs for h, evs in events_of(uobs.result).items()}
    events |= {f"tcp {h}": [e for e in evs if e["event"] != "sent"][:50]
               for h, evs in events_of(tobs.result).items()}
    artifacts = {f"{name} {h} pcap": str(o.capture[h].pcap) for name, o in
                 (("udp burst", uobs), ("tcp slow reader", tobs)) for h in o.capture.hosts}
    plot = {"title": f"{BURST:,} datagrams at full speed against a slow reader",
            "x": "rcvbuf", "series": ["sent", "delivered", "rcvbuf_errors"],
            "x_title": "the receiver's SO_RCVBUF (bytes)", "y_title": "datagrams",
            "points": [{k: p[k] for k in ("rcvbuf", "sent", "delivered", "rcvbuf_errors")}
                       for p in sweep]}
    return Evidence("C6", {"udp": udp, "sweep": sweep, "tcp": tcp, "plot": plot}, observations,
                    events, artifacts)


ONE_SEGMENT = 1460  # bytes: an Ethernet MSS


def judge_c6(ev: Evidence) -> Verdict:
    udp, tcp = ev.facts["udp"], ev.facts["tcp"]
    if not udp["sent"] or not tcp["bytes_sent"] or udp["capture_dropped"] or tcp["capture_dropped"]:
        return Verdict("C6", "inconclusive", f"the UDP sender sent {udp['sent']} datagrams, the "
                       f"TCP one {tcp['bytes_sent']} bytes, and the captures dropped "
                       f"{udp['capture_dropped'] + tcp['capture_dropped']} packets")
    if not adds_up(udp):
        return Verdict("C6", "inconclusive", f"of {udp['requested']} datagrams {udp['delivered']} "
                       f"were delivered but the counters leave {udp['sender_unexplained']} (sender) "
                       f"and {udp['receiver_unexplained']} (receiver) unexplained")
    drops = udp["dropped_at_socket"]
    udp_text = (f"{udp['sent']} UDP datagrams sent in {udp['send_seconds']} s, {udp['server_wire']} "
                f"reached the server's host, {udp['delivered']} were delivered and {drops} "
                f"dropped at the socket (Udp.RcvbufErrors +"
                f"{udp['server_counters']['Udp.RcvbufErrors']}, receive buffer {udp['rcvbuf']})")
    whole = tcp["bytes_received"] == tcp["bytes_sent"]
    closed = tcp["zero_windows"] > 0 or tcp["server_counters"]["TcpExt.TCPToZeroWindowAdv"] > 0
    # A window of one segment or less throttles the sender as surely as a zero one does
    # (Linux does not advertise less than a segment until it can say zero).
    tight = tcp["window_min"] is not None and tcp["window_min"] <= ONE_SEGMENT
    window = (f"closing to 0 {tcp['zero_windows']} times" if closed
              else f"shrinking to {tcp['window_min']} bytes, one segment" if tight
              else "never closing")
    closed = closed or tight
    tcp_text = (f"TCP delivered {tcp['bytes_received']} of {tcp['bytes_sent']} bytes with the "
                f"server's window {window} (smallest {tcp['window_min']} bytes)")
    if not whole:
        return Verdict("C6", "does not hold", f"{udp_text}, but {tcp_text}")
    status: Status = "holds" if drops > 0 and closed else "holds in part" if drops or closed \
        else "does not hold"
    return Verdict("C6", status, f"{udp_text}; {tcp_text}")


C6 = Experiment("C6", "UDP overflows a slow reader, TCP's window does not",
                "UDP is unreliable: a fast sender can overflow the receiver's socket receive "
                "buffer and datagrams are dropped; TCP cannot overflow its receive buffer because "
                "of flow control (the window).", run_c6, judge_c6)


# ---------------------------------------------------------------- C10
def big_datagrams(ctx: Context) -> tuple[dict[str, Any], Observation[PairRun]]:
    """Three datagrams, each bigger than the whole small buffer, while the reader sleeps."""
    cfg = ctx.lab.config
    server = burst_server_argv(cfg.port, rcvbuf=SMALL_RCVBUF, delay=0.5)
    client = burst_client_argv(cfg.server_ip, cfg.port, [C10_BIG], count=3)
    obs = observe(ctx, lambda: run_variant(ctx, server, client), name="udp-big-datagrams")
    run, sc = obs.result, obs.counters["server"]
    return {"size": C10_BIG, "rcvbuf": field(run.server_events, "listening", "rcvbuf", None),
            "sent": field(run.client_events, "summary", "sent"),
            "server_wire": wire_count(obs.packets["server"], cfg.client_ip, cfg.port),
            "delivered": field(run.server_events, "summary", "received"),
            "delivered_bytes": field(run.server_events, "summary", "bytes"),
            "capture_dropped": obs.capture.dropped,
            "server_counters": counter_facts(sc, RECEIVER_COUNTERS)}, obs


def run_c10(ctx: Context) -> Evidence:
    burst, bobs = udp_burst(ctx, "udp-rcvbuf", C10_BURST, DATAGRAM, SMALL_RCVBUF)
    big, gobs = big_datagrams(ctx)
    observations = (
        *burst_lines(burst),
        f"{big['sent']} datagrams of {big['size']} bytes to a reader with a {big['rcvbuf']}-byte "
        f"receive buffer, asleep when they came: {big['server_wire']} reached the host, "
        f"{big['delivered']} delivered ({big['delivered_bytes']} bytes)",
        counters_line("server", big["server_counters"], RECEIVER_COUNTERS),
    )
    events = {f"{tag} {h}": evs for tag, o in (("burst", bobs), ("big", gobs))
              for h, evs in events_of(o.result).items()}
    artifacts = {f"{tag} {h} pcap": str(o.capture[h].pcap) for tag, o in
                 (("burst", bobs), ("big", gobs)) for h in o.capture.hosts}
    return Evidence("C10", {"burst": burst, "big": big}, observations, events, artifacts)


def judge_c10(ev: Evidence) -> Verdict:
    burst, big = ev.facts["burst"], ev.facts["big"]
    if not burst["server_wire"] or burst["capture_dropped"] or big["capture_dropped"]:
        return Verdict("C10", "inconclusive", f"{burst['server_wire']} datagrams reached the "
                       f"server; the captures dropped {burst['capture_dropped']} and "
                       f"{big['capture_dropped']} packets")
    counted = burst["server_counters"]["Udp.RcvbufErrors"]
    text = (f"{burst['server_wire']} datagrams reached the slow reader's host, "
            f"{burst['delivered']} were delivered and {burst['dropped_at_socket']} discarded at "
            f"its {burst['rcvbuf']}-byte receive buffer (Udp.RcvbufErrors +{counted})")
    if not adds_up(burst):
        return Verdict("C10", "inconclusive", f"{text}, but the counters leave "
                       f"{burst['receiver_unexplained']} unexplained")
    if not burst["dropped_at_socket"]:
        return Verdict("C10", "does not hold", f"{text}: the slow reader lost nothing")
    first_in = big["delivered"] >= 1 and big["size"] > (big["rcvbuf"] or 0)
    big_text = (f"; of {big['server_wire']} datagrams of {big['size']} bytes, each larger than "
                f"the whole buffer, {big['delivered']} got in (Udp.RcvbufErrors "
                f"+{big['server_counters']['Udp.RcvbufErrors']} for the rest)")
    if first_in:
        return Verdict("C10", "holds in part", text + big_text + ": Linux discards only when the "
                       "buffer is already full, so a datagram bigger than it enters an empty queue")
    return Verdict("C10", "holds", text + big_text)


C10 = Experiment("C10", "The receive buffer discards what does not fit",
                 "TCP and UDP both have socket receive buffers; when a UDP datagram does not fit, "
                 "it is discarded; a fast UDP sender can swamp a slow receiver.", run_c10, judge_c10)

EXPERIMENTS = (C6, C10)
