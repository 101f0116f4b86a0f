"""Packets as tcpdump prints them while they are captured, for a ladder drawn as they come.

    pkt = parse_line("1796708103.140386 IP 10.0.0.6.45436 > 10.0.0.5.6666: Flags [S], seq 7, "
                     "win 64240, length 0")
    pkt.label            # "SYN seq=7"
    row(pkt, ["client", "server"], {"10.0.0.6": "client", "10.0.0.5": "server"}, t0)

Pure: the text of one line in, a LivePacket (or None: not an IPv4 packet line) out; the row
is the ladder's line for it. The watch command (socketlab.cli.watch) feeds it tcpdump's
`-l -n -tt` output from every host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LINE = re.compile(r"^(\d+\.\d+) IP (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))? > "
                  r"(\d+\.\d+\.\d+\.\d+)(?:\.(\d+))?: (.*)$")
FLAGS = {"S": "SYN", "S.": "SYN-ACK", ".": "ACK", "P.": "PSH-ACK", "F.": "FIN-ACK",
         "FP.": "FIN-PSH-ACK", "R": "RST", "R.": "RST-ACK", "F": "FIN", "P": "PSH"}
WIDTH = 44  # the arrow's length between the two hosts' lines


@dataclass(frozen=True)
class LivePacket:
    t: float
    src: str
    dst: str
    sport: int | None
    dport: int | None
    label: str  # "SYN seq=0", "UDP 101 bytes", "ICMP echo request"


def parse_line(line: str) -> LivePacket | None:
    m = LINE.match(line.strip())
    if not m:
        return None
    t, src, sport, dst, dport, rest = m.groups()
    return LivePacket(float(t), src, dst, int(sport) if sport else None,
                      int(dport) if dport else None, _label(rest))


def _label(rest: str) -> str:
    if rest.startswith("Flags ["):
        flags = rest[7:rest.index("]")]
        parts = [FLAGS.get(flags, flags)]
        for name in ("seq", "ack"):
            found = re.search(rf"\b{name} (\d+(?::\d+)?)", rest)
            if found:
                parts.append(f"{name}={found.group(1)}")
        length = re.search(r"length (\d+)", rest)
        if length and length.group(1) != "0":
            parts.append(f"len={length.group(1)}")
        return " ".join(parts)
    if rest.startswith("UDP"):
        length = re.search(r"length (\d+)", rest)
        return f"UDP {length.group(1)} bytes" if length else "UDP"
    return rest.split(",")[0][:40]


def row(pkt: LivePacket, hosts: Sequence[str], names: Mapping[str, str], t0: float) -> str:
    """The ladder's line: time since t0, then an arrow from the sender's line to the
    receiver's, the packet's label on it (two hosts); with more, `a → b  label`."""
    src, dst = names.get(pkt.src, pkt.src), names.get(pkt.dst, pkt.dst)
    t = f"{(pkt.t - t0) * 1e3:9.3f} ms  "
    if len(hosts) == 2 and {src, dst} == set(hosts):
        text = f" {pkt.label} "[:WIDTH - 4]
        dashes = WIDTH - len(text) - 2
        left, right = "─" * (dashes // 2), "─" * (dashes - dashes // 2)
        arrow = (f"{left}{text}{right}─▶" if src == hosts[0] else f"◀─{left}{text}{right}")
        return f"{t}{hosts[0]:>8} |{arrow}| {hosts[1]}"
    return f"{t}{src} → {dst}  {pkt.label}"


def header(hosts: Sequence[str]) -> str:
    if len(hosts) == 2:
        return f"{'':14}{hosts[0]:>8} |{' ' * WIDTH}| {hosts[1]}"
    return f"watching {', '.join(hosts)}"
