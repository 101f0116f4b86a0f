"""`socketlab craft HOST`: send a packet made by hand from a lab host (scapy, in the host)."""

from __future__ import annotations

import argparse

from rich.console import Console

from socketlab.cli import common

EXAMPLES = """\
examples:
  socketlab craft client tcp --flags S --answer 1      a lone SYN to the server's port: RST or SYN-ACK?
  socketlab craft client udp --df --size 1400 --answer 1
                                                      a datagram with DF set, 1400 bytes in all
  socketlab craft client icmp --count 3 --interval 0.2 --answer 1
  socketlab craft client --scapy "IP(dst='server', ttl=1)/UDP(dport=9)/Raw(b'hi')" --show
Run `socketlab run ... --capture` or tcpdump (socketlab shell server) to watch them arrive.
"""


def register(command) -> None:
    cmd = command("craft", "send a packet made by hand (scapy) from a lab host to another", craft)
    cmd.formatter_class = argparse.RawDescriptionHelpFormatter
    cmd.epilog = EXAMPLES
    cmd.add_argument("host", metavar="HOST", help="the host that sends, e.g. client")
    cmd.add_argument("proto", nargs="?", default="tcp", choices=["tcp", "udp", "icmp"])
    cmd.add_argument("--to", default="server", help="the host (or lab address) it goes to (default server)")
    cmd.add_argument("--dport", type=int, help="destination port (default the lab's, 6666)")
    cmd.add_argument("--sport", type=int, help="source port (default an ephemeral one)")
    cmd.add_argument("--flags", help="TCP flags, e.g. S, SA, F, R (default S)")
    cmd.add_argument("--seq", type=int, help="TCP sequence number (default random)")
    cmd.add_argument("--df", action="store_true", help="set IP's don't-fragment bit")
    cmd.add_argument("--ttl", type=int, help="IP time to live (default 64)")
    cmd.add_argument("--payload", default="", help="the data it carries")
    cmd.add_argument("--size", type=int, help="the whole IP packet this many bytes (payload padded)")
    cmd.add_argument("--count", type=common.positive_int, default=1, help="how many (1-100)")
    cmd.add_argument("--interval", type=float, default=0.0, help="seconds between them")
    cmd.add_argument("--answer", type=float, default=0.0, metavar="SECONDS",
                     help="wait this long for answers and show them (default: send only)")
    cmd.add_argument("--scapy", metavar="EXPR", default="",
                     help="the packet as scapy writes it (IP, TCP, UDP, ICMP, Raw, fragment), "
                          "built in the host; replaces the options above")
    cmd.add_argument("--show", action="store_true", help="every packet decoded, field by field")
    cmd.add_argument("--json", action="store_true", help="print what was sent and answered as JSON")


def craft(args: argparse.Namespace, out: Console, err: Console) -> int:
    from socketlab.act.craft import Craft, craft

    what = Craft(args.proto, to=args.to, dport=args.dport, sport=args.sport, flags=args.flags,
                 seq=args.seq, df=args.df, ttl=args.ttl, payload=args.payload, size=args.size,
                 count=args.count, interval=args.interval, answer=args.answer, scapy=args.scapy)
    done = craft(common.running_lab(args, err), args.host, what, show=args.show)
    if args.json:
        common.dump_json(out, done.as_dict())
        return common.ExitCode.OK
    for line in done.sent:
        out.print(f"{done.host} sent: {line}", markup=False, soft_wrap=True)
    if args.answer:
        for line in done.answers:
            out.print(f"answer: {line}", markup=False, soft_wrap=True)
        if not done.answers:
            out.print(f"no answer within {args.answer:g} s", markup=False)
    for text in done.shown:
        out.print(text, markup=False, soft_wrap=True)
    return common.ExitCode.OK
