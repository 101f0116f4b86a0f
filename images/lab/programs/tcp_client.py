"""TCP client: connect to the server and send "hello,world" (the post's TCP client).

Demonstrates: TCP must connect() first -- the three-way handshake (C3); with no server
listening, the connect is refused: `error op=connect errno=ECONNREFUSED`, exit 1 (C1).
sendall() hands the bytes to one stream; the server decides how to cut it up (C4).
Peer: tcp_server.py on the server host (192.168.33.5, port 6666).
Run:  python3 tcp_client.py --host 192.168.33.5 --port 6666 --message hello,world
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
    parser.add_argument(
        "--count",
        type=int,
        default=1,
        help="send the message this many times on the one connection",
    )
    args = parser.parse_args()
    message = args.message.encode()  # sockets carry bytes, not str (the post is Python 2)

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect((args.host, args.port))
        event("connected", local=addr(sock.getsockname()), peer=addr(sock.getpeername()))
        for _ in range(args.count):
            sock.sendall(message)  # returns once every byte is in the kernel's send buffer
            event("sent", n=len(message), data=text(message))
    event("closed")  # close() sends our FIN: the server's recv() then returns b""


if __name__ == "__main__":
    run(main)
