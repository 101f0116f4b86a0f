"""Exercises on a shaped link: seeded loss and where it happened, and the first SYN-ACK dropped
(experiment S2's fault) with the retransmission timer. The shaping is socketlab.act.shaping
(lab-shape in the host, cleared in a `finally`); the worksheet says what was shaped, the
capture shows what it did."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from socketlab.act import shaping
from socketlab.act.programs import Options, client_argv, run_pair, run_programs, server_argv
from socketlab.exercises.model import (
    Answer,
    Exercise,
    Material,
    Recording,
    Unanswerable,
    ms_between,
    only,
    questions,
    record,
    words,
)
from socketlab.exercises.tcp import clock
from socketlab.exercises.udp import datagrams
from socketlab.experiments.shaped import S2_FAULT
from socketlab.observe.analysis import Pkt
from socketlab.observe.observation import Context

BASE = 100  # datagram i carries BASE + i bytes: its size names it in any capture
TRIES = 3  # seeds tried until the loss drops at least one datagram with data


# ---------------------------------------------------------------- loss
def vary_loss(rng: random.Random) -> dict[str, Any]:
    return {"loss": rng.choice((15, 20, 25, 30)), "seed": rng.randrange(1, 100_000),
            "count": rng.randint(20, 30), "message": words(rng, 3),
            "port": rng.randrange(20000, 30000), "base": BASE}


def run_loss(ctx: Context, p: Mapping[str, Any]) -> Recording:
    """Datagrams 1..count under seeded loss on the client's egress; the seed moves on (and the
    worksheet says so) in the rare run where nothing with data was lost."""
    opts = Options("udp", message=p["message"], bufsize=2048, port=p["port"])
    client = client_argv(opts, ctx.lab.config.server_ip, p["port"])
    for i in range(1, p["count"] + 1):
        client += ["--size", str(BASE + i)]
    server = [*server_argv(opts, p["port"]), "--timeout", "2"]
    for seed in range(p["seed"], p["seed"] + TRIES):
        spec = f"loss {p['loss']}% seed {seed}"
        with shaping.shaped(ctx.lab, "client", spec, "egress", progress=ctx.progress):
            rec = record(ctx, lambda: run_programs(ctx.lab, opts, server, client), "loss",
                         p["port"])
        sent = len([e for e in rec.events["client"] if e["event"] == "sent" and e.get("n")])
        got = len([e for e in rec.events["server"] if e["event"] == "recvfrom" and e.get("n")])
        if got < sent:
            note = f"the client's egress was shaped with `{spec}` while it sent"
            return Recording(rec.pcaps, rec.events, (note,), rec.dropped)
    raise Unanswerable(f"{TRIES} seeded runs lost no datagram")


def numbers(pkts: list[Pkt]) -> list[int]:
    return sorted(p.udp_len - BASE for p in pkts if p.udp_len and p.udp_len > BASE)


def sent_numbers(m: Material) -> list[int]:
    return [e["n"] - BASE for e in m.all_events("client", "sent") if e.get("n")]


def lost(m: Material) -> list[int]:
    found = set(numbers(datagrams(m, "server")))
    return [i for i in sent_numbers(m) if i not in found]


def in_client(m: Material) -> Answer:
    grams = [p for p in datagrams(m, "client") if p.udp_len]
    return Answer(len(grams), f"{m.frames('client', grams, 40)}: {len(grams)} datagrams with data")


def in_server(m: Material) -> Answer:
    grams = [p for p in datagrams(m, "server") if p.udp_len]
    return Answer(len(grams), f"{m.frames('server', grams, 40)}: {len(grams)} datagrams with data")


def sent_count(m: Material) -> Answer:
    sent = sent_numbers(m)
    grams = [p for p in datagrams(m, "client") if p.udp_len]
    return Answer(len(sent), f"the client printed {len(sent)} `sent` events with data "
                             f"(datagrams 1-{max(sent, default=0)}); its capture shows "
                             f"{len(grams)} of them ({m.frames('client', grams, 40)})")


def arrived(m: Material) -> str:
    grams = [p for p in datagrams(m, "server") if p.udp_len]
    return (f"{m.frames('server', grams, 40)} carry datagrams {numbers(grams)} (UDP payload - "
            f"{BASE})")


def lost_numbers(m: Material) -> Answer:
    gone = lost(m)
    return Answer(gone, f"the client sent datagrams 1-{max(sent_numbers(m), default=0)}; "
                        f"{arrived(m)}: {gone} never arrived")


PLACES = {"a": "in the client's host, before its capture point",
          "b": "between the hosts: seen leaving the client, never at the server",
          "c": "in the server's host, after its capture point", "d": "in more than one place"}


def lost_where(m: Material) -> Answer:
    gone = lost(m)
    if not gone:
        raise Unanswerable("no datagram was lost")
    at_client = set(numbers(datagrams(m, "client")))
    at_server = set(numbers(datagrams(m, "server")))
    places = {"a" if i not in at_client else "b" if i not in at_server else "c" for i in gone}
    letter = places.pop() if len(places) == 1 else "d"
    seen = sorted(set(gone) & at_client)
    grams = [p for p in datagrams(m, "client") if p.udp_len]
    return Answer(letter, f"{m.frames('client', grams, 40)} carry datagrams "
                          f"{sorted(at_client)}: of the lost {gone}, client.pcap shows "
                          f"{seen or 'none'}, so the loss happened {PLACES[letter]}")


def lost_share(m: Material) -> Answer:
    gone, sent = lost(m), sent_numbers(m)
    if not sent:
        raise Unanswerable("the client sent nothing")
    pct = round(100 * len(gone) / len(sent), 2)
    return Answer(pct, f"{arrived(m)}: {len(gone)} of the {len(sent)} sent were lost, "
                       f"{pct:g} %")


def all_delivered(m: Material) -> Answer:
    """Counted from the events as the worksheet shows them (their sizes held back): every
    `recvfrom` but the empty datagram's, which the `stop reason=empty` event follows."""
    captured = [p for p in datagrams(m, "server") if p.udp_len]
    calls = m.all_events("server", "recvfrom")
    empty = int(any(e.get("reason") == "empty" for e in m.all_events("server", "stop")))
    read = len(calls) - empty
    return Answer(read >= len(captured), f"{m.frames('server', captured, 40)}: "
                                         f"{len(captured)} datagrams with data reached the "
                                         f"server's capture; its program printed {len(calls)} "
                                         f"`recvfrom` events, {empty} of them the empty datagram "
                                         f"that stopped it: it read {read}")


