"""Terminal rendering of a run: the two hosts' events side by side on one timeline.

Pure: takes data, returns rich renderables or strings. The CLI prints them.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from socketlab.act.programs import PairRun
from socketlab.observe.events import Event, payload


def event_text(event: Event) -> str:
    """An event line without its timestamp (the table has a time column)."""
    return event.raw.rsplit(" t=", 1)[0] if event.t is not None else event.raw


def describe(event: Event, bufsize: int, proto: str = "tcp") -> str:
    """An event as the socket call it reports, the way the post writes it; else the raw line.
    A UDP server only binds (no listen); the TCP client calls sendall(), the UDP one sendto()."""
    f = event.fields
    data = f'"{f.get("data", "")}"'
    what = data if "data" in f else f"{f.get('n')} bytes"  # a large datagram: its size only
    sent = (f"sendto({what}, {f['peer']}) -> {f.get('n')}" if "peer" in f
            else f"sendall({what}) ({f.get('n')} bytes)")
    forms = {
        "listening": (f"bind + listen: waiting on {f.get('addr')}" if proto == "tcp"
                      else f"bind: waiting on {f.get('addr')} (no listen in UDP)"),
        "accepted": f"accept() -> connection from {f.get('peer')}",
        "connected": f"connect() -> {f.get('peer')} (from {f.get('local')})",
        "sent": sent,
        "recv": f"recv({bufsize}) -> {data}" + (" (peer closed)" if f.get("n") == 0 else ""),
        "recvfrom": f"recvfrom({bufsize}) -> {data} from {f.get('peer')}",
        "closed": "close()",
        "stop": f"loop ends: {f.get('reason')}",
        "error": f"{f.get('op')}() failed: {f.get('errno')} {f.get('msg', '')}",
    }
    return forms.get(event.name, event_text(event))


def side_by_side(run: PairRun, client_ip: str, server_ip: str) -> Table:
    """One row per event, in time order: client events on the left, server's on the right.
    A program prints each event once its call has returned, so a row's time is that moment
    (the caption says so): a send that returned after the data arrived is listed after the
    server's recv."""
    rows = [(e.t or 0.0, "client", e) for e in run.client_events]
    rows += [(e.t or 0.0, "server", e) for e in run.server_events]
    rows.sort(key=lambda row: row[0])
    t0 = rows[0][0] if rows else 0.0
    table = Table(title=f"{run.options.proto.upper()}: {run.options.message!r}, "
                        f"receive size {run.options.bufsize}", title_justify="left",
                  caption="ms: when each call had returned, from the first row",
                  caption_justify="left")
    table.add_column("ms", justify="right", style="dim")
    table.add_column(f"client {client_ip}", overflow="fold")
    table.add_column(f"server {server_ip}", overflow="fold")
    for t, host, event in rows:
        cell = Text(describe(event, run.options.bufsize, run.options.proto),
                    style="red" if event.name == "error" else "")
        cells = (cell, "") if host == "client" else ("", cell)
        table.add_row(f"{(t - t0) * 1000:.1f}", *cells)
    return table


def observation(run: PairRun) -> str:
    """One sentence on what the programs did, from their events and exit codes: a failed call
    or a program that died is reported as such, and nothing is said about what was not
    observed (with no server of the lab's, what arrived is not known)."""
    err = run.error()
    if err is not None:
        return (f"{err.fields.get('op')}() failed with {err.fields.get('errno')} "
                f"({err.fields.get('msg')})")
    died = _died(run)
    if died:
        return died
    sent = payload(run.client_events, "sent")
    if not run.options.server:
        return _client_only(run, sent)
    if run.options.proto == "tcp":
        pieces = [e for e in run.server_events if e.name == "recv" and e.fields.get("n")]
        got = payload(run.server_events, "recv")
        verdict = "nothing lost" if got == sent else f"{len(sent) - len(got)} bytes missing"
        return (f"TCP is a byte stream: the client sent {len(sent)} bytes, the server read "
                f"{len(got)} in {len(pieces)} recv({run.options.bufsize}) calls: {verdict}.")
    grams = [e for e in run.server_events if e.name == "recvfrom" and e.fields.get("n")]
    got = payload(grams, "recvfrom")
    sent_grams = [e for e in run.client_events if e.name == "sent" and e.fields.get("n")]
    if not grams:
        return (f"UDP: none of the {len(sent_grams)} datagram(s) sent ({len(sent)} bytes) "
                "reached the server's recvfrom().")
    return _udp_arrived(run.options.bufsize, grams, sent_grams, len(got), len(sent))


