"""TCP exercises: the handshake and its numbers, the byte stream and its recv() calls, the
receive window closing under a slow reader. Each runs the post's programs (run_pair) under a
capture on both hosts; each answer is read from the student's own pcaps."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from socketlab.act.programs import Options, run_pair
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
from socketlab.observe.analysis import Handshake, Segment, TcpFlow, tcp_flow
from socketlab.observe.observation import Context
from socketlab.observe.pcap import Pkt


def flow(m: Material, host: str = "client") -> TcpFlow:
    """The connection to the exercise's port in `host`'s capture, with its whole handshake."""
    found = tcp_flow(m.pcaps[host], (m.hosts["server"], m.port))
    if found is None or found.handshake is None or found.handshake.synack is None:
        raise Unanswerable(f"{host}.pcap has no whole handshake to port {m.port}")
    return found


def shake(f: TcpFlow) -> tuple[Handshake, Pkt]:
    """A flow's handshake and its SYN-ACK (flow() has refused a flow without them)."""
    if f.handshake is None or f.handshake.synack is None:
        raise Unanswerable("the capture has no whole handshake")
    return f.handshake, f.handshake.synack


def clock(t: float) -> str:
    return f"{t:.6f}"


def from_server(f: TcpFlow) -> list[Segment]:
    return [s for s in f.segments if not s.from_client]


def client_data(f: TcpFlow) -> list[Segment]:
    return [s for s in f.data if s.from_client]


# ---------------------------------------------------------------- handshake
# The server's receive buffer sets its window scale and windows; its TCP_MAXSEG the MSS of its
# SYN-ACK: so q3, q4 and q6 differ between students too (the kernel's defaults give everyone
# 1460, 7 or 10, and 65536).
RCVBUFS = (4096, 8192, 16384, 32768, 65536, 131072, 262144)


def vary_handshake(rng: random.Random) -> dict[str, Any]:
    return {"message": words(rng, 2), "port": rng.randrange(20000, 30000),
            "accept_delay": round(rng.uniform(0.2, 0.8), 2),
            "mss": rng.randrange(536, 1449, 4), "rcvbuf": rng.choice(RCVBUFS)}


def run_handshake(ctx: Context, p: Mapping[str, Any]) -> Recording:
    opts = Options("tcp", message=p["message"], port=p["port"])
    extra = ["--accept-delay", str(p["accept_delay"])]
    if "mss" in p:  # worksheets made before these varied have neither
        extra += ["--mss", str(p["mss"]), "--rcvbuf", str(p["rcvbuf"])]
    return record(ctx, lambda: run_pair(ctx.lab, opts, server_extra=extra), "handshake", p["port"])


def syn_seq(m: Material) -> Answer:
    syn = shake(flow(m))[0].syn
    return Answer(syn.seq, f"{m.frame('client', syn)} is the client's SYN: its raw sequence "
                           f"number is {syn.seq} (Wireshark's relative 0)",
                  near=((0, "the relative number; the question asks for the raw one"),))


def synack_ack(m: Material) -> Answer:
    hs, synack = shake(flow(m))
    rel = hs.relative(synack)[1]
    return Answer(synack.ack, f"{m.frame('client', synack)} is the SYN-ACK: it "
                                 f"acknowledges {synack.ack} (relative {rel}), the SYN's "
                                 f"sequence number {hs.syn.seq} + 1 (a SYN counts as one byte)",
                  (rel,))


def synack_mss(m: Material) -> Answer:
    synack = shake(flow(m))[1]
    if synack.mss is None:
        raise Unanswerable("the server's SYN-ACK carries no MSS option")
    return Answer(synack.mss, f"{m.frame('client', synack)} (the SYN-ACK) carries the option "
                              f"MSS={synack.mss}")


def synack_wscale(m: Material) -> Answer:
    synack = shake(flow(m))[1]
    if synack.wscale is None:
        return Answer(0, f"{m.frame('client', synack)} (the SYN-ACK) carries no window scale "
                         "option: the server's windows are not scaled (shift 0)")
    return Answer(synack.wscale, f"{m.frame('client', synack)} (the SYN-ACK) carries the option "
                                 f"window scale {synack.wscale} (multiply by "
                                 f"{2 ** synack.wscale})")


def first_data_len(m: Material) -> Answer:
    first = only(client_data(flow(m)), "data segment from the client")
    return Answer(first.length, f"{m.frame('client', first.pkt)} is the client's first segment "
                                f"with data: {first.length} bytes of payload")


