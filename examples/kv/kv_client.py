"""The key-value service's client: it retries, as a client on a real network must.

    python3 kv_client.py --host 192.168.40.5 set colour blue
    python3 kv_client.py --host 192.168.40.5 get colour           # prints: blue
    python3 kv_client.py --host 192.168.40.5 fill 20 100   # SET k0..k19 (100 bytes each), GET back

Every request gets a new connection. A connect that does not complete in --connect-timeout
(a lost SYN or SYN-ACK: the kernel would wait a whole second before sending its SYN again)
or a reply that does not come in --timeout is tried again, up to --attempts times, with a
growing pause. Each try prints one line, e.g. `attempt n=2 op=connect error=timeout`, so a
test can count them. Exit 0: every request answered; 1: one was not, after every try.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time


def request(args: argparse.Namespace, line: str) -> str:
    """One request and its reply line, with retries."""
    for n in range(1, args.attempts + 1):
        op = "connect"
        try:
            with socket.create_connection((args.host, args.port), timeout=args.connect_timeout) as s:
                op = "reply"
                s.settimeout(args.timeout)
                s.sendall(f"{line}\n".encode())
                with s.makefile("rb") as replies:
                    reply = replies.readline().decode().rstrip("\n")
            if reply:
                return reply
            error = "closed"
        except OSError as e:  # timeout, refused, reset
            error = "timeout" if isinstance(e, TimeoutError) else type(e).__name__
        print(f"attempt n={n} op={op} error={error}", flush=True)
        time.sleep(args.pause * n)
    raise SystemExit(f"failed request={line.split(' ')[0]} attempts={args.attempts}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--connect-timeout", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--attempts", type=int, default=6)
    parser.add_argument("--pause", type=float, default=0.1)
    parser.add_argument("op", choices=("set", "get", "fill"))
    parser.add_argument("words", nargs="*")
    args = parser.parse_args()
    if args.op == "set":
        print(request(args, f"SET {args.words[0]} {' '.join(args.words[1:])}"), flush=True)
    elif args.op == "get":
        print(request(args, f"GET {args.words[0]}").removeprefix("VALUE "), flush=True)
    else:
        count, size = int(args.words[0]), int(args.words[1])
        values = {f"k{i}": (f"v{i}-" * size)[:size] for i in range(count)}
        for key, value in values.items():
            request(args, f"SET {key} {value}")
        wrong = [k for k, v in values.items() if request(args, f"GET {k}") != f"VALUE {v}"]
        print(f"filled n={count} size={size} wrong={len(wrong)}", flush=True)
        return 1 if wrong else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
