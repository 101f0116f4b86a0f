"""lab-nfq's decisions (images/lab/labshape: nfq.py, faults.py), without root and without a
network: seeded determinism, loss rates, the burst model, fault matching and ordinals,
corruption; the spec lab-nfq takes is lab-shape's own, checked by the one validator."""

from __future__ import annotations

import math
import random
import struct

import pytest

from socketlab.act.shaping import labshape

ls = labshape()
nfq, flt = ls.nfq, ls.faults
CLIENT, SERVER = "192.168.33.6", "192.168.33.5"


def ip_header(proto: int, l4_len: int, ip_id: int = 1) -> bytes:
    addr = bytes(map(int, CLIENT.split("."))) + bytes(map(int, SERVER.split(".")))
    return struct.pack("!BBHHHBBH", 0x45, 0, 20 + l4_len, ip_id, 0, 64, proto, 0) + addr


def udp(payload: bytes = b"hello", sport: int = 40000, dport: int = 6666) -> bytes:
    return ip_header(17, 8 + len(payload)) + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(flags: str, payload: bytes = b"", seq: int = 1000, sport: int = 40000, dport: int = 6666) -> bytes:
    bits = sum(1 << flt.FLAG_LETTERS.index(f) for f in flags)
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, bits, 65535, 0, 0)
    return ip_header(6, 20 + len(payload)) + header + payload


def impairment(faults: list | tuple = (), **values) -> object:
    """An Impairment from its fields, checked by the one validator (spec.validate)."""
    imp = ls.spec.Impairment(**values, faults=tuple(faults))
    ls.spec.validate(imp)
    flt.parse_faults(list(faults))
    return imp


def decider(**values) -> nfq.Decider:
    return nfq.Decider(impairment(**values))


def decisions(d: nfq.Decider, packet: bytes, n: int) -> list[nfq.Decision]:
    parsed = flt.parse_ipv4(packet)
    return [d.decide(parsed) for _ in range(n)]


# -- parsing --------------------------------------------------------------------------------
def test_parse_tcp_fields():
    p = flt.parse_ipv4(tcp("SA", seq=42))
    assert (p.proto, p.src, p.dst, p.sport, p.dport, p.flags, p.seq, p.length) == \
        ("tcp", CLIENT, SERVER, 40000, 6666, "SA", 42, 0)
    assert flt.parse_ipv4(tcp("PA", b"abc")).length == 3


def test_parse_udp_and_not_ipv4():
    p = flt.parse_ipv4(udp(b"seq=1"))
    assert (p.proto, p.dport, p.length, p.payload_offset) == ("udp", 6666, 5, 28)
    assert flt.parse_ipv4(b"\x60" + bytes(39)) is None  # IPv6: not ours to judge


# -- determinism and rates --------------------------------------------------------------------
def test_same_seed_same_decisions():
    config = {"loss_pct": 20, "duplicate_pct": 10, "corrupt_pct": 5, "delay_ms": 50, "jitter_ms": 20,
              "distribution": "normal", "reorder_pct": 25, "seed": 7}
    runs = [decisions(decider(**config), udp(), 500) for _ in range(2)]
    assert runs[0] == runs[1]
    other = decisions(decider(**{**config, "seed": 8}), udp(), 500)
    assert other != runs[0]


def binomial_interval(n: int, p: float) -> tuple[float, float]:
    """95 % of counts of a Binomial(n, p) fall inside this (normal approximation)."""
    sd = math.sqrt(n * p * (1 - p))
    return n * p - 1.96 * sd, n * p + 1.96 * sd


@pytest.mark.parametrize("pct", [1, 10, 50])
def test_loss_rate_within_binomial_interval(pct):
    lost = sum(d.drop for d in decisions(decider(loss_pct=pct, seed=1), udp(), 10_000))
    low, high = binomial_interval(10_000, pct / 100)
    assert low <= lost <= high


def test_duplicate_and_corrupt_rates():
    ds = decisions(decider(duplicate_pct=10, corrupt_pct=10, seed=3), udp(), 10_000)
    low, high = binomial_interval(10_000, 0.10)
    assert low <= sum(d.copies for d in ds) <= high
    assert low <= sum(d.corrupt_bit >= 0 for d in ds) <= high


def bursts(drops: list[bool]) -> list[int]:
    runs, current = [], 0
    for lost in drops:
        if lost:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs


def test_burst_model_mean_burst_and_loss():
    drops = [d.drop for d in decisions(decider(loss_pct=10, loss_burst=4, seed=11), udp(), 100_000)]
    runs = bursts(drops)
    assert 3.6 <= sum(runs) / len(runs) <= 4.4  # mean burst length 4
    assert 0.085 <= sum(drops) / len(drops) <= 0.115  # long-run loss still 10 %


def test_bernoulli_bursts_are_short():
    runs = bursts([d.drop for d in decisions(decider(loss_pct=10, seed=11), udp(), 100_000)])
    assert 1.05 <= sum(runs) / len(runs) <= 1.17  # 1 / (1 - 0.1) = 1.11


def test_impossible_burst_is_refused():
    with pytest.raises(ls.ShapeError, match="impossible"):
        impairment(loss_pct=80, loss_burst=1)


def test_delay_distributions_center_on_delay():
    for dist in ls.spec.DISTRIBUTIONS:
        d = decider(delay_ms=100, jitter_ms=10, distribution=dist, seed=5)
        delays = [d.delay() for _ in range(20_000)]
        assert abs(sum(delays) / len(delays) - 100) < 1.0, dist
        assert min(delays) >= 0