def window_after_data(m: Material) -> Answer:
    f = flow(m)
    first = only(client_data(f), "data segment from the client")
    ack = only([s for s in from_server(f) if "A" in s.flags and s.pkt.ts >= first.pkt.ts
                and s.rel_ack >= first.rel_seq + first.length], "ACK of the client's data")
    shift = shake(f)[0].wscales[1]
    return Answer(ack.window, f"{m.frame('client', ack.pkt)} acknowledges the data (ack "
                              f"{ack.rel_ack}); its window field {ack.pkt.window} × 2^{shift} = "
                              f"{ack.window} (Wireshark's calculated window size)")


def client_fin(m: Material) -> Answer:
    fin = only([s for s in flow(m).teardown if s.from_client and "F" in s.flags],
               "FIN from the client")
    return Answer(fin.rel_seq, f"{m.frame('client', fin.pkt)} is the client's FIN: relative "
                               f"sequence number {fin.rel_seq} (raw {fin.pkt.seq})",
                  near=((fin.pkt.seq, "the raw number; the question asks for the relative one"),))


def accept_after_ack(m: Material) -> Answer:
    ack = shake(flow(m, "server"))[0].ack
    if ack is None:
        raise Unanswerable("server.pcap has no handshake ACK")
    accepted = m.event("server", "accepted")
    ms = ms_between(ack.ts, accepted["t"])
    return Answer(ms, f"{m.frame('server', ack)}, the handshake's last ACK, reached the server "
                      f"at {clock(ack.ts)}; accept() returned at {clock(accepted['t'])} (the "
                      f"server's `accepted` event): {ms:.3f} ms later")


HANDSHAKE = Exercise(
    "handshake", "The three-way handshake and its numbers",
    "The client connected to the server on port {port} and sent \"{message}\"; the server slept "
    "{accept_delay} s between listen() and accept(). Both hosts captured the exchange.",
    vary_handshake, run_handshake, questions(
        ("In client.pcap, what is the raw (absolute) sequence number of the client's SYN?",
         "int", syn_seq),
        ("What acknowledgement number does the server's SYN-ACK carry? (raw or relative)",
         "int", synack_ack),
        ("What MSS did the server announce in its SYN-ACK (bytes)?", "int", synack_mss),
        ("What window scale shift count did the server announce in its SYN-ACK?", "int",
         synack_wscale),
        ("How many bytes of payload does the client's first data segment carry?", "int",
         first_data_len),
        ("What window does the server advertise in the ACK of that data, as Wireshark "
         "calculates it (scaled)?", "int", window_after_data),
        ("What is the relative sequence number of the client's FIN?", "int", client_fin),
        ("How many milliseconds after the handshake's last ACK reached the server (server.pcap) "
         "did the server's accept() return (its `accepted` event)?", "num", accept_after_ack,
         {"unit": "ms"}),
    ), hide={"listening": ("mss",)},
    varies="message, port, accept delay, the server's MSS and receive buffer")


# ---------------------------------------------------------------- byte stream
def vary_bytestream(rng: random.Random) -> dict[str, Any]:
    return {"message": words(rng, 2), "count": rng.randint(2, 3), "bufsize": rng.randint(2, 5),
            "port": rng.randrange(20000, 30000), "k": rng.randint(2, 4)}


def run_bytestream(ctx: Context, p: Mapping[str, Any]) -> Recording:
    opts = Options("tcp", message=p["message"], bufsize=p["bufsize"], count=p["count"],
                   port=p["port"])
    return record(ctx, lambda: run_pair(ctx.lab, opts), "bytestream", p["port"])


def stream(m: Material) -> tuple[bytes, list[Segment]]:
    """The client's bytes as the server's capture shows them, in sequence order."""
    segs = sorted((s for s in client_data(flow(m, "server")) if not s.retransmission),
                  key=lambda s: s.rel_seq)
    if any(len(s.pkt.payload) != s.length for s in segs):
        raise Unanswerable("a data segment is longer than the payload the dissection keeps")
    return b"".join(s.pkt.payload for s in segs), segs


def recv_sizes(m: Material) -> list[int]:
    return [e["n"] for e in m.all_events("server", "recv") if e.get("n")]


