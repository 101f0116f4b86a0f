"""UDP client: send "hello,world" as one datagram, no connect (the post's UDP client).

Demonstrates: UDP is connectionless (C2): no connect(), sendto() names the peer on every
call, and the program "finishes its work" even when no server runs -- the ICMP "port
unreachable" that may come back never reaches this unconnected socket, so it exits 0.
--end-with-empty sends one zero-length datagram last: a real datagram, and the only
thing that stops the post's UDP server loop ("stop on empty data").
Peer: udp_server.py on the server host (192.168.33.5, port 6666).
Run:  python3 udp_client.py --host 192.168.33.5 --port 6666 --message hello,world
Prints one line per event: `EVENT key=value ... t=UNIXTIME` (strings are JSON-quoted).
"""

import argparse
import os
import socket

from lablog import addr, event, run, text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("SOCKETLAB_SERVER_IP", "192.168.33.5"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SOCKETLAB_PORT", 6666)))
    parser.add_argument("--message", default=os.environ.get("SOCKETLAB_MESSAGE", "hello,world"))
    parser.add_argument("--count", type=int, default=1, help="send the message this many times")
    parser.add_argument(
        "--end-with-empty",
        action="store_true",
        help="then send one zero-length datagram (stops the post's UDP server)",
    )
    args = parser.parse_args()
    message = args.message.encode()  # sockets carry bytes, not str (the post is Python 2)
    datagrams = [message] * args.count + ([b""] if args.end_with_empty else [])

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        server = (args.host, args.port)  # no connect(): every sendto() names the peer
        for datagram in datagrams:
            n = sock.sendto(datagram, server)  # success = queued for sending, not delivered
            event(
                "sent", n=n, data=text(datagram), local=addr(sock.getsockname()), peer=addr(server)
            )
    event("closed")


if __name__ == "__main__":
    run(main)
