"""The post's TCP claims: C1 (connect refused), C3 (three-way handshake), C4 (byte stream)."""

from __future__ import annotations

from socketlab.analysis import tcp_flow
from socketlab.events import payload
from socketlab.experiment import Context, Evidence, Experiment, Verdict
from socketlab.experiments.common import events_of, ladder_files, observe
from socketlab.programs import Options, run_pair


# ---------------------------------------------------------------- C4
def run_c4(ctx: Context) -> Evidence:
    opts = Options(proto="tcp")
    obs = observe(ctx, lambda: run_pair(ctx.lab, opts), name="tcp")
    run = obs.result
    cfg = ctx.lab.config
    flow = tcp_flow(obs.packets["server"], (cfg.server_ip, cfg.port))
    wire = [s for s in flow.data if s.from_client] if flow else []
    pieces = [e.fields["data"] for e in run.server_events if e.name == "recv"]
    facts = {
        "sent": payload(run.client_events, "sent").decode("latin-1"),
        "received": payload(run.server_events, "recv").decode("latin-1"),
        "recv_pieces": pieces,
        "bufsize": opts.bufsize,
        "wire_segments": [s.pkt.length for s in wire],
        "wire_bytes": b"".join(s.pkt.payload for s in wire).decode("latin-1"),
        "capture_dropped": obs.capture.dropped,
    }
    observations = (
        f"client sent {facts['sent']!r} with one sendall()",
        f"on the wire (server's capture): {len(wire)} data segment(s) of "
        f"{facts['wire_segments']} bytes carrying {facts['wire_bytes']!r}",
        "server's recv(3) calls returned " + ", ".join(repr(p) for p in pieces),
    )
    return Evidence("C4", facts, observations, events_of(run),
                    ladder_files(ctx, obs, "tcp", events_of(run)))


def judge_c4(ev: Evidence) -> Verdict:
    f = ev.facts
    pieces = [p for p in f["recv_pieces"] if p]
    if not f["sent"] or f["capture_dropped"]:
        return Verdict("C4", "inconclusive", "nothing was sent, or the capture dropped packets")
    whole = f["received"] == f["sent"]
    cut = len(pieces) > 1 and all(len(p) <= f["bufsize"] for p in pieces)
    if whole and cut:
        return Verdict("C4", "holds", f"the {len(f['sent'])} bytes the client sent in one call "
                       f"crossed the wire as {f['wire_segments']} and the server read all of them "
                       f"in {len(pieces)} recv({f['bufsize']}) calls: the stream kept every byte, "
                       "the message boundaries are the reader's to choose")
    if whole:
        return Verdict("C4", "holds in part", "every byte arrived, but not in pieces of the "
                       f"receive size: {pieces}")
    return Verdict("C4", "does not hold", f"the server read {f['received']!r} of {f['sent']!r}")


C4 = Experiment("C4", "TCP is a byte stream",
                "With recv(3) the server reads the 11 bytes in pieces and loses nothing; the "
                "application loops to read them all.", run_c4, judge_c4)

EXPERIMENTS = (C4,)