def kth_recv(m: Material) -> tuple[int, int, bytes, list[Segment]]:
    """(offset, size, bytes) of recv() call #k in the stream, and the stream's segments."""
    data, segs = stream(m)
    sizes, k = recv_sizes(m), m.params["k"]
    if len(sizes) < k:
        raise Unanswerable(f"the server made {len(sizes)} recv() calls that returned data")
    off = sum(sizes[:k - 1])
    return off, sizes[k - 1], data[off:off + sizes[k - 1]], segs


def data_segments(m: Material) -> Answer:
    data = client_data(flow(m))
    return Answer(len(data), f"{m.frames('client', [s.pkt for s in data])} carry the client's "
                             f"data: {len(data)} segment{'s' * (len(data) != 1)}")


def data_bytes(m: Material) -> Answer:
    f = flow(m)
    data = client_data(f)
    return Answer(f.bytes_sent(), f"{m.frames('client', [s.pkt for s in data])} carry "
                                  f"{' + '.join(str(s.length) for s in data)} = {f.bytes_sent()} "
                                  "bytes")


def recv_bytes(m: Material) -> Answer:
    off, n, got, segs = kth_recv(m)
    text = got.decode("ascii", "replace")
    return Answer(text, f"the stream ({m.frames('server', [s.pkt for s in segs])}) reads "
                        f"\"{stream(m)[0].decode('ascii', 'replace')}\"; the recv() calls before "
                        f"#{m.params['k']} returned {off} bytes, so it returned bytes {off + 1}-"
                        f"{off + n}: \"{text}\"")


def recv_rel_seq(m: Material) -> Answer:
    off, _, _, segs = kth_recv(m)
    isn = shake(flow(m, "server"))[0].syn.seq
    seg = next(s for s in segs if s.rel_seq <= 1 + off < s.rel_seq + s.length)
    return Answer(1 + off, f"recv() call #{m.params['k']} starts at byte {off + 1} of the stream, "
                           f"relative sequence number {1 + off} (raw {(isn + 1 + off) % 2**32}), "
                           f"inside {m.frame('server', seg.pkt)}",
                  near=(((isn + 1 + off) % 2**32, "the raw number; the question asks for the "
                                                  "relative one"),))


def recv_frame(m: Material) -> Answer:
    off, _, _, segs = kth_recv(m)
    seg = next(s for s in segs if s.rel_seq <= 1 + off < s.rel_seq + s.length)
    return Answer(seg.pkt.index + 1, f"{m.frame('server', seg.pkt)} carries relative sequence "
                                     f"numbers {seg.rel_seq}-{seg.rel_seq + seg.length - 1}, "
                                     f"which hold byte {1 + off}, the first that recv() call "
                                     f"#{m.params['k']} returned")


def ack_of_all(m: Material) -> Answer:
    f = flow(m, "server")
    total = f.bytes_sent()
    ack = only([s for s in from_server(f) if "A" in s.flags and "S" not in s.flags
                and s.rel_ack >= 1 + total], "ACK of all the client's data")
    return Answer(ack.rel_ack, f"{m.frame('server', ack.pkt)} is the server's first ACK that "
                               f"covers all {total} bytes: ack {ack.rel_ack} (raw "
                               f"{ack.pkt.ack})", (ack.pkt.ack,))


def recv_lag(m: Material, host: str = "server") -> Answer:
    """From the client's last data segment (in `host`'s capture) to the server's last recv()
    that returned data: how far the reader lagged the wire."""
    last = max(client_data(flow(m, host)), key=lambda s: s.pkt.ts)
    recv = [e for e in m.all_events("server", "recv") if e.get("n")]
    if not recv:
        raise Unanswerable("the server's recv() never returned data")
    ms = ms_between(last.pkt.ts, recv[-1]["t"])
    return Answer(ms, f"{m.frame(host, last.pkt)}, the client's last data segment, was seen at "
                      f"{clock(last.pkt.ts)}; the last recv() that returned data returned at "
                      f"{clock(recv[-1]['t'])}: {ms:.3f} ms later")


BYTESTREAM = Exercise(
    "bytestream", "A byte stream read in pieces",
    "The client sent \"{message}\" {count} times on one connection to port {port}; the server "
    "read it with recv({bufsize}) until the client closed. The server's events give how many "
    "bytes each recv() returned, not which.",
    vary_bytestream, run_bytestream, questions(
        ("How many TCP segments carrying data did the client send (client.pcap)?", "int",
         data_segments),
        ("How many bytes of data did the client send in all?", "int", data_bytes),
        ("Which bytes did the server's recv() call #{k} return (as text)?", "text", recv_bytes),
        ("What is the relative sequence number of the first byte recv() call #{k} returned?",
         "int", recv_rel_seq),
        ("In which frame of server.pcap did that byte arrive?", "frame", recv_frame),
        ("What acknowledgement number does the server's first ACK of all the client's data "
         "carry (server.pcap; relative or raw)?", "int", ack_of_all),
        ("How many milliseconds after the last data segment reached the server did the last "
         "recv() that returned data return?", "num", recv_lag, {"unit": "ms"}),
    ), hide={"recv": ("data",)}, varies="message, send count, receive size, port")


