"""udp_blast: numbered datagrams at a steady rate (or as fast as they go), bounded.

    python3 udp_blast.py HOST PORT --count 10000 [--pps 10000] [--size 64] [--most 12]

Each datagram starts with its number (4 bytes) and the time it was sent (8 bytes, a
double), so udp_sink can count losses, duplicates and reordering. --pps 0: no pacing.
Stops after --count datagrams or --most s. Last line: `summary sent=N errors=E seconds=S`
(errors: sends the kernel refused, e.g. a full queue)."""

import argparse
import socket
import struct
import time

from report import emit

p = argparse.ArgumentParser()
p.add_argument("host")
p.add_argument("port", type=int)
p.add_argument("--count", type=int, required=True)
p.add_argument("--pps", type=float, default=0.0)
p.add_argument("--size", type=int, default=64)
p.add_argument("--most", type=float, default=12.0)
args = p.parse_args()

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((args.host, args.port))
pad, sent, errors = bytes(max(0, args.size - 12)), 0, 0
t0 = time.monotonic()
for i in range(args.count):
    if args.pps:
        wait = t0 + i / args.pps - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    if time.monotonic() - t0 > args.most:
        break
    try:
        s.send(struct.pack("!Id", i, time.time()) + pad)
        sent += 1
    except OSError:
        errors += 1
emit("summary", sent=sent, errors=errors, seconds=time.monotonic() - t0)
