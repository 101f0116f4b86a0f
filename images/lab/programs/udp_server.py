"""UDP server: receive datagrams with recvfrom(3) and print them (the post's UDP server).

Demonstrates: UDP needs no listen() or accept(): bind, then recvfrom() (C2). UDP is
datagrams (C5): recvfrom(3) on an 11-byte datagram returns only "hel"; the rest of that
datagram is gone, and the next recvfrom() returns the next datagram.
Stopping: the post stops "on empty data", but in UDP an empty datagram is a real,
zero-length datagram, so that only happens when a client sends one, which is what
`udp_client.py --end-with-empty` does.  --count N and --timeout SECONDS stop it too.
Peer: udp_client.py on the client host.   Run:  python3 udp_server.py --port 6666
"""

import argparse
import os
import socket

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
    args = parser.parse_args()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((args.bind, args.port))
        event("listening", addr=addr(sock.getsockname()))  # no listen() in UDP: bound = ready
        sock.settimeout(args.timeout)  # UDP never says "no more data": silence is the signal
        received = 0
        while True:
            try:
                data, peer = sock.recvfrom(args.bufsize)  # one datagram, cut to bufsize
            except TimeoutError:
                event("stop", reason="timeout")
                break
            received += 1
            event("recvfrom", n=len(data), data=text(data), peer=addr(peer))
            if not data:  # a zero-length datagram, sent on purpose
                event("stop", reason="empty")
                break
            if received == args.count:
                event("stop", reason="count")
                break
    event("closed")  # the post's conn.close() was a bug: a UDP server has no conn


if __name__ == "__main__":
    run(main)