LOSS = Exercise(
    "loss", "Loss on a shaped link, and where it happened",
    "The client sent UDP datagrams 1, 2, 3, ... to port {port}, then an empty one: datagram i "
    "carries {base} + i bytes, so its size names it; the client's link was shaped with {loss}% "
    "loss. Both hosts captured. The server's `recvfrom` events do not show the sizes it read.",
    vary_loss, run_loss, questions(
        ("How many datagrams with data does client.pcap show?", "int", in_client),
        ("How many datagrams with data does server.pcap show?", "int", in_server),
        ("How many datagrams with data did the client's program send (its `sent` events)?",
         "int", sent_count),
        ("Which datagram numbers never reached the server (a list)?", "ints", lost_numbers),
        ("Where were they lost?", "choice", lost_where, {"choices": PLACES}),
        ("What share of the datagrams with data was lost, in percent?", "num", lost_share,
         {"unit": "%", "tolerance": 0.5, "tolerance_pct": 0}),
        ("Did every datagram with data in server.pcap reach the server's program (its "
         "`recvfrom` events, not counting the empty datagram's: see its `stop` event)?", "yesno",
         all_delivered),
    ), hide={"recvfrom": ("data", "n"), "sent": ("data",)}, varies="loss rate, shaping seed, count, port")


# ---------------------------------------------------------------- first SYN-ACK dropped
def vary_synack(rng: random.Random) -> dict[str, Any]:
    return {"delay_ms": rng.randrange(5, 31), "message": words(rng, 2),
            "port": rng.randrange(20000, 30000)}


def run_synack(ctx: Context, p: Mapping[str, Any]) -> Recording:
    opts = Options("tcp", message=p["message"], port=p["port"])
    spec = f"delay {p['delay_ms']}ms"
    with shaping.shaped(ctx.lab, "server", spec, "egress", faults=[S2_FAULT],
                        progress=ctx.progress) as shaped:
        rec = record(ctx, lambda: run_pair(ctx.lab, opts), "synack", p["port"], immediate=True)
    fired = [f for f in shaped.get("nfq_faults", []) if f.get("action") == "drop"]
    if not fired:
        raise Unanswerable("the fault never fired: no SYN-ACK was dropped")
    note = (f"the server's egress was shaped with `{spec}` and the fault `drop tcp flags=SA "
            f"nth=1`, which dropped one SYN-ACK")
    return Recording(rec.pcaps, rec.events, (note,), rec.dropped)


