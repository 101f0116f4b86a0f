"""udp_sink: receive datagrams and count them, bounded; for numbered ones (udp_blast), also
what was lost, duplicated and reordered.

    python3 udp_sink.py PORT [--first 10] [--idle 1] [--most 20] [--numbered] [--early-ms 5]
                             [--rcvbuf BYTES]

Waits --first s for the first datagram, then ends after --idle s of silence (UDP has no end
of stream: silence is its only end) or after --most s in all. --rcvbuf forces the receive
buffer (SO_RCVBUFFORCE, the host has CAP_NET_ADMIN) so the socket drops nothing and the
link's loss is the only loss. Last line: `summary received=N bytes=B ...`; with --numbered
also distinct, dup, ooo (arrived after a later-numbered one), overtook (arrived before an
earlier-numbered one), early (one-way delay under --early-ms), missing and lost_runs (the
numbers below --expect never seen, and how many unbroken runs they make: missing / lost_runs
is the mean loss burst), span_s, steady_bytes/_s."""

import argparse
import socket
import struct
import time

from report import emit, steady

SO_RCVBUFFORCE = 33  # not in Python's socket module

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("--first", type=float, default=10.0)
p.add_argument("--idle", type=float, default=1.0)
p.add_argument("--most", type=float, default=20.0)
p.add_argument("--numbered", action="store_true")
p.add_argument("--early-ms", type=float, default=0.0)
p.add_argument("--rcvbuf", type=int, default=8 << 20)
p.add_argument("--expect", type=int, help="numbered: how many were sent (else: up to the highest seen)")
args = p.parse_args()

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, args.rcvbuf)
except PermissionError:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
s.bind(("", args.port))
emit("listening", port=args.port, rcvbuf=s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
seen, times, sizes, order = set(), [], [], []
dup = ooo = early = 0
top, end = -1, time.monotonic() + args.most
while time.monotonic() < end:
    s.settimeout(min(args.idle if times else args.first, max(0.01, end - time.monotonic())))
    try:
        data = s.recv(65535)
    except TimeoutError:
        break
    now = time.time()
    times.append(now)
    sizes.append(len(data))
    if not args.numbered or len(data) < 12:
        continue
    k, sent_at = struct.unpack_from("!Id", data)
    if k in seen:
        dup += 1
        continue
    seen.add(k)
    order.append(k)
    ooo += k < top
    top = max(top, k)
    early += (now - sent_at) * 1000 < args.early_ms
counts = {"received": len(times), "bytes": sum(sizes)}
if args.numbered:
    low, overtook = float("inf"), 0
    for k in reversed(order):  # k overtook an earlier-numbered datagram that arrived after it
        overtook += low < k
        low = min(low, k)
    span = args.expect if args.expect is not None else top + 1
    missing = [k for k in range(span) if k not in seen]
    runs = sum(1 for i, k in enumerate(missing) if i == 0 or missing[i - 1] != k - 1)
    counts |= {"distinct": len(seen), "dup": dup, "ooo": ooo, "overtook": overtook, "early": early,
               "missing": len(missing), "lost_runs": runs,
               "span_s": times[-1] - times[0] if times else 0.0, **steady(times, sizes)}
emit("summary", **counts)