def _udp_arrived(bufsize: int, grams: list[Event], sent_grams: list[Event], got: int,
                 sent: int) -> str:
    """What arrived of the datagrams: cut only where one sent was longer than recvfrom's size."""
    arrived = f"UDP keeps datagrams: {len(grams)} of {len(sent_grams)} datagram(s) arrived"
    longer = [e for e in sent_grams if int(e.fields.get("n", 0)) > bufsize]
    if not longer:
        return (f"{arrived}, each whole: recvfrom({bufsize}) had room for every datagram sent, "
                f"and the server got {got} of the {sent} bytes sent.")
    which = "each datagram" if len(longer) == len(sent_grams) else \
        f"each datagram longer than {bufsize} bytes"
    return (f"{arrived}; recvfrom({bufsize}) returned {grams[0].fields.get('data')!r}, so the "
            f"server got {got} of the {sent} bytes sent: the rest of {which} is gone.")


def _died(run: PairRun) -> str:
    """A program that ended badly without saying why in an event: its exit and last words."""
    from socketlab.act.programs import RUN_TIMEOUT_S

    for host, code, stderr in (("server", run.server_exit, run.server_stderr),
                               ("client", run.client_exit, run.client_stderr)):
        if code in (0, None):
            continue
        if code == 124:
            return (f"the {host} program was stopped at the end of its {RUN_TIMEOUT_S:.0f} s "
                    "budget: no conclusion is drawn from this run.")
        last = (stderr.strip().splitlines() or ["no message"])[-1]
        return (f"the {host} program died (exit code {code}: {last}): no conclusion is drawn "
                "from this run.")
    return ""


def _client_only(run: PairRun, sent: bytes) -> str:
    """With no server of the lab's: only what the client did and was told."""
    if run.options.proto == "tcp":
        peer = next((e.fields.get("peer") for e in run.client_events if e.name == "connected"), "?")
        return (f"No lab server ran: the client connected to {peer} and sent {len(sent)} bytes; "
                "whatever answered there, what it received was not observed.")
    grams = [e for e in run.client_events if e.name == "sent" and e.fields.get("n")]
    return (f"No lab server ran: the client sent {len(grams)} datagram(s) ({len(sent)} bytes) "
            "and finished without an error: UDP tells the sender nothing about whether they "
            "arrived.")


STATUS_STYLE = {"holds": "green", "holds in part": "yellow", "does not hold": "red",
                "inconclusive": "dim"}


def verdict_table(results) -> Table:
    """One row per experiment: claim id, title, verdict, and the verdict's sentence below."""
    table = Table(title="The post's claims, checked in the lab", title_justify="left",
                  show_lines=True)
    table.add_column("claim")
    table.add_column("verdict", no_wrap=True)
    table.add_column("what the post says / what the lab observed", overflow="fold")
    for r in results:
        style = STATUS_STYLE.get(r.verdict.status, "")
        observed = Text(r.experiment.title, style="bold")
        observed.append("\n" + r.verdict.summary, style="")
        table.add_row(r.experiment.id, Text(r.verdict.status, style=style), observed)
    return table


def evidence_text(result) -> str:
    """One experiment in full, as plain text: claim, observations, verdict, ladder."""
    from pathlib import Path

    lines = [f"{result.experiment.id}: {result.experiment.title}",
             f"the post: {result.experiment.claim}", "observed:"]
    lines += [f"  - {o}" for o in result.evidence.observations]
    lines.append(f"verdict: {result.verdict.status}: {result.verdict.summary}")
    for name, path in result.evidence.artifacts.items():
        if name.endswith("(text)") and Path(path).exists():
            lines += ["", name, Path(path).read_text()]
    return "\n".join(lines)
