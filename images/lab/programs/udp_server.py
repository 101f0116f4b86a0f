"""UDP server: receive datagrams with recvfrom(3) and print them (the post's UDP server).

Demonstrates: UDP needs no listen() or accept(): bind, then recvfrom() (C2). UDP is
datagrams (C5): recvfrom(3) on an 11-byte datagram returns only "hel"; the rest of that
datagram is gone, and the next recvfrom() returns the next datagram.
Stopping: the post stops "on empty data", but in UDP an empty datagram is a real,
zero-length datagram, so that only happens when a client sends one, which is what
`udp_client.py --end-with-empty` does.  --count N and --timeout SECONDS stop it too.
Variants for the load claims (C6, C10): --rcvbuf (a small receive buffer), --delay (a slow
reader), --quiet (one summary line instead of one line per datagram).
Peer: udp_client.py on the client host.   Run:  python3 udp_server.py --port 6666
"""

import argparse
import os
import socket
import time

from lablog import addr, event, run, text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="", help="address to bind ('' = any, like the post)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SOCKETLAB_PORT", 6666)))
    parser.add_argument("--bufsize", type=int, default=int(os.environ.get("SOCKETLAB_BUFSIZE", 3)))
    parser.add_argument(
        "--count",
        type=int,
        default=0,
        help="stop after N datagrams (default 0: never, like the post)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="stop after SECONDS with no datagram (default: wait forever)",
    )
    parser.add_argument(
        "--first-timeout", type=float, help="the wait for the first datagram (default: --timeout)"
    )
    parser.add_argument("--rcvbuf", type=int, help="C6/C10: set SO_RCVBUF to BYTES before bind")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="C6/C10: a slow reader, sleep before each recvfrom"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="C6: one summary line, not one line per datagram"
    )
    args = parser.parse_args()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        shown = {}
        if args.rcvbuf is not None:  # the kernel doubles it (bookkeeping room) and caps it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
            shown["rcvbuf"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        sock.bind((args.bind, args.port))
        event("listening", addr=addr(sock.getsockname()), **shown)  # no listen() in UDP
        received = total = 0
        while True:
            # UDP never says "no more data": silence is the signal (a longer wait for the first)
            first = received == 0 and args.first_timeout is not None
            sock.settimeout(args.first_timeout if first else args.timeout)
            time.sleep(args.delay)  # meanwhile, datagrams wait in (or overflow) the buffer
            try:
                data, peer = sock.recvfrom(args.bufsize)  # one datagram, cut to bufsize
            except TimeoutError:
                event("stop", reason="timeout")
                break
            received, total = received + 1, total + len(data)
            if not args.quiet:
                event("recvfrom", n=len(data), data=text(data), peer=addr(peer))
            if not data:  # a zero-length datagram, sent on purpose
                event("stop", reason="empty")
                break
            if received == args.count:
                event("stop", reason="count")
                break
        if args.quiet:
            event("summary", received=received, bytes=total)
    event("closed")  # the post's conn.close() was a bug: a UDP server has no conn


if __name__ == "__main__":
    run(main)
