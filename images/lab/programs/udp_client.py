"""UDP client: send "hello,world" as one datagram, no connect (the post's UDP client).

Demonstrates: UDP is connectionless (C2): no connect(), sendto() names the peer on every
call, and the program "finishes its work" even when no server runs -- the ICMP "port
unreachable" that may come back never reaches this unconnected socket, so it exits 0.
--end-with-empty sends one zero-length datagram last: a real datagram, and the only
thing that stops the post's UDP server loop ("stop on empty data").
Variants for the load claims: --size (big datagrams, C7), --sndbuf (C7), --recverr (C9),
--quiet and --keep-going (a bounded fast sender that counts its failed calls, C6 and C9),
--pmtudisc (DF or not) and --interval (a pause between datagrams) for path MTU discovery (P1).
Peer: udp_server.py on the server host (192.168.33.5, port 6666).
Run:  python3 udp_client.py --host 192.168.33.5 --port 6666 --message hello,world
Prints one line per event: `EVENT key=value ... t=UNIXTIME` (strings are JSON-quoted).
"""

import argparse
import errno
import json
import os
import socket
import time
from collections import Counter

from lablog import addr, event, run, text

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)  # Linux's value; Python does not name it
IP_MTU_DISCOVER, PMTUDISC = 10, {"dont": 0, "want": 1, "do": 2, "probe": 3}  # Linux's values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("SOCKETLAB_SERVER_IP", "192.168.33.5"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SOCKETLAB_PORT", 6666)))
    parser.add_argument("--message", default=os.environ.get("SOCKETLAB_MESSAGE", "hello,world"))
    parser.add_argument("--count", type=int, default=1, help="send the message this many times")
    parser.add_argument("--end-with-empty", action="store_true",
                        help="then send one zero-length datagram (stops the post's UDP server)")
    parser.add_argument("--size", type=int, action="append",
                        help="C7: send datagrams of N bytes (the message repeated; repeat for several sizes)")
    parser.add_argument("--sndbuf", type=int, help="C7: set SO_SNDBUF to BYTES first")
    parser.add_argument("--recverr", action="store_true", help="C9: IP_RECVERR: Linux reports ENOBUFS")
    parser.add_argument("--quiet", action="store_true", help="C6: one summary line in all")
    parser.add_argument("--keep-going", action="store_true", help="C6/C9: count failures per errno")
    parser.add_argument("--pmtudisc", choices=sorted(PMTUDISC), help="P1: IP_MTU_DISCOVER")
    parser.add_argument("--interval", type=float, default=0.0, help="P1: seconds between datagrams")
    args = parser.parse_args()
    message = args.message.encode()  # sockets carry bytes, not str (the post is Python 2)
    payloads = [(message * (n // max(len(message), 1) + 1))[:n] for n in args.size or []]
    datagrams = (payloads or [message]) * args.count + ([b""] if args.end_with_empty else [])
    sent, failed = 0, Counter()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if args.sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
            event("sndbuf", set=args.sndbuf, got=sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        if args.recverr:  # without it, Linux hides ENOBUFS and only counts Udp.SndbufErrors
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        if args.pmtudisc:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTUDISC[args.pmtudisc])
            event("pmtudisc", mode=args.pmtudisc)
        server = (args.host, args.port)  # no connect(): every sendto() names the peer
        for number, datagram in enumerate(datagrams):
            if number and args.interval:
                time.sleep(args.interval)
            try:
                n = sock.sendto(datagram, server)  # success = queued for sending, not delivered
            except OSError as exc:
                if not args.keep_going:
                    raise
                name = errno.errorcode.get(exc.errno, str(exc.errno))
                failed[name] += 1
                if not args.quiet:
                    event("error", op="sendto", errno=name, size=len(datagram),
                          msg=json.dumps(exc.strerror or str(exc)))
                continue
            sent += 1
            if not args.quiet:
                shown = {} if args.size else {"data": text(datagram)}  # big payloads: length only
                event("sent", n=n, **shown, local=addr(sock.getsockname()), peer=addr(server))
        if args.quiet:
            by_errno = ",".join(f"{name}:{k}" for name, k in sorted(failed.items())) or "-"
            event("summary", sent=sent, errors=sum(failed.values()), by_errno=by_errno)
    event("closed")


if __name__ == "__main__":
    run(main)
