"""P1: Path MTU discovery on the wire, on a path with a narrow link (topologies/router.yml).

The client's own link carries 1500 bytes, the wan between the two routers 1000. Four runs, each
from a clean route cache (the client's cached path MTU flushed, and checked), captured on the
client and the server, with the first router's counters read before and after:
  dont  UDP without DF (IP_PMTUDISC_DONT): the router cuts the datagram into fragments;
  do    UDP with DF (IP_PMTUDISC_DO): the router drops it and answers ICMP "fragmentation
        needed" with the wan's MTU; the client's next sendto() of that size fails, EMSGSIZE;
  want  Linux's default for UDP (DF while it fits the known path MTU): the first datagram is
        lost to that ICMP, the later ones are fragmented by the client itself;
  tcp   TCP: the first full-sized segments meet the same ICMP; the client lowers its segment
        size and resends, and every byte arrives.
The verdict reads only what was captured, counted and printed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from socketlab.act.programs import (
    Options,
    run_programs,
    tcp_client_argv,
    tcp_server_argv,
    udp_client_argv,
    udp_server_argv,
)
from socketlab.errors import ConfigError
from socketlab.experiments.base import Evidence, Experiment, Status, Verdict
from socketlab.lab.topology import Topology
from socketlab.observe.analysis import icmp_errors, tcp_flow
from socketlab.observe.counters import delta, snapshot
from socketlab.observe.observation import Context, events_of, ladder_files, observe
from socketlab.observe.pcap import Pkt

TOPOLOGY = "router.yml"
ROUTER_COUNTERS = ("Ip.ForwDatagrams", "Ip.FragOKs", "Ip.FragCreates", "Ip.FragFails",
                   "Ip.ReasmReqds", "Ip.ReasmOKs", "Icmp.OutDestUnreachs")
UDP_SENDS = {"dont": 1, "do": 3, "want": 3}
TCP_SEGMENTS = 8  # the client sends this many full-sized segments' worth
_ROUTE_MTU = re.compile(r"\bmtu (\d+)")


def path_of(topo: Topology) -> dict[str, Any]:
    """Who is who on the path: client, server, the first router, the MTUs crossed."""
    client, server = topo.role_host("client"), topo.role_host("server")
    if client is None or server is None or not topo.routed:
        raise ConfigError("P1 needs a topology with a client, a server and routers between them",
                          hint="run it on topologies/router.yml")
    mtus = topo.mtu_path(client.name, server.name)
    lan = topo.network(server.networks[0]).subnet  # placed: every network has its subnet
    hop = dict(topo.routes()[client.name]).get(lan) if lan else None
    router = next((h for h in topo.by_role("router") if hop in dict(h.addresses).values()), None)
    if hop is None or router is None or min(mtus) >= mtus[0]:
        raise ConfigError(f"P1 needs a link narrower than the client's on the way to the server "
                          f"(MTUs on the path: {mtus})", hint="run it on topologies/router.yml")
    return {"client": client.name, "server": server.name, "client_ip": client.ip,
            "server_ip": server.ip, "router": router.name, "router_ip": hop,
            "mtus": mtus, "narrow": min(mtus), "first": mtus[0]}


def route_mtu(ctx: Context, host: str, dest: str) -> int | None:
    """The path MTU the host's kernel has learned for dest (None: none learned)."""
    out = ctx.lab.exec(host, ["ip", "route", "get", dest], timeout=10, instruments=True).stdout
    found = _ROUTE_MTU.search(out)
    return int(found.group(1)) if found else None


def _clean_cache(ctx: Context, path: dict[str, Any]) -> int | None:
    """Forget the path MTU the client has learned; what `ip route get` then says (None: clean).
    `ip route flush cache` keeps learned MTUs (they hang on the route's next hop): the
    client's routes through the routers are deleted, every one, then put back as they were."""
    routes = ctx.lab.topology.routes()[path["client"]]
    script = "; ".join([f"ip route del {net}" for net, _ in routes]
                       + [f"ip route add {net} via {hop}" for net, hop in routes])
    ctx.lab.exec(path["client"], ["sh", "-c", script], timeout=10, instruments=True)
    return route_mtu(ctx, path["client"], path["server_ip"])


def _wire(pkts: list[Pkt], src: str, proto: str) -> list[dict[str, Any]]:
    return [{"ip_len": p.ip_len, "df": p.df, "mf": p.mf, "offset": p.frag_offset, "id": p.ip_id}
            for p in pkts if p.src == src and p.proto == proto]


def _icmp(pkts: list[Pkt], client_ip: str) -> list[dict[str, Any]]:
    return [{"src": e.pkt.src, "type": e.pkt.icmp_type, "code": e.pkt.icmp_code,
             "mtu": e.pkt.icmp_mtu, "quoted": e.quote.proto if e.quote else None}
            for e in icmp_errors(pkts) if e.pkt.dst == client_ip]


