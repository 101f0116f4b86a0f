"""`socketlab watch`: a live ladder in the terminal, drawn as packets are captured on the hosts.

    socketlab watch                  # the lab's hosts; Ctrl-C stops it
    socketlab watch --for 60         # at most a minute (tcpdump is bounded in each host too)

tcpdump runs in each host (`-l -n -tt`, line by line); every packet is drawn once, from the
capture of the host that sent it. Nothing is written to disk; Ctrl-C (or SIGTERM, or --for
running out) stops every tcpdump before the command returns.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import queue
import threading
import time

from rich.console import Console

from socketlab.cli import common

TCPDUMP = ["tcpdump", "-i", "eth0", "-l", "-n", "-tt", "ip"]
# Each host's lines come in their own stream: a packet is drawn once this long has passed since
# it was captured, so the other host's packets of the same moment are in and the order is time's.
REORDER_S = 0.3


def register(command) -> None:
    cmd = command("watch", "a live ladder of the packets the lab's hosts send, as they are "
                           "captured (Ctrl-C stops it)", watch)
    cmd.add_argument("hosts", nargs="*", metavar="HOST",
                     help="the hosts to capture on (default: every host of the lab)")
    cmd.add_argument("--for", dest="seconds", type=common.positive_int, default=600,
                     metavar="SECONDS", help="stop after this long (default 600)")


def watch(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.errors import LabTimeout
    from socketlab.lab import signals
    from socketlab.observe.live import LivePacket, header, parse_line, row

    lab = common.running_lab(args, err)
    hosts = list(args.hosts) or sorted(lab.topology.names, key=lambda h: h != "client")
    names = {lab.topology.ip(h): h for h in lab.topology.names}
    for h in hosts:
        lab.topology.ip(h)  # an unknown host is refused here, before any tcpdump starts
    procs = {h: lab.start(h, TCPDUMP, timeout=args.seconds + 5, instruments=True) for h in hosts}
    lines: queue.Queue[tuple[str, str]] = queue.Queue()
    stop = threading.Event()

    def pump(host: str) -> None:
        while not stop.is_set():
            try:
                line = procs[host].wait_for(lambda _l: True, timeout=0.5)
            except LabTimeout:
                continue
            if line is None:
                return
            lines.put((host, line))

    for h in hosts:
        threading.Thread(target=pump, args=(h,), daemon=True).start()
    out.print(header(hosts), markup=False, highlight=False)
    err.print(f"watching {', '.join(hosts)} for up to {args.seconds} s: Ctrl-C stops",
              markup=False)
    t0, shown, deadline = None, 0, time.monotonic() + args.seconds
    interrupted = False
    held: list[tuple[float, int, LivePacket]] = []  # a moment's packets, put in time order
    order = itertools.count()
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                host, line = lines.get(timeout=0.1)
                pkt = parse_line(line)
                if pkt is not None and names.get(pkt.src, host) == host:  # once: the sender's
                    heapq.heappush(held, (pkt.t, next(order), pkt))
            while held and held[0][0] < time.time() - REORDER_S:
                pkt = heapq.heappop(held)[2]
                t0 = pkt.t if t0 is None else t0
                out.print(row(pkt, hosts, names, t0), markup=False, highlight=False,
                          soft_wrap=True)
                shown += 1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        with signals.deferred(raise_after=False):  # a second Ctrl-C waits for the same end
            stop.set()
            for proc in procs.values():
                proc.signal("INT")
            for proc in procs.values():
                proc.wait(10)
    if interrupted:
        raise signals.Interrupted(f"{shown} packets drawn; every tcpdump has ended")
    err.print(f"stopped: {shown} packets drawn; every tcpdump has ended", markup=False)
    return common.ExitCode.OK