def test_reorder_sends_some_at_once():
    ds = decisions(decider(delay_ms=100, reorder_pct=25, seed=2), udp(), 10_000)
    at_once = sum(d.delay_ms == 0 for d in ds)
    low, high = binomial_interval(10_000, 0.25)
    assert low <= at_once <= high
    assert all(d.delay_ms == 100 for d in ds if "reorder" not in d.random)


def test_reorder_gap_delays_the_first_packets():
    ds = decisions(decider(delay_ms=10, reorder_pct=100, reorder_gap=5, seed=2), udp(), 10)
    assert [d.delay_ms == 0 for d in ds] == [False] * 4 + [True] + [False] * 4 + [True]


def test_reorder_needs_delay():
    with pytest.raises(ls.ShapeError, match="reorder needs a delay"):
        impairment(reorder_pct=10)


# -- packet-exact faults ----------------------------------------------------------------------
def fault_decider(*faults: dict) -> nfq.Decider:
    return decider(faults=list(faults))


def test_drop_the_second_udp_datagram_only():
    d = fault_decider({"match": {"proto": "udp", "dport": 6666, "nth": 2}, "action": "drop"})
    ds = decisions(d, udp(), 5)
    assert [x.drop for x in ds] == [False, True, False, False, False]
    fault, ordinal = ds[1].fired[0]
    assert (fault.index, fault.action, ordinal) == (0, "drop", 2)


def test_ordinal_counts_only_matching_packets():
    d = fault_decider({"match": {"proto": "tcp", "min_len": 1, "nth": [1, 3]}, "action": "delay", "ms": 300})
    stream = [tcp("S"), tcp("PA", b"a"), tcp("A"), tcp("PA", b"b"), tcp("PA", b"c")]
    ds = [d.decide(flt.parse_ipv4(p)) for p in stream]
    assert [x.delay_ms for x in ds] == [0, 300, 0, 0, 300]


def test_flags_are_an_exact_set():
    d = fault_decider({"match": {"proto": "tcp", "flags": "AS"}, "action": "drop"})
    fired = [d.decide(flt.parse_ipv4(tcp(f))).drop for f in ("S", "SA", "A", "PA")]
    assert fired == [False, True, False, False]


def test_len_bounds_and_ports():
    match = flt.parse_match({"proto": "udp", "min_len": 2, "max_len": 4, "sport": 40000})
    sizes = {n: match.fits(flt.parse_ipv4(udp(b"x" * n))) for n in range(6)}
    assert sizes == {0: False, 1: False, 2: True, 3: True, 4: True, 5: False}
    assert not match.fits(flt.parse_ipv4(udp(b"xyz", sport=1)))
    assert flt.parse_match({"len": 0}).fits(flt.parse_ipv4(tcp("A")))


def test_each_fault_counts_on_its_own():
    d = fault_decider({"match": {"proto": "udp", "nth": 1}, "action": "duplicate"},
                      {"match": {"proto": "udp", "nth": 2}, "action": "corrupt"})
    ds = decisions(d, udp(), 3)
    assert [x.copies for x in ds] == [1, 0, 0]
    assert [x.corrupt_bit >= 0 for x in ds] == [False, True, False]


def test_fault_packets_escape_random_loss():
    d = decider(loss_pct=100, faults=[{"match": {"proto": "udp", "nth": 3}, "action": "duplicate"}])
    ds = decisions(d, udp(), 4)
    assert [x.drop for x in ds] == [True, True, False, True]


def test_last_is_refused_with_a_reason():
    with pytest.raises(ls.ShapeError, match="unknown when it passes"):
        impairment(faults=[{"match": {"last": True}, "action": "drop"}])


@pytest.mark.parametrize(("bad", "says"), [
    ({"faults": [{"match": {}, "action": "explode"}]}, "action"),
    ({"faults": [{"match": {"nth": 0}, "action": "drop"}]}, "ordinals"),
    ({"faults": [{"match": {"flags": "SX"}, "action": "drop"}]}, "letters"),
    ({"faults": [{"match": {}, "action": "delay"}]}, "ms > 0"),
    ({"faults": [{"match": {}, "action": "delay", "ms": "300"}]}, "not a time"),
    ({"loss_pct": 101}, "out of range"),
    ({"delay_ms": 5, "jitter_ms": 1, "distribution": "gamma"}, "distribution 'gamma' is unknown"),
])
def test_bad_configs_are_refused(bad, says):
    with pytest.raises(ls.ShapeError, match=says):
        impairment(**bad)


# -- corruption -------------------------------------------------------------------------------
def differing_bits(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


def test_corrupt_flips_exactly_one_payload_bit():
    d = decider(corrupt_pct=100, seed=9)
    packet = udp(b"0123456789")
    for decision in decisions(d, packet, 200):
        changed = flt.flip_bit(packet, decision.corrupt_bit)
        assert differing_bits(packet, changed) == 1
        assert decision.corrupt_bit >= 28 * 8  # in the payload: never the IP or UDP header


def test_corrupt_without_payload_hits_the_tcp_header():
    bit = flt.corrupt_bit(flt.parse_ipv4(tcp("A")), random.Random(1))
    assert 20 * 8 <= bit < 40 * 8
