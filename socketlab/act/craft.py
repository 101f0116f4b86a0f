"""Packets made by hand, sent from a lab host with the image's scapy (lab-craft in the host).

    sent = craft(lab, "client", Craft("tcp", to="server", dport=6666, flags="S", answer=1.0))
    sent.sent       # ['IP / TCP 192.168.33.6:40112 > 192.168.33.5:6666 S']
    sent.answers    # ['IP / TCP 192.168.33.5:6666 > 192.168.33.6:40112 RA']: nobody listens

The packet is built and sent inside the host, never on this machine; its destination must be one
of the lab's hosts (lab-craft refuses any other, and sends nothing then), and the whole run is
bounded: at most 100 packets, within `bounded` seconds. Scapy is not imported here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from socketlab.errors import ConfigError, ProgramFailed
from socketlab.lab.lab import Lab

PROTOCOLS = ("tcp", "udp", "icmp")
MAX_PACKETS = 100
EXIT_REFUSED = 2


@dataclass(frozen=True)
class Craft:
    """What to send. `to` is a host of the lab or its address; `scapy` (an expression over IP,
    TCP, UDP, ICMP, Raw and fragment, built in the host) replaces the fields when given."""

    proto: str = "tcp"
    to: str = "server"
    dport: int | None = None   # default: the lab's port
    sport: int | None = None   # default: an ephemeral port, as a kernel would pick
    flags: str | None = None   # TCP flags, e.g. "S", "SA", "F", "R" (default S)
    seq: int | None = None
    df: bool = False           # IP's don't-fragment bit
    ttl: int | None = None
    payload: str = ""
    size: int | None = None    # the whole IP packet this long (the payload padded)
    count: int = 1
    interval: float = 0.0      # seconds between packets
    answer: float = 0.0        # seconds to wait for answers (0: send only)
    scapy: str = ""

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.proto!r}", hint="use tcp, udp or icmp")
        if not 1 <= self.count <= MAX_PACKETS:
            raise ConfigError(f"count {self.count} is out of range", hint=f"use 1 to {MAX_PACKETS}")
        if not 0 <= self.interval <= 10 or not 0 <= self.answer <= 30:
            raise ConfigError("interval or answer out of range",
                              hint="--interval 0 to 10 s, --answer 0 to 30 s")
        for name, value, top in (("dport", self.dport, 65535), ("sport", self.sport, 65535),
                                 ("ttl", self.ttl, 255), ("size", self.size, 65535)):
            if value is not None and not 1 <= value <= top:
                raise ConfigError(f"{name} {value} is out of range", hint=f"use 1 to {top}")
        if self.flags is not None and (self.proto != "tcp" or not set(self.flags) <= set("FSRPAUEC")):
            raise ConfigError(f"flags {self.flags!r} are not TCP flags",
                              hint="TCP only, letters of FSRPAUEC, e.g. S or SA")


@dataclass(frozen=True)
class Crafted:
    """What left the host (scapy's one-line summaries) and what came back in time."""

    host: str
    sent: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)  # with show: each packet decoded, in order

    def as_dict(self) -> dict:
        return asdict(self)


def craft_argv(what: Craft, dst: str, allow: list[str], *, port: int, show: bool = False) -> list[str]:
    """lab-craft's command line (pure): the spec as JSON, the lab's addresses as the allowed ones."""
    if what.scapy:
        spec: dict = {"scapy": what.scapy}
    else:
        spec = {"proto": what.proto, "dst": dst, "dport": what.dport or port}
        spec.update({k: v for k, v in (("sport", what.sport), ("flags", what.flags), ("seq", what.seq),
                                       ("ttl", what.ttl), ("size", what.size)) if v is not None})
        spec.update({"df": True} if what.df else {})
        spec.update({"payload": what.payload} if what.payload else {})
    argv = ["lab-craft", "--allow", ",".join(allow), "--count", str(what.count),
            "--interval", f"{what.interval:g}", "--answer", f"{what.answer:g}"]
    return [*argv, *(["--show"] if show else []), json.dumps(spec, separators=(",", ":"))]


def craft(lab: Lab, host: str, what: Craft, *, show: bool = False) -> Crafted:
    """Send `what` from `host`; ConfigError if lab-craft refused it (nothing was sent then)."""
    addresses = {h.name: h.ip for h in lab.topology.hosts}  # a host by name: its first address
    every = sorted({ip for h in lab.topology.hosts for _, ip in h.addresses if ip})
    dst = addresses.get(what.to, what.to)
    if not what.scapy and dst not in every:
        raise ConfigError(f"{what.to!r} is not a host of this lab",
                          hint=f"send to one of {', '.join(f'{h} ({a})' for h, a in addresses.items())}")
    budget = 10 + what.count * what.interval + what.answer
    result = lab.exec(host, craft_argv(what, dst, every, port=lab.config.port,
                                       show=show), timeout=budget)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.exit_code == EXIT_REFUSED:
        said = [ln for ln in result.stderr.splitlines() if ln.startswith("lab-craft: ")]
        raise ConfigError(said[-1].removeprefix("lab-craft: ") if said else "lab-craft refused",
                          hint="see `socketlab craft --help`")
    if result.exit_code != 0:
        raise ProgramFailed(f"lab-craft failed in {host} (exit {result.exit_code}): "
                            f"{result.stderr.strip()[-300:]}")
    return Crafted(host, [x["sent"] for x in lines if "sent" in x],
                   [x["answer"] for x in lines if "answer" in x],
                   [x["show"] for x in lines if "show" in x])