def syns(m: Material) -> list[Pkt]:
    found = [p for p in m.sent_by("client", "client", "tcp")
             if p.flags == "S" and p.dport == m.port]
    if len(found) < 2:
        raise Unanswerable(f"client.pcap shows {len(found)} SYN(s), not a retransmission")
    return found


def syn_count(m: Material) -> Answer:
    found = syns(m)
    return Answer(len(found), f"{m.frames('client', found)} are the client's SYNs: {len(found)}")


def syn_timer(m: Material) -> Answer:
    first, again = syns(m)[:2]
    ms = ms_between(first.ts, again.ts)
    return Answer(ms, f"{m.frame('client', first)} (SYN) left at {clock(first.ts)}, "
                      f"{m.frame('client', again)} (the SYN again) at {clock(again.ts)}: "
                      f"{ms:.3f} ms, the SYN's retransmission timeout")


def dropped_in_capture(m: Material) -> Answer:
    again = [p for p in m.sent_by("server", "client", "tcp") if p.flags == "S"]
    if len(again) < 2:
        raise Unanswerable("server.pcap lacks the retransmitted SYN")
    early = [p for p in m.sent_by("server", "server", "tcp")
             if "S" in p.flags and "A" in p.flags and p.ts < again[1].ts]
    return Answer(bool(early), f"server.pcap's SYN-ACKs before the SYN came again "
                               f"({m.frame('server', again[1])}): "
                               f"{m.frames('server', early) if early else 'none'}")


def resent_frame(m: Material) -> Answer:
    again = syns(m)[1]
    return Answer(again.index + 1, f"{m.frame('client', again)} is the SYN again (same sequence "
                                   f"number {again.seq}, {ms_between(syns(m)[0].ts, again.ts):.0f}"
                                   " ms after the first)")


def connect_took(m: Material) -> Answer:
    first = syns(m)[0]
    done = m.event("client", "connected")
    ms = ms_between(first.ts, done["t"])
    return Answer(ms, f"{m.frame('client', first)}, the first SYN, left at {clock(first.ts)}; "
                      f"connect() returned at {clock(done['t'])} (the client's `connected` "
                      f"event): {ms:.3f} ms later")


def same_seq(m: Material) -> Answer:
    first, again = syns(m)[:2]
    return Answer(first.seq == again.seq, f"{m.frame('client', first)} carries {first.seq}, "
                                          f"{m.frame('client', again)} carries {again.seq}")


def handshake_rtt(m: Material) -> Answer:
    again = syns(m)[1]
    reply = only([p for p in m.sent_by("client", "server", "tcp") if "S" in p.flags
                  and "A" in p.flags and p.ts > again.ts], "SYN-ACK after the SYN came again")
    ms = ms_between(again.ts, reply.ts)
    return Answer(ms, f"{m.frame('client', again)} (the SYN again) left at {clock(again.ts)}; "
                      f"{m.frame('client', reply)} (SYN-ACK) arrived at {clock(reply.ts)}: "
                      f"{ms:.3f} ms")


def synacks_seen(m: Material) -> Answer:
    found = [p for p in m.sent_by("client", "server", "tcp") if "S" in p.flags and "A" in p.flags]
    return Answer(len(found), f"{m.frames('client', found) if found else 'no frame'}: "
                              f"{len(found)} SYN-ACK{'s' * (len(found) != 1)} reached the client")


SYNACK = Exercise(
    "synack", "The first SYN-ACK dropped, and the retransmission timer",
    "The client connected to port {port} and sent \"{message}\". The server's link delayed "
    "every packet by {delay_ms} ms, and its first SYN-ACK was dropped on the way out.",
    vary_synack, run_synack, questions(
        ("How many SYNs did the client send (client.pcap)?", "int", syn_count),
        ("How many milliseconds after its first SYN did the client send the SYN again?", "num",
         syn_timer, {"unit": "ms"}),
        ("Does server.pcap show a SYN-ACK before the SYN came again?", "yesno",
         dropped_in_capture),
        ("In which frame of client.pcap did the SYN leave again?", "frame", resent_frame),
        ("How many milliseconds after the first SYN did connect() return (the client's "
         "`connected` event)?", "num", connect_took, {"unit": "ms"}),
        ("Does the SYN sent again carry the same sequence number as the first?", "yesno",
         same_seq),
        ("How many milliseconds passed between the SYN sent again and the SYN-ACK that answered "
         "it (client.pcap)?", "num", handshake_rtt, {"unit": "ms", "tolerance": 0.3,
                                                     "tolerance_pct": 5}),
        ("How many SYN-ACKs reached the client (client.pcap)?", "int", synacks_seen),
    ), varies="delay, message, port")

EXERCISES = (LOSS, SYNACK)
