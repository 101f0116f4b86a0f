"""A tiny TCP key-value service: the service under test in socketlab's example suite.

One line per request, one line per answer (UTF-8, no newline inside a value):
    SET key value   ->  OK
    GET key         ->  VALUE value   or   MISSING
Each connection may carry many requests; each is served in its own thread.

    python3 kv_server.py --port 7000
"""

from __future__ import annotations

import argparse
import socketserver
import sys
import threading

STORE: dict[str, str] = {}
LOCK = threading.Lock()


def answer(line: str) -> str:
    """The reply to one request line (pure, but for the shared store)."""
    verb, _, rest = line.partition(" ")
    key, _, value = rest.partition(" ")
    if verb == "SET" and key:
        with LOCK:
            STORE[key] = value
        return "OK"
    if verb == "GET" and key:
        with LOCK:
            found = STORE.get(key)
        return "MISSING" if found is None else f"VALUE {found}"
    return "ERROR expected SET key value or GET key"


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for raw in self.rfile:
            reply = answer(raw.decode().rstrip("\n"))
            self.wfile.write(f"{reply}\n".encode())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7000)
    args = parser.parse_args()
    with Server(("0.0.0.0", args.port), Handler) as server:
        print(f"listening port={args.port}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