def _part(ctx: Context, path: dict[str, Any], name: str, action, proto: str
          ) -> tuple[dict[str, Any], Any]:
    """One run from a clean cache: capture on client and server, the router's counters."""
    before_mtu = _clean_cache(ctx, path)
    router_before = snapshot(ctx.lab, path["router"])
    obs = observe(ctx, action, name=f"p1-{name}", hosts=[path["client"], path["server"]])
    router = delta(router_before, snapshot(ctx.lab, path["router"]))
    client_pkts, server_pkts = obs.packets[path["client"]], obs.packets[path["server"]]
    facts = {
        "pmtu_before": before_mtu,
        "pmtu_after": route_mtu(ctx, path["client"], path["server_ip"]),
        "client_out": _wire(client_pkts, path["client_ip"], proto),
        "server_in": _wire(server_pkts, path["client_ip"], proto),
        "icmp": _icmp(client_pkts, path["client_ip"]),
        "router": {k: router.get(k, 0) for k in ROUTER_COUNTERS},
        "capture_complete": all(c.complete for c in obs.capture.hosts.values()),
    }
    return facts, obs


def _udp(ctx: Context, path: dict[str, Any], mode: str, size: int) -> tuple[dict[str, Any], Any]:
    port = ctx.lab.config.port
    server = udp_server_argv(port=port, bufsize=65535, timeout=3)
    client = udp_client_argv(host=path["server_ip"], port=port, size=[size], count=UDP_SENDS[mode],
                             pmtudisc=mode, interval=0.3, keep_going=True, end_with_empty=True)
    facts, obs = _part(ctx, path, mode, lambda: run_programs(ctx.lab, Options(proto="udp"),
                                                             server, client), "udp")
    run = obs.result
    facts["sends"] = [e.fields.get("errno", "sent") for e in run.client_events
                      if (e.name == "sent" and e.fields.get("n")) or
                      (e.name == "error" and e.fields.get("op") == "sendto")]
    facts["received"] = [int(e.fields.get("n", 0)) for e in run.server_events
                         if e.name == "recvfrom" and int(e.fields.get("n", 0)) > 0]
    return facts, obs


