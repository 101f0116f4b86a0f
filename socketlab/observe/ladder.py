"""Ladder (sequence) diagrams of an exchange between two hosts, as text and as SVG.

The diagram is data first (`Ladder`: rows of arrows and notes, times in ms from the first item);
`render_text` and `render_svg` only draw it. Program events are (host, t, label) with `t` on the
packets' clock (seconds since the epoch: the containers share the host's clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

from socketlab.observe.analysis import Pkt, Segment, match_captures, tcp_flow

Event = tuple[str, float, str]
_FLAG_NAMES = {"S": "SYN", "F": "FIN", "R": "RST", "P": "PSH", "A": "ACK", "U": "URG",
               "E": "ECE", "C": "CWR"}


@dataclass(frozen=True)
class Host:
    name: str
    ip: str


@dataclass(frozen=True)
class Arrow:
    t: float  # ms from the ladder's t0
    rightward: bool  # client -> server
    label: str
    dropped: bool = False  # seen leaving the sender, never at the receiver
    retransmission: bool = False
    origin: str = ""  # sent by a host on the path between the two (a router's ICMP): who


@dataclass(frozen=True)
class Note:
    t: float
    right: bool  # beside the server (else beside the client)
    label: str


@dataclass(frozen=True)
class Gap:
    """A stretch of time in which nothing happened, long beside the ladder's usual pace (a
    retransmission timer, a program's sleep): drawn as a break, so the eye does not read the
    rows on either side as close in time."""

    t: float  # ms, where the silence starts
    ms: float  # how long it lasted


Row = Arrow | Note | Gap
GAP_MIN_MS = 100.0  # a silence is a gap from this long ...
GAP_PACE = 10.0  # ... and this many times the ladder's median step


@dataclass(frozen=True)
class Ladder:
    left: Host
    right: Host
    rows: tuple[Row, ...]  # in time order
    t0: float  # seconds, the time of the first item

    @property
    def arrows(self) -> tuple[Arrow, ...]:
        return tuple(r for r in self.rows if isinstance(r, Arrow))


# ---------------------------------------------------------------- building
def build_ladder(pkts: Iterable[Pkt], client: Host, server: Host, *,
                 events: Iterable[Event] = (), lost: Iterable[Pkt] = (),
                 t0: float | None = None, names: Mapping[str, str] | None = None) -> Ladder:
    """Arrows for the packets between the two hosts, notes for the programs' events.

    `lost` holds packets (from `pkts`) that never reached the other host: drawn as drops. An
    ICMP error that a host on the path (a router) sent to one of the two is drawn from the path
    to it, labelled with its sender (`names`: address to host name, where known).
    """
    pkts = sorted((p for p in pkts if {p.src, p.dst} == {client.ip, server.ip}
                   or _from_path(p, client, server)), key=lambda p: p.ts)
    lost_ids = {id(p) for p in lost}
    segs = _segments(pkts, client.ip)
    notes = [(t, host in (server.name, server.ip), label) for host, t, label in events]
    times = [p.ts for p in pkts] + [t for t, _, _ in notes]
    t0 = min(times, default=0.0) if t0 is None else t0
    rows: list[tuple[float, int, Row]] = []
    last_win: dict[tuple, int] = {}
    for i, p in enumerate(pkts):
        seg = segs.get(id(p))
        label = _tcp_label(seg, last_win) if seg else _label(p)
        origin = ""
        if _from_path(p, client, server):
            origin = f"{(names or {}).get(p.src, '')} {p.src}".strip()
            label = f"from {origin}: {label}"
        rows.append((p.ts, i, Arrow((p.ts - t0) * 1e3, p.dst == server.ip if origin else p.src == client.ip,
                                    label, id(p) in lost_ids, bool(seg and seg.retransmission), origin)))
    for j, (t, right, label) in enumerate(notes):
        rows.append((t, len(pkts) + j, Note((t - t0) * 1e3, right, label)))
    ordered = [r for _, _, r in sorted(rows, key=lambda r: r[:2])]
    return Ladder(client, server, tuple(with_gaps(ordered)), t0)


def with_gaps(rows: list[Row]) -> list[Row]:
    """The rows with a Gap wherever the time to the next row is long: at least GAP_MIN_MS and
    GAP_PACE times the median step between rows."""
    steps = sorted(b.t - a.t for a, b in zip(rows, rows[1:], strict=False))
    if not steps:
        return list(rows)
    long = max(GAP_MIN_MS, GAP_PACE * steps[len(steps) // 2])
    out: list[Row] = [rows[0]]
    for before, row in zip(rows, rows[1:], strict=False):
        if row.t - before.t >= long:
            out.append(Gap(before.t, row.t - before.t))
        out.append(row)
    return out


def _from_path(p: Pkt, client: Host, server: Host) -> bool:
    """An ICMP message to one of the two hosts from a third (a router on the path)."""
    return p.proto == "icmp" and p.dst in (client.ip, server.ip) and p.src not in (client.ip, server.ip)


def ladder_from_captures(client_pkts: Iterable[Pkt], server_pkts: Iterable[Pkt],
                         client: Host, server: Host, *, events: Iterable[Event] = (),
                         names: Mapping[str, str] | None = None) -> Ladder:
    """Each packet as its sender captured it; the ones its receiver never saw are drops; ICMP
    from the path as its receiver captured it."""
    client_pkts, server_pkts = list(client_pkts), list(server_pkts)
    drawn: list[Pkt] = []
    lost: list[Pkt] = []
    notes = list(events)
    for sender, receiver, src, dst in ((client_pkts, server_pkts, client, server),
                                       (server_pkts, client_pkts, server, client)):
        sent = [p for p in sender if p.src == src.ip]
        _, only_sender, only_receiver = match_captures(sent, [p for p in receiver if p.src == src.ip])
        merged, arrived = coalesced(sent, only_receiver)
        drawn += sent + [p for p in only_receiver if id(p) not in merged]
        lost += [p for p in only_sender if id(p) not in arrived]
        notes += [(dst.name, p.ts, f"{n} coalesced in {p.length} B")
                  for p in only_receiver if (n := merged.get(id(p)))]
    drawn += [p for host, pkts in ((client, client_pkts), (server, server_pkts))
              for p in pkts if p.dst == host.ip and _from_path(p, client, server)]
    return build_ladder(drawn, client, server, events=notes, lost=lost, names=names)


def coalesced(sent: list[Pkt], only_receiver: list[Pkt]) -> tuple[dict[int, int], set[int]]:
    """TCP segments the receiver captured bigger than any one sent: several sent segments
    coalesced on the way (receive offload on a path the hosts cannot switch, such as an
    overlay's VXLAN device). Returns {id(received): how many sent segments it holds} for the
    received ones that hold only bytes the sender's capture shows it sent, and the ids of the
    sent segments inside them (they arrived: never drawn as lost)."""
    merged: dict[int, int] = {}
    arrived: set[int] = set()
    for r in only_receiver:
        if r.proto != "tcp" or not r.length:
            continue
        inside = [p for p in sent if p.proto == "tcp" and p.length
                  and (p.sport, p.dst, p.dport) == (r.sport, r.dst, r.dport)
                  and r.seq <= p.seq and p.seq + p.length <= r.seq + r.length]
        covered, end = r.seq, r.seq + r.length
        for p in sorted(inside, key=lambda p: p.seq):
            if p.seq > covered:
                break
            covered = max(covered, p.seq + p.length)
        if len(inside) > 1 and covered >= end:
            merged[id(r)] = len({p.seq for p in inside})
            arrived.update(id(p) for p in inside)
    return merged, arrived


def _segments(pkts: list[Pkt], client_ip: str) -> dict[int, Segment]:
    """Relative numbers for every TCP connection in `pkts`, keyed by id(pkt)."""
    conns = {(p.dst, p.dport, p.src, p.sport) if p.src == client_ip
             else (p.src, p.sport, p.dst, p.dport) for p in pkts if p.proto == "tcp"}
    out: dict[int, Segment] = {}
    for sip, sport, cip, cport in conns:
        flow = tcp_flow(pkts, (sip, sport), (cip, cport))
        out.update({id(s.pkt): s for s in flow.segments} if flow else {})
    return out


def _tcp_label(seg: Segment, last_win: dict[tuple, int]) -> str:
    p = seg.pkt
    parts = [",".join(_FLAG_NAMES[f] for f in p.flags) or "TCP", f"seq={seg.rel_seq}"]
    if "A" in p.flags and "S" not in p.flags or "SA" in p.flags:
        parts.append(f"ack={seg.rel_ack}")
    if p.length:
        parts.append(f"len={p.length}")
    direction = (p.src, p.sport, p.dst, p.dport)
    if "S" in p.flags or last_win.get(direction) != seg.window:
        parts.append(f"win={seg.window}")
    last_win[direction] = seg.window
    if 0 < p.length <= 16:
        parts.append(_quoted(p.payload))
    return ("[retx] " if seg.retransmission else "") + " ".join(parts)


def _label(p: Pkt) -> str:
    if p.frag_offset > 0:
        more = " MF" if p.mf else ""
        return f"IP frag {p.proto.upper()} id={p.ip_id} off={p.frag_offset} len={p.length}{more}"
    if p.proto == "udp":
        frag = f" (frag off=0 len={p.ip_payload} MF)" if p.mf else ""
        return f"UDP len={p.udp_len}{frag} {_quoted(p.payload)}".rstrip()
    if p.proto == "icmp":
        label = f"ICMP {p.icmp_error}" if p.icmp_type == 3 \
            else f"ICMP type={p.icmp_type} code={p.icmp_code}"
        if p.icmp_mtu:
            label += f" mtu={p.icmp_mtu}"
        q = p.quote
        return f"{label} ({q.proto.upper()} :{q.sport}->:{q.dport})" if q else label
    return f"{p.proto.upper()} len={p.length}"


def _quoted(data: bytes) -> str:
    if not data:
        return ""
    text = "".join(chr(b) if 32 <= b < 127 and b != 34 else "." for b in data[:16])
    return f'"{text}"' + ("..." if len(data) > 16 else "")


# ---------------------------------------------------------------- text
_GLYPHS = {False: ("│", "─", "►", "◄", "…", "┆", "◆"), True: ("|", "-", ">", "<", "~", ":", "*")}
_TIME_W = 11  # "   1234.567" + a space


def render_text(ladder: Ladder, width: int = 100, ascii_only: bool = False) -> str:
    """The ladder in at most `width` columns; long labels and notes are cut with an ellipsis."""
    bar = _GLYPHS[ascii_only][0]
    notes = [r for r in ladder.rows if isinstance(r, Note)]
    lw = min(24, max([len(n.label) + 2 for n in notes if not n.right] + [4]))
    rw = min(24, max([len(n.label) + 2 for n in notes if n.right]
                     + [len(ladder.right.name) // 2 + 1, len(ladder.right.ip) // 2 + 1]))
    labels = [len(a.label) + 8 for a in ladder.arrows]
    span = max(20, min(width - _TIME_W - lw - rw - 2, max(labels + [40])))
    xl, xr = _TIME_W + lw, _TIME_W + lw + span + 1
    lines = [_centred([(xl, ladder.left.name), (xr, ladder.right.name)], "ms".rjust(9)),
             _centred([(xl, ladder.left.ip), (xr, ladder.right.ip)], ""),
             " " * xl + bar + " " * span + bar]
    for row in ladder.rows:
        time = f"{row.t:10.3f} "
        if isinstance(row, Gap):
            gap = _GLYPHS[ascii_only][5]
            lines.append(" " * xl + gap + f"{_duration(row.ms)} later".center(span) + gap)
        elif isinstance(row, Arrow):
            body = _arrow_text(row, span, ascii_only)
            lines.append(time + " " * lw + bar + body + bar)
        elif row.right:
            lines.append(time + " " * lw + bar + " " * span + bar + " " +
                         _cut(row.label, rw - 1, ascii_only))
        else:
            lines.append(time + _cut(row.label, lw - 2, ascii_only).rjust(lw - 1) + " " + bar +
                         " " * span + bar)
    lines.append(" " * xl + bar + " " * span + bar)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _duration(ms: float) -> str:
    return f"{ms / 1e3:.2f} s" if ms >= 1e3 else f"{ms:.0f} ms"


def _centred(items: list[tuple[int, str]], start: str) -> str:
    line = start
    for x, text in items:
        at = max(len(line) + 1, x - len(text) // 2)
        line = line.ljust(at) + text
    return line


def _cut(text: str, n: int, ascii_only: bool) -> str:
    return text if len(text) <= n else text[:max(n - 1, 0)] + _GLYPHS[ascii_only][4]


def _arrow_text(a: Arrow, span: int, ascii_only: bool) -> str:
    _, dash, right, left, *_, path = _GLYPHS[ascii_only]
    label = f" {_cut(a.label, span - 6, ascii_only)} "
    if a.origin:  # from a host on the path: the arrow starts mid-way, at a diamond
        reach = max(span * 3 // 5, min(len(label) + 4, span - 6))
        label = f" {_cut(a.label, reach - 6, ascii_only)} "
        if a.rightward:
            return " " * (span - reach) + path + (dash + label).ljust(reach - 2, dash) + right
        return left + (label + dash).rjust(reach - 2, dash) + path + " " * (span - reach)
    if a.dropped:  # the arrow stops in mid-air with an X, well short of the receiver
        reach = max(span * 3 // 5, min(len(label) + 4, span - 6))
        label = f" {_cut(a.label, reach - 6, ascii_only)} "
        if a.rightward:
            return (dash + label).ljust(reach - 2, dash) + right + "X" + " " * (span - reach)
        return " " * (span - reach) + "X" + left + (label + dash).rjust(reach - 2, dash)
    if a.rightward:
        return (dash + label).ljust(span - 1, dash) + right
    return left + (label + dash).rjust(span - 1, dash)


# ---------------------------------------------------------------- SVG
_CW, _ROW, _TOP = 7.8, 26, 64  # char width (13 px mono), row height, header height
_COLOURS = {"arrow": "#222", "drop": "#c01c28", "retx": "#c64600", "note": "#1a5fb4"}


def render_svg(ladder: Ladder) -> str:
    """A self-contained SVG (no scripts, fonts or links outside it) with the same labels."""
    notes = [r for r in ladder.rows if isinstance(r, Note)]
    chars = max([len(a.label) for a in ladder.arrows] + [30])
    xl = 100 + max([len(n.label) * _CW + 20 for n in notes if not n.right] + [120])
    xr = xl + chars * _CW + 80  # room past the longest label for a drop's X and "lost"
    width = int(xr + max([len(n.label) * _CW + 20 for n in notes if n.right] + [120]))
    height = _TOP + _ROW * len(ladder.rows) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, '
           f'monospace" font-size="13">', _svg_defs(),
           f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="8" y="50" fill="#666">ms</text>']
    for x, host in ((xl, ladder.left), (xr, ladder.right)):
        out += [_svg_text(x, 22, host.name, anchor="middle", weight="bold"),
                _svg_text(x, 40, host.ip, anchor="middle", fill="#666"),
                f'<line x1="{x:.0f}" y1="50" x2="{x:.0f}" y2="{height - 10}" stroke="#888" '
                'stroke-width="2"/>']
    for i, row in enumerate(ladder.rows):
        y = _TOP + _ROW * i + _ROW // 2
        if isinstance(row, Gap):
            out += _svg_gap(row, xl, xr, y)
            continue
        out.append(_svg_text(8, y + 4, f"{row.t:.3f}", fill="#666"))
        out += _svg_arrow(row, xl, xr, y) if isinstance(row, Arrow) else [_svg_note(row, xl, xr, y)]
    return "\n".join(out + ["</svg>"]) + "\n"


def _svg_gap(g: Gap, xl: float, xr: float, y: float) -> list[str]:
    """The lifelines broken by a white band with zig-zag edges, the silence's length between."""
    h = _ROW // 2 - 3
    out = [f'<rect x="0" y="{y - h}" width="{xr + 40:.0f}" height="{2 * h}" fill="white"/>']
    for x in (xl, xr):
        for edge in (y - h, y + h):
            out.append(f'<path d="M{x - 8:.0f},{edge} l4,-3 l8,6 l4,-3" fill="none" '
                       'stroke="#888" stroke-width="1.5"/>')
    out.append(_svg_text((xl + xr) / 2, y + 4, f"{_duration(g.ms)} later", "middle", "#666"))
    return out


def _svg_defs() -> str:
    marks = "".join(
        f'<marker id="head-{k}" markerWidth="10" markerHeight="8" refX="9" refY="4" '
        f'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="{c}"/></marker>'
        for k, c in _COLOURS.items() if k in ("arrow", "retx"))
    return f"<defs>{marks}</defs>"


def _svg_text(x: float, y: float, text: str, anchor: str = "start", fill: str = "#222",
              weight: str = "normal") -> str:
    return (f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}">{escape(text)}</text>')


def _svg_arrow(a: Arrow, xl: float, xr: float, y: float) -> list[str]:
    """An arrow with its label above. A dropped one stops short with an X: its label over the
    part drawn, its "lost" mark past the X where no line runs (the width leaves room)."""
    kind = "drop" if a.dropped else "retx" if a.retransmission else "arrow"
    colour = _COLOURS[kind]
    x1, x2 = (xl, xr) if a.rightward else (xr, xl)
    side = 1 if a.rightward else -1
    reach = max(abs(x2 - x1) * 0.6, len(a.label) * _CW + 16)
    if a.origin:  # from a host on the path: starts mid-way, at a diamond
        x1 = x2 - side * min(reach, abs(x2 - x1))
    end = x1 + side * reach if a.dropped else x2 - 4 * side
    dash = ' stroke-dasharray="6 3"' if a.retransmission else ""
    head = "" if a.dropped else f' marker-end="url(#head-{kind})"'
    out = [f'<line x1="{x1:.0f}" y1="{y}" x2="{end:.0f}" y2="{y}" stroke="{colour}" '
           f'stroke-width="1.5"{dash}{head}/>',
           _svg_text((x1 + (end if a.dropped else x2)) / 2, y - 5, a.label, "middle", colour)]
    if a.origin:
        out.append(f'<path d="M{x1:.0f},{y - 6} l6,6 l-6,6 l-6,-6 z" fill="{colour}"/>')
    if a.dropped:
        out.append(f'<path d="M{end - 6:.0f},{y - 6} L{end + 6:.0f},{y + 6} M{end - 6:.0f},'
                   f'{y + 6} L{end + 6:.0f},{y - 6}" stroke="{colour}" stroke-width="2"/>')
        out.append(_svg_text(end + 10 * side, y + 4, "lost",
                             "start" if a.rightward else "end", colour, "bold"))
    return out


def _svg_note(n: Note, xl: float, xr: float, y: float) -> str:
    if n.right:
        return _svg_text(xr + 10, y + 4, n.label, fill=_COLOURS["note"])
    return _svg_text(xl - 10, y + 4, n.label, anchor="end", fill=_COLOURS["note"])
