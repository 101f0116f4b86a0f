"""udp_ping: numbered datagrams to a udp_echo, each matched to its echo: round-trip times.

    python3 udp_ping.py HOST PORT --count 400 --gap 0.004 [--wait 1.5] [--size 64]

Sends --count datagrams --gap s apart (a sender that does not wait for echoes, so a delayed
echo never delays the next ping), then waits --wait s for the last echoes and sends "stop"
(so the echo ends). Last line: `summary sent=N echoed=M stops=S rtts=R1,R2,...` (ms, in
the order of the pings that came back; a lost ping has none; S: "stop" datagrams sent)."""

import argparse
import contextlib
import select
import socket
import struct
import time

from report import emit

p = argparse.ArgumentParser()
p.add_argument("host")
p.add_argument("port", type=int)
p.add_argument("--count", type=int, required=True)
p.add_argument("--gap", type=float, required=True)
p.add_argument("--wait", type=float, default=1.5)
p.add_argument("--size", type=int, default=64)
args = p.parse_args()

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((args.host, args.port))
s.setblocking(False)
sent, rtt, i, t0 = {}, {}, 0, time.monotonic()
end = t0 + args.count * args.gap + args.wait
while len(rtt) < args.count and time.monotonic() < end:
    now = time.monotonic()
    if i < args.count and now >= t0 + i * args.gap:
        sent[i] = now
        s.send(struct.pack("!Id", i, time.time()) + bytes(max(0, args.size - 12)))
        i += 1
        continue
    due = t0 + i * args.gap if i < args.count else end
    if select.select([s], [], [], max(0.0, due - now))[0]:
        while True:
            try:
                data = s.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                break
            k = struct.unpack_from("!I", data)[0]
            if k in sent:
                rtt.setdefault(k, round((time.monotonic() - sent[k]) * 1000, 4))
stops = 0
for _ in range(3):  # the echo ends at the first; the next may meet a closed port
    with contextlib.suppress(ConnectionRefusedError):
        s.send(b"stop")
        stops += 1
emit("summary", sent=i, echoed=len(rtt), stops=stops,
     rtts=",".join(str(rtt[k]) for k in sorted(rtt)) or "-")
