"""udp_echo: send every datagram back to where it came from (the far end of udp_ping).

    python3 udp_echo.py PORT [--idle 1] [--most 30] [--each]

Ends by itself: on a datagram "stop", after --idle s of silence once something came, or
after --most s in all. --each prints `recv seq=N len=L` per datagram (N from a numbered
datagram's first 4 bytes, see udp_blast). Last line: `summary echoed=N`."""

import argparse
import socket
import struct
import time

from report import emit

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("--idle", type=float, default=1.0)
p.add_argument("--most", type=float, default=30.0)
p.add_argument("--each", action="store_true")
args = p.parse_args()

with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("", args.port))
    emit("listening", port=args.port)
    echoed, end = 0, time.monotonic() + args.most
    while time.monotonic() < end:
        # before the first datagram, wait for it until the end; after, silence is the end
        s.settimeout(args.idle if echoed else max(0.01, end - time.monotonic()))
        try:
            data, peer = s.recvfrom(65535)
        except TimeoutError:
            break
        if data == b"stop":
            break
        s.sendto(data, peer)
        echoed += 1
        if args.each:
            emit("recv", seq=struct.unpack_from("!I", data)[0] if len(data) >= 4 else -1, len=len(data))
emit("summary", echoed=echoed)
