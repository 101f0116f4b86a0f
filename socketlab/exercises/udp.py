"""UDP exercises: datagrams cut by a small recvfrom(), and a big datagram cut into IP
fragments. The post's UDP programs run under a capture on both hosts (run_programs, with
udp_client.py's --size for datagrams of chosen sizes); each answer is read from the pcaps."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from socketlab.act.programs import Options, client_argv, run_programs, server_argv
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
from socketlab.observe.analysis import FragmentGroup, Pkt, fragments
from socketlab.observe.observation import Context


def run_sizes(ctx: Context, p: Mapping[str, Any], name: str) -> Recording:
    """The post's UDP server and client; the client sends one datagram per size, then an
    empty one (which stops the server)."""
    opts = Options("udp", message=p["message"], bufsize=p["bufsize"], port=p["port"])
    cfg = ctx.lab.config
    client = client_argv(opts, cfg.server_ip, p["port"])
    for size in p["sizes"]:
        client += ["--size", str(size)]
    server = server_argv(opts, p["port"])
    return record(ctx, lambda: run_programs(ctx.lab, opts, server, client), name, p["port"])


def datagrams(m: Material, host: str) -> list[Pkt]:
    """The client's datagrams to the port in `host`'s capture (a fragmented one once)."""
    return [p for p in m.sent_by(host, "client", "udp")
            if p.dport == m.port and p.frag_offset == 0]


def udp_len(p: Pkt) -> int:
    """The payload length p's UDP header declares (every datagram() has that header)."""
    if p.udp_len is None:
        raise Unanswerable(f"frame {p.index + 1} has no UDP header")
    return p.udp_len


# ---------------------------------------------------------------- truncation
def vary_truncation(rng: random.Random) -> dict[str, Any]:
    bufsize = rng.randint(3, 8)
    sizes = [rng.randint(bufsize + 2, 40) for _ in range(rng.randint(3, 5))]
    return {"message": words(rng, 3), "bufsize": bufsize, "sizes": sizes,
            "port": rng.randrange(20000, 30000)}


def run_truncation(ctx: Context, p: Mapping[str, Any]) -> Recording:
    return run_sizes(ctx, p, "truncation")


def datagram_count(m: Material) -> Answer:
    grams = datagrams(m, "client")
    return Answer(len(grams), f"{m.frames('client', grams)} are the client's datagrams: "
                              f"{len(grams)}, the empty one included")


def first_udp_length(m: Material) -> Answer:
    first = only(datagrams(m, "client"), "datagram from the client")
    size = udp_len(first)
    return Answer(size + 8, f"{m.frame('client', first)}: UDP length {size + 8}"
                            f" = 8 bytes of header + {size} of payload")


def largest_payload(m: Material) -> Answer:
    top = max(datagrams(m, "client"), key=udp_len)
    return Answer(udp_len(top), f"{m.frame('client', top)} carries the largest payload, "
                                f"{udp_len(top)} bytes (UDP length {udp_len(top) + 8})")


def empty_length(m: Material) -> Answer:
    empty = only([p for p in datagrams(m, "client") if p.udp_len == 0], "empty datagram")
    return Answer(8, f"{m.frame('client', empty)} is the empty datagram: UDP length 8, the "
                     "header alone")


def second_read(m: Material) -> Answer:
    grams = [p for p in datagrams(m, "server") if p.udp_len]
    if len(grams) < 2:
        raise Unanswerable("server.pcap has fewer than two datagrams with data")
    n, p = m.params["bufsize"], grams[1]
    text = p.payload[:n].decode("ascii", "replace")
    return Answer(text, f"{m.frame('server', p)} is the second datagram, \""
                        f"{p.payload.decode('ascii', 'replace')}\" ({p.udp_len} bytes): "
                        f"recvfrom({n}) returns its first {n} bytes, \"{text}\", and the rest "
                        "of the datagram is gone")


def bytes_never_read(m: Material) -> Answer:
    n = m.params["bufsize"]
    grams = [p for p in datagrams(m, "server") if p.udp_len]
    lost = sum(max(p.udp_len - n, 0) for p in grams)
    parts = " + ".join(f"({p.udp_len} - {n})" for p in grams if p.udp_len > n)
    return Answer(lost, f"{m.frames('server', grams)} carry {[p.udp_len for p in grams]} bytes; "
                        f"recvfrom({n}) keeps {n} of each: {parts} = {lost} bytes never returned")


def first_read_lag(m: Material) -> Answer:
    first = only(datagrams(m, "server"), "datagram at the server")
    got = m.event("server", "recvfrom")
    ms = ms_between(first.ts, got["t"])
    return Answer(ms, f"{m.frame('server', first)} reached the server at {clock(first.ts)}; the "
                      f"first recvfrom() returned at {clock(got['t'])}: {ms:.3f} ms later")


