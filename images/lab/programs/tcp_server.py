"""TCP server: accept one connection and read it 3 bytes at a time (the post's TCP server).

Demonstrates: a TCP server needs bind -> listen -> accept before any data (the kernel
finishes the three-way handshake and queues the connection; accept() takes it, C3),
and TCP is a byte stream: recv(3) returns "hel", "lo,", "wor", "ld", then b"" when the
client closes -- nothing is lost, the loop just reads more (C4).
Peer: tcp_client.py on the client host.  Serves exactly one connection, like the post.
Run:  python3 tcp_server.py --port 6666 --bufsize 3
--accept-delay SECONDS waits that long between listen() and accept(), so you can watch the
kernel do the handshake alone: during the wait `ss -tan` shows the connection already there
(ESTABLISHED; CLOSE-WAIT once the client has sent and closed) and the listener's Recv-Q is
1, the connection waiting in the accept queue.  accept() then only takes it (C3).
--rcvbuf BYTES (a small receive buffer) and --read-delay SECONDS (a pause before each recv)
make a slow reader: the buffer fills and the window the server advertises closes to 0.
--mss BYTES caps the maximum segment size the server announces in its SYN-ACK (TCP_MAXSEG).
Prints one line per event: `EVENT key=value ... t=UNIXTIME` (strings are JSON-quoted).
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
    parser.add_argument("--backlog", type=int, default=5)
    parser.add_argument(
        "--accept-timeout",
        type=float,
        default=None,
        help="give up waiting for a client after SECONDS (default: wait forever)",
    )
    parser.add_argument(
        "--accept-delay",
        type=float,
        default=0.0,
        help="sleep SECONDS between listen() and accept() (default 0, like the post)",
    )
    parser.add_argument("--rcvbuf", type=int, help="set SO_RCVBUF to BYTES before listen()")
    parser.add_argument("--mss", type=int, help="set TCP_MAXSEG to BYTES before listen()")
    parser.add_argument("--read-delay", type=float, default=0.0, help="sleep before each recv")
    args = parser.parse_args()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        shown = {}
        if args.rcvbuf:  # before listen(): the window scale is agreed from it in the handshake
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
            shown["rcvbuf"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # doubled
        if args.mss:  # before listen(): the SYN-ACK announces at most this MSS
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, args.mss)
            shown["mss"] = args.mss
        sock.bind((args.bind, args.port))
        sock.listen(args.backlog)
        event("listening", addr=addr(sock.getsockname()), backlog=args.backlog, **shown)
        time.sleep(args.accept_delay)  # clients can connect now: the kernel queues them
        sock.settimeout(args.accept_timeout)  # None: block forever, as the post does
        conn, peer = sock.accept()
        with conn:
            event("accepted", peer=addr(peer), local=addr(conn.getsockname()))
            while True:
                time.sleep(args.read_delay)  # a slow reader lets the receive buffer fill
                data = conn.recv(args.bufsize)
                event("recv", n=len(data), data=text(data))  # the post prints, then tests
                if not data:  # b"": the client closed its side (FIN), the stream is over
                    break
    event("closed")


if __name__ == "__main__":
    run(main)
