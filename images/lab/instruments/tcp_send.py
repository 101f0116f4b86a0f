"""tcp_send: connect and send, bounded by bytes (--bytes) or by time (--seconds); the
kernel's own view of the connection as it goes (TCP_INFO: MSS, RTT samples, retransmits).

    python3 tcp_send.py HOST PORT (--bytes N | --seconds S) [--sndbuf BYTES] [--cc reno]
                        [--most 12]

--cc: this connection's congestion control (TCP_CONGESTION, set before connect; one the
kernel has: /proc/sys/net/ipv4/tcp_available_congestion_control). Prints `connected
connect_ms=C`, then `summary sent=B seconds=S mss=M rtt_median_us=R rtt_samples=K retrans=N
cc=NAME` (RTT sampled every 50 ms while sending; cc: what the kernel says the socket ran).
A --cc the kernel refuses: `error op=setsockopt cc=NAME msg=...`, exit 2, nothing sent."""

import argparse
import contextlib
import socket
import statistics
import struct
import time

from report import emit

p = argparse.ArgumentParser()
p.add_argument("host")
p.add_argument("port", type=int)
p.add_argument("--bytes", type=int)
p.add_argument("--seconds", type=float)
p.add_argument("--sndbuf", type=int)
p.add_argument("--cc")
p.add_argument("--most", type=float, default=12.0)
args = p.parse_args()
total = args.bytes if args.bytes is not None else 1 << 62
t0 = time.monotonic()
end = t0 + min(args.most, args.seconds if args.seconds is not None else args.most)

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
if args.sndbuf:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
if args.cc:
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, args.cc.encode())
    except OSError as e:
        emit("error", op="setsockopt", cc=args.cc, msg=e.strerror or str(e))
        raise SystemExit(2) from None
s.settimeout(args.most)
c0 = time.time()
s.connect((args.host, args.port))
emit("connected", connect_ms=(time.time() - c0) * 1000)


def info() -> tuple:
    """struct tcp_info: 8 bytes, then u32s: snd_mss is the 3rd, rtt the 16th, total_retrans the 24th."""
    v = struct.unpack_from("=8B24I", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256))
    return v[10], v[23], v[31]


s.settimeout(0.05)
chunk, sent, rtts, sample = bytes(1 << 16), 0, [], 0.0
while sent < total and time.monotonic() < end:
    with contextlib.suppress(TimeoutError):  # a full send buffer: sample, then try again
        sent += s.send(chunk[: total - sent])
    if time.monotonic() >= sample:
        rtts.append(info()[1])
        sample = time.monotonic() + 0.05
mss, _rtt, retrans = info()
cc = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).split(b"\0")[0].decode()
s.close()
emit("summary", sent=sent, seconds=time.monotonic() - t0, mss=mss,
     rtt_median_us=int(statistics.median(rtts)) if rtts else 0, rtt_samples=len(rtts), retrans=retrans,
     cc=cc)