def _tcp(ctx: Context, path: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    port = ctx.lab.config.port
    message = "x" * (TCP_SEGMENTS * (path["first"] - 52))
    server = tcp_server_argv(port=port, bufsize=65536)
    client = tcp_client_argv(host=path["server_ip"], port=port, message=message)
    facts, obs = _part(ctx, path, "tcp", lambda: run_programs(ctx.lab, Options(proto="tcp"),
                                                              server, client), "tcp")
    run, client_pkts = obs.result, obs.packets[path["client"]]
    flow = tcp_flow(client_pkts, (path["server_ip"], port))
    syn = [s for s in flow.segments if "S" in s.flags] if flow else []
    icmp_at = max((p.ts for p in client_pkts if p.icmp_mtu is not None), default=None)  # the last
    data = [p for p in client_pkts if p.src == path["client_ip"] and p.proto == "tcp" and p.length]
    facts.update({
        "mss": {("client" if s.from_client else "server"): s.pkt.mss for s in syn},
        "data_before_icmp": max((p.ip_len for p in data if icmp_at is None or p.ts < icmp_at),
                                default=0),
        "data_after_icmp": max((p.ip_len for p in data if icmp_at is not None and p.ts > icmp_at),
                               default=0),
        "retransmissions": len(flow.retransmissions) if flow else 0,
        "bytes_sent": sum(int(e.fields.get("n", 0)) for e in run.client_events if e.name == "sent"),
        "bytes_received": sum(int(e.fields.get("n", 0)) for e in run.server_events
                              if e.name == "recv"),
    })
    return facts, obs


def run_p1(ctx: Context) -> Evidence:
    path = path_of(ctx.lab.topology)
    nat = ctx.lab.exec(path["router"], ["iptables", "-t", "nat", "-S"], timeout=10, instruments=True)
    path["router_nat_rules"] = sum(1 for line in nat.stdout.splitlines() if line.startswith("-A"))
    size = (path["first"] + path["narrow"]) // 2 - 28  # an IP packet between the two MTUs
    parts, artifacts = {}, {}
    for mode in ("dont", "do", "want"):
        parts[mode], obs = _udp(ctx, path, mode, size)
        artifacts.update(ladder_files(ctx, obs, f"p1-{mode}"))
    parts["tcp"], obs = _tcp(ctx, path)
    artifacts.update(ladder_files(ctx, obs, "p1-tcp"))
    events = events_of(obs.result)
    notes = tuple(f"{mode}: client sent {[w['ip_len'] for w in p['client_out']]}, server got "
                  f"{[(w['ip_len'], w['offset']) for w in p['server_in']]}, ICMP "
                  f"{[(i['src'], i['mtu']) for i in p['icmp']]}, router {p['router']}"
                  for mode, p in parts.items())
    return Evidence("P1", {"path": path, "size": size, "parts": parts}, notes, events, artifacts)


# ---------------------------------------------------------------- the verdict
def refragmented(part: dict[str, Any], path: dict[str, Any]) -> str:
    """Why the router made fragments of packets the client had already fragmented, from its
    own counters (pure): it reassembled them first. "" when it did not."""
    r = part["router"]
    client_made = [w for w in part["client_out"] if w["mf"] or w["offset"]]
    if not (client_made and r.get("Ip.ReasmOKs") and r.get("Ip.FragCreates")):
        return ""
    why = (f"; its nat table holds {path['router_nat_rules']} rules (Docker's DNS), which keep "
           "connection tracking on" if path.get("router_nat_rules") else "")
    return (f"{path['router']} reassembled the client's {r['Ip.ReasmReqds']} fragments into "
            f"{r['Ip.ReasmOKs']} datagrams (Ip.ReasmReqds +{r['Ip.ReasmReqds']}, ReasmOKs "
            f"+{r['Ip.ReasmOKs']}: connection tracking gathers a datagram's fragments before it "
            f"can match it{why}) and cut them again for the {path['narrow']}-byte link "
            f"(FragOKs +{r['Ip.FragOKs']}, FragCreates +{r['Ip.FragCreates']}): the fragments "
            "that reached the server are the router's")



def _needed(part: dict[str, Any], path: dict[str, Any]) -> list[dict[str, Any]]:
    """The router's "fragmentation needed" answers that name the narrow link's MTU."""
    return [i for i in part["icmp"] if (i["type"], i["code"]) == (3, 4)
            and i["src"] == path["router_ip"] and i["mtu"] == path["narrow"]]


def part_results(f: Mapping[str, Any]) -> dict[str, bool]:
    """Did each run show what PMTU discovery predicts? (pure)"""
    path, size, p = f["path"], f["size"] + 28, f["parts"]
    narrow = path["narrow"]
    dont, do, want, tcp = p["dont"], p["do"], p["want"], p["tcp"]
    frags = [w for w in dont["server_in"] if w["mf"] or w["offset"]]
    return {
        "dont": any(w["ip_len"] == size and not w["df"] for w in dont["client_out"])
        and len(frags) >= 2 and all(w["ip_len"] <= narrow for w in dont["server_in"])
        and dont["received"] == [f["size"]] and dont["router"]["Ip.FragCreates"] >= 2,
        "do": bool(_needed(do, path)) and do["sends"][:1] == ["sent"]
        and set(do["sends"][1:]) == {"EMSGSIZE"} and not do["received"]
        and do["pmtu_after"] == narrow,
        "want": bool(_needed(want, path)) and len(want["received"]) == UDP_SENDS["want"] - 1
        and any(w["mf"] and w["ip_len"] <= narrow for w in want["client_out"]),
        "tcp": bool(_needed(tcp, path)) and tcp["data_before_icmp"] > narrow
        and 0 < tcp["data_after_icmp"] <= narrow
        and all(w["ip_len"] <= narrow for w in tcp["server_in"])
        and tcp["bytes_received"] == tcp["bytes_sent"] > 0 and tcp["pmtu_after"] == narrow,
    }


def judge_p1(ev: Evidence) -> Verdict:
    f = ev.facts
    parts, path = f["parts"], f["path"]
    stale = [m for m, p in parts.items() if p["pmtu_before"] is not None]
    if stale:
        return Verdict("P1", "inconclusive", f"the client's path MTU was already cached before "
                       f"{', '.join(stale)} ({parts[stale[0]]['pmtu_before']}): the run did not "
                       "start from a clean route cache")
    if not all(p["capture_complete"] for p in parts.values()):
        return Verdict("P1", "inconclusive", "a capture lost packets; the wire is not fully seen")
    ok = part_results(f)
    narrow, tcp, do = path["narrow"], parts["tcp"], parts["do"]
    icmp = _needed(tcp, path) or _needed(do, path)
    said = [
        f"{path['router']} ({path['router_ip']}) answered ICMP fragmentation needed, MTU "
        f"{icmp[0]['mtu']}" if icmp else f"no ICMP fragmentation needed naming MTU {narrow} came back",
        f"TCP segments of {tcp['data_before_icmp']} bytes then at most {tcp['data_after_icmp']}, "
        f"{tcp['bytes_received']} of {tcp['bytes_sent']} bytes delivered",
        f"UDP with DF: sendto() gave {', '.join(do['sends'])}",
        f"UDP without DF: {len([w for w in parts['dont']['server_in'] if w['mf'] or w['offset']])} "
        f"fragments reached the server ({parts['dont']['router']['Ip.FragCreates']} made by "
        f"{path['router']})",
        "Linux's default lost its first datagram and fragmented the rest itself" if ok["want"]
        else "Linux's default did not behave as predicted",
    ]
    said += [x for x in [refragmented(parts["want"], path)] if x]
    status: Status
    if all(ok.values()):
        status = "holds"
    elif any(ok.values()):
        status = "holds in part"
    else:
        status = "does not hold"
    return Verdict("P1", status, "; ".join(said) + ".")


EXPERIMENTS = (
    Experiment("P1", "Path MTU discovery across a narrow link",
               "a packet too big for a link on its path is refused by the router with ICMP "
               "'fragmentation needed' (when DF is set) or fragmented by it (when not); the "
               "sender then lowers its path MTU, and TCP its segment size",
               run_p1, judge_p1, topology=TOPOLOGY),
)