TRUNCATION = Exercise(
    "truncation", "UDP datagrams cut by recvfrom()",
    "The client sent datagrams of different sizes (its message repeated) to port {port}, then "
    "an empty datagram; the server read each with recvfrom({bufsize}). The capture tells how "
    "many and how big.",
    vary_truncation, run_truncation, questions(
        ("How many UDP datagrams did the client send, the empty one included (client.pcap)?",
         "int", datagram_count),
        ("What does the UDP length field of the client's first datagram say?", "int",
         first_udp_length),
        ("What is the largest UDP payload the client sent (bytes)?", "int", largest_payload),
        ("What does the UDP length field of the empty datagram say?", "int", empty_length),
        ("Which bytes did the server's recvfrom({bufsize}) get from the second datagram (as "
         "text)?", "text", second_read),
        ("How many bytes of the client's datagrams did the server's recvfrom() calls never "
         "return, all datagrams together?", "int", bytes_never_read),
        ("How many milliseconds after the first datagram reached the server (server.pcap) did "
         "the server's first recvfrom() return?", "num", first_read_lag, {"unit": "ms"}),
    ), hide={"recvfrom": ("data",), "sent": ("n",)},
    varies="datagram sizes, receive size, message, port")


# ---------------------------------------------------------------- fragments
def vary_fragments(rng: random.Random) -> dict[str, Any]:
    return {"message": words(rng, 2), "bufsize": 65535, "sizes": [rng.randrange(2600, 8800)],
            "port": rng.randrange(20000, 30000)}


def run_fragments(ctx: Context, p: Mapping[str, Any]) -> Recording:
    return run_sizes(ctx, p, "fragments")


def big(m: Material) -> FragmentGroup:
    groups = [g for g in fragments(m.pcaps["client"])
              if g.src == m.hosts["client"] and g.proto == "udp"]
    return only(groups, "fragmented datagram from the client")


def piece_count(m: Material) -> Answer:
    g = big(m)
    return Answer(len(g.pieces), f"{m.frames('client', g.pieces)} share IP ID {g.ip_id}: "
                                 f"{len(g.pieces)} fragments")


def first_piece(m: Material) -> Answer:
    first = big(m).pieces[0]
    return Answer(first.ip_payload, f"{m.frame('client', first)}: IP total length "
                                    f"{first.ip_len} - {first.ip_hl} bytes of header = "
                                    f"{first.ip_payload} (the UDP header and "
                                    f"{first.ip_payload - 8} bytes of its payload)")


def last_offset(m: Material) -> Answer:
    last = big(m).pieces[-1]
    return Answer(last.frag_offset, f"{m.frame('client', last)} is the last fragment: offset "
                                    f"{last.frag_offset} bytes ({last.frag_offset // 8} in the "
                                    "header's 8-byte units)", (last.frag_offset // 8,))


def last_more(m: Material) -> Answer:
    last = big(m).pieces[-1]
    return Answer(last.mf, f"{m.frame('client', last)}, the last fragment, has More fragments "
                           f"{'set' if last.mf else 'clear'}")


def shared_id(m: Material) -> Answer:
    g = big(m)
    return Answer(g.ip_id, f"{m.frames('client', g.pieces)} all carry identification "
                           f"{g.ip_id} (0x{g.ip_id:04x})")


def udp_length(m: Material) -> Answer:
    first = big(m).pieces[0]
    if first.udp_len is None:
        raise Unanswerable("the first fragment has no UDP header")
    return Answer(first.udp_len + 8, f"{m.frame('client', first)}, the first fragment, holds the "
                                     f"UDP header: length {first.udp_len + 8} = 8 + "
                                     f"{first.udp_len} bytes of payload")


def last_piece(m: Material) -> Answer:
    last = big(m).pieces[-1]
    return Answer(last.ip_payload, f"{m.frame('client', last)}: IP total length {last.ip_len} - "
                                   f"{last.ip_hl} = {last.ip_payload} bytes")


def reassembly_lag(m: Material) -> Answer:
    group = [g for g in fragments(m.pcaps["server"]) if g.src == m.hosts["client"]]
    first = only(group, "fragment at the server").pieces[0]
    got = m.event("server", "recvfrom")
    ms = ms_between(first.ts, got["t"])
    return Answer(ms, f"{m.frame('server', first)}, the first fragment, reached the server at "
                      f"{clock(first.ts)}; recvfrom() returned the reassembled datagram at "
                      f"{clock(got['t'])}: {ms:.3f} ms later")


FRAGMENTS = Exercise(
    "fragments", "A big datagram in IP fragments",
    "The client sent one UDP datagram of {sizes[0]} bytes to port {port} (its message repeated), "
    "then an empty one; the link's MTU is 1500 bytes. Answer from client.pcap unless a question "
    "names server.pcap.",
    vary_fragments, run_fragments, questions(
        ("Into how many IP fragments was the big datagram cut?", "int", piece_count),
        ("How many bytes of IP payload does the first fragment carry (total length minus the IP "
         "header)?", "int", first_piece),
        ("What is the fragment offset of the last fragment, in bytes?", "int", last_offset),
        ("Is the More fragments flag set on the last fragment?", "yesno", last_more),
        ("What IP identification do the fragments share?", "int", shared_id),
        ("What does the UDP header's length field say?", "int", udp_length),
        ("How many bytes of IP payload does the last fragment carry?", "int", last_piece),
        ("How many milliseconds after the first fragment reached the server (server.pcap) did "
         "the server's recvfrom() return?", "num", reassembly_lag, {"unit": "ms"}),
    ), hide={"recvfrom": ("data",), "sent": ("data",)}, varies="datagram size, message, port")

EXERCISES = (TRUNCATION, FRAGMENTS)
