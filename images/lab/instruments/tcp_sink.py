"""tcp_sink: accept one connection and read it to its end, counting (optionally slowly).

    python3 tcp_sink.py PORT [--most 15] [--window 3] [--rcvbuf BYTES] [--read-delay S]
                             [--chunk 65536]

--window: also count the bytes that came within that many seconds of the first. --rcvbuf:
a small receive buffer set before listen() (the accepted socket inherits it); with
--read-delay, a pause before every recv of --chunk bytes: a slow reader. Ends at the
peer's close, or after --most s. Last line: `summary received=B reads=N window_bytes=W
first=T last=T sha256=H steady_bytes=S steady_s=D`."""

import argparse
import hashlib
import socket
import time

from report import emit, steady

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("--most", type=float, default=15.0)
p.add_argument("--window", type=float, default=0.0)
p.add_argument("--rcvbuf", type=int)
p.add_argument("--read-delay", type=float, default=0.0)
p.add_argument("--chunk", type=int, default=65536)
args = p.parse_args()

srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if args.rcvbuf:
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
srv.bind(("", args.port))
srv.listen(1)
srv.settimeout(args.most)
emit("listening", addr=f"0.0.0.0:{args.port}", rcvbuf=srv.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
end = time.monotonic() + args.most
conn, _ = srv.accept()
h, times, sizes, in_window = hashlib.sha256(), [], [], 0
while time.monotonic() < end:
    time.sleep(args.read_delay)
    conn.settimeout(max(0.01, end - time.monotonic()))
    try:
        data = conn.recv(args.chunk)
    except TimeoutError:
        break
    if not data:
        break
    now = time.time()
    in_window += len(data) if not times or now - times[0] <= args.window else 0
    times.append(now)
    sizes.append(len(data))
    h.update(data)
conn.close()
emit("summary", received=sum(sizes), reads=len(sizes), window_bytes=in_window,
     first=times[0] if times else 0.0, last=times[-1] if times else 0.0, sha256=h.hexdigest(),
     **steady(times, sizes))
