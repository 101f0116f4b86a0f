"""Offloads: a veth's segmentation, receive and checksum offloads, switched off (and back).

veth starts with TSO/GSO and checksum offload on, so a capture shows one 4 KB "segment" and
wrong checksums. A capture switches them off by default (and back afterwards); `set_offloads`
and `restore_offloads` do it on their own too, and say what they changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from socketlab.errors import CaptureError
from socketlab.lab.process import Hosts

IFACE = "eth0"
# ethtool -K name -> the name `ethtool -k` prints; switched off in this order, on in reverse.
OFFLOAD_FEATURES = (
    ("tso", "tcp-segmentation-offload"),
    ("gso", "generic-segmentation-offload"),
    ("gro", "generic-receive-offload"),
    ("lro", "large-receive-offload"),
    ("tx-udp-segmentation", "tx-udp-segmentation"),
    ("tx", "tx-checksumming"),
    ("rx", "rx-checksumming"),
    ("sg", "scatter-gather"),
)


@dataclass(frozen=True)
class OffloadReport:
    """What switching a host's offloads did: effective states before and after (by the names
    `ethtool -k` prints), and the features the device refused with ethtool's message."""

    host: str
    enabled: bool
    before: dict[str, bool]
    after: dict[str, bool]
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> list[str]:
        return [f for f, on in self.after.items() if self.before.get(f) != on]

    def describe(self) -> str:
        word = "on" if self.enabled else "off"
        text = f"{self.host}: offloads {word}: changed {', '.join(self.changed) or 'nothing'}"
        if self.refused:
            text += f"; refused {', '.join(sorted(self.refused))}"
        return text


_OFFLOAD_SCRIPT = r"""
ethtool -k "$IFACE"; echo @@
while [ $# -gt 1 ]; do
  out=$(ethtool -K "$IFACE" "$1" "$2" 2>&1); rc=$?
  echo "@ $1 $rc $(echo $out)"; shift 2
done
echo @@; ethtool -k "$IFACE"
"""


def set_offloads(lab: Hosts, hosts: Iterable[str], enabled: bool = False,
                 features: Sequence[tuple[str, str]] = OFFLOAD_FEATURES) -> list[OffloadReport]:
    """Switch segmentation, receive and checksum offloads of eth0 off (or on) in each host.
    Features the device cannot change are tolerated and reported in `refused`."""
    order = features if not enabled else tuple(reversed(features))
    return [_switch(lab, h, {name: enabled for name, _ in order}, features, enabled)
            for h in hosts]


def restore_offloads(lab: Hosts, reports: Iterable[OffloadReport],
                     features: Sequence[tuple[str, str]] = OFFLOAD_FEATURES
                     ) -> list[OffloadReport]:
    """Put each host's offloads back as they were before `set_offloads` made `reports`."""
    out = []
    for rep in reports:
        wanted = {name: rep.before[long] for name, long in reversed(features)
                  if long in rep.before and rep.before[long] != rep.after.get(long)}
        out.append(_switch(lab, rep.host, wanted, features, not rep.enabled))
    return out


def _switch(lab: Hosts, host: str, wanted: dict[str, bool],
            features: Sequence[tuple[str, str]], enabled: bool) -> OffloadReport:
    """One host: ethtool -K for each wanted feature, in order; states read before and after."""
    args = [x for name, on in wanted.items() for x in (name, "on" if on else "off")]
    res = lab.exec(host, ["env", f"IFACE={IFACE}", "sh", "-c", _OFFLOAD_SCRIPT, "sh", *args],
                   instruments=True,
                   timeout=30)
    parts = res.stdout.split("@@\n")
    if res.exit_code != 0 or len(parts) != 3:
        raise CaptureError(f"ethtool failed in {host}: {res.stderr.strip() or res.stdout[-200:]}",
                           hint="does the lab image have ethtool, and the host NET_ADMIN?")
    longs = dict(features)
    keep = set(longs.values())
    before = {f: on for f, on in _feature_states(parts[0]).items() if f in keep}
    after = {f: on for f, on in _feature_states(parts[2]).items() if f in keep}
    refused = {}
    for line in parts[1].splitlines():
        _, name, rc, *msg = line.split(" ", 3) + [""]
        long = longs.get(name, name)
        if rc != "0" or after.get(long) != wanted.get(name):
            refused[long] = " ".join(msg).strip() or f"stays {_word(after.get(long))}"
    return OffloadReport(host, enabled, before, after, refused)


def _feature_states(text: str) -> dict[str, bool]:
    """`ethtool -k` output -> {feature: on}, sub-features included."""
    states = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\w-]+): (on|off)", line)
        if m:
            states[m.group(1)] = m.group(2) == "on"
    return states


def _word(on: bool | None) -> str:
    return "unknown" if on is None else "on" if on else "off"
