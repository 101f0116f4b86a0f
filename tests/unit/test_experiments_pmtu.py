"""P1's judge on evidence of the kind a real run on topologies/router.yml gives (the numbers are
from one, 2026-12-08): the verdict follows the facts, and r1's counters explain its fragments."""

from __future__ import annotations

import copy

from socketlab.experiments.base import Evidence
from socketlab.experiments.pmtu import EXPERIMENTS, refragmented

(P1,) = EXPERIMENTS
PATH = {"client": "client", "server": "server", "client_ip": "192.168.129.6",
        "server_ip": "192.168.131.5", "router": "r1", "router_ip": "192.168.129.2",
        "mtus": [1500, 1000, 1500], "narrow": 1000, "first": 1500, "router_nat_rules": 2}
NEEDED = [{"src": "192.168.129.2", "type": 3, "code": 4, "mtu": 1000, "quoted": "udp"}]


def w(ip_len, mf=False, offset=0, df=False):
    return {"ip_len": ip_len, "mf": mf, "offset": offset, "df": df, "id": 1}


def counters(fwd=0, frag_oks=0, creates=0, fails=0, reqds=0, reasm=0, unreach=0):
    return {"Ip.ForwDatagrams": fwd, "Ip.FragOKs": frag_oks, "Ip.FragCreates": creates,
            "Ip.FragFails": fails, "Ip.ReasmReqds": reqds, "Ip.ReasmOKs": reasm,
            "Icmp.OutDestUnreachs": unreach}


def part(**facts):
    return {"pmtu_before": None, "pmtu_after": None, "capture_complete": True, "icmp": [],
            "received": [], "sends": [], **facts}


def evidence() -> Evidence:
    frags = [w(996, mf=True), w(274, offset=976)]
    parts = {
        "dont": part(client_out=[w(1250), w(28)], server_in=[*frags, w(28)], received=[1222],
                     router=counters(2, 1, 2)),
        "do": part(client_out=[w(1250, df=True), w(28, df=True)], server_in=[w(28)], icmp=NEEDED,
                   sends=["sent", "EMSGSIZE", "EMSGSIZE"], pmtu_after=1000,
                   router=counters(2, fails=1, unreach=1)),
        "want": part(client_out=[w(1250, df=True), *frags, *frags, w(28, df=True)],
                     server_in=[*frags, *frags, w(28)], icmp=NEEDED, received=[1222, 1222],
                     router=counters(4, 2, 4, 1, 4, 2, 1)),
        "tcp": part(client_out=[w(1500, df=True), w(1000, df=True)], server_in=[w(1000)],
                    icmp=[{**NEEDED[0], "quoted": "tcp"}], data_before_icmp=1500,
                    data_after_icmp=1000, bytes_sent=11584, bytes_received=11584, pmtu_after=1000,
                    router=counters(40, fails=8, unreach=8)),
    }
    return Evidence("P1", {"path": PATH, "size": 1222, "parts": parts})


def test_p1_holds_and_explains_the_routers_fragments():
    v = P1.judge(evidence())
    assert v.status == "holds", v.summary
    assert ("r1 reassembled the client's 4 fragments into 2 datagrams (Ip.ReasmReqds +4, ReasmOKs +2"
            in v.summary)
    assert "its nat table holds 2 rules (Docker's DNS)" in v.summary
    assert "(FragOKs +2, FragCreates +4)" in v.summary


def test_no_reassembly_no_explanation():
    ev = evidence()
    ev.facts["parts"]["want"]["router"] = counters(4, fails=1, unreach=1)
    assert refragmented(ev.facts["parts"]["want"], PATH) == ""
    assert "reassembled" not in P1.judge(ev).summary


def test_the_verdict_follows_the_evidence():
    ev = copy.deepcopy(evidence())
    ev.facts["parts"]["do"]["icmp"] = []
    ev.facts["parts"]["do"]["sends"] = ["sent", "sent", "sent"]
    assert P1.judge(ev).status == "holds in part"
    ev = copy.deepcopy(evidence())
    ev.facts["parts"]["tcp"]["pmtu_before"] = 1000
    assert P1.judge(ev).status == "inconclusive"