# ---------------------------------------------------------------- receive window
def vary_window(rng: random.Random) -> dict[str, Any]:
    text = (words(rng, 4) + ";") * 80
    return {"message": text[:1000], "count": rng.randint(20, 35),
            "port": rng.randrange(20000, 30000), "rcvbuf": rng.choice((2048, 3072, 4096)),
            "bufsize": rng.choice((256, 512)), "read_delay": round(rng.uniform(0.008, 0.012), 4)}


def run_window(ctx: Context, p: Mapping[str, Any]) -> Recording:
    opts = Options("tcp", message=p["message"], bufsize=p["bufsize"], count=p["count"],
                   port=p["port"])
    extra = ["--rcvbuf", str(p["rcvbuf"]), "--read-delay", str(p["read_delay"])]
    return record(ctx, lambda: run_pair(ctx.lab, opts, server_extra=extra), "window", p["port"])


def zero_windows(m: Material) -> list[Segment]:
    found = [s for s in flow(m).zero_windows if not s.from_client]
    if not found:
        raise Unanswerable("the server never advertised a zero window")
    return found


def largest_window(m: Material) -> Answer:
    segs = [s for s in from_server(flow(m)) if "S" not in s.flags]
    top = max(segs, key=lambda s: s.window)
    return Answer(top.window, f"{m.frame('client', top.pkt)} advertises {top.window} (field "
                              f"{top.pkt.window}, scaled), the largest after the handshake")


def first_zero(m: Material) -> Answer:
    zero = zero_windows(m)[0]
    return Answer(zero.pkt.index + 1, f"{m.frame('client', zero.pkt)} is the first segment from "
                                      "the server with window 0")


def zero_count(m: Material) -> Answer:
    zeros = zero_windows(m)
    return Answer(len(zeros), f"{m.frames('client', [s.pkt for s in zeros])} advertise window 0: "
                              f"{len(zeros)} segment{'s' * (len(zeros) != 1)}")


def window_closed_for(m: Material) -> Answer:
    zero = zero_windows(m)[0]
    reopen = only([s for s in from_server(flow(m)) if s.pkt.ts > zero.pkt.ts and s.window > 0],
                  "window update after the zero window")
    ms = ms_between(zero.pkt.ts, reopen.pkt.ts)
    return Answer(ms, f"{m.frame('client', zero.pkt)} closes the window at {clock(zero.pkt.ts)}; "
                      f"{m.frame('client', reopen.pkt)} opens it again ({reopen.window}) at "
                      f"{clock(reopen.pkt.ts)}: {ms:.3f} ms later")


def reader_lag(m: Material) -> Answer:
    return recv_lag(m, "client")


WINDOW = Exercise(
    "window", "The receive window closing",
    "The client sent {count} messages of 1000 bytes to port {port}. The server asked for "
    "SO_RCVBUF {rcvbuf} and read with recv({bufsize}), sleeping {read_delay} s before each "
    "call: a slow reader. Answer from client.pcap unless a question names server.pcap.",
    vary_window, run_window, questions(
        ("What window scale shift count did the server announce in its SYN-ACK?", "int",
         synack_wscale),
        ("What is the largest window the server advertised after the handshake (calculated, "
         "scaled)?", "int", largest_window),
        ("In which frame does the server first advertise a zero window?", "frame", first_zero),
        ("How many segments from the server advertise a zero window?", "int", zero_count),
        ("How many bytes of data did the client send in all?", "int", data_bytes),
        ("How many milliseconds after that first zero window did the server advertise a "
         "non-zero window again?", "num", window_closed_for, {"unit": "ms"}),
        ("How many milliseconds after the client's last data segment left did the server's "
         "last recv() that returned data return?", "num", reader_lag, {"unit": "ms"}),
    ), hide={"recv": ("data",), "sent": ("data",)},
    varies="receive buffer, read size and pace, volume, port")

EXERCISES = (HANDSHAKE, BYTESTREAM, WINDOW)
