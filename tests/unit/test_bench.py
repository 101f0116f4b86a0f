"""The lifecycle bench's way of timing: actions taken in turn, round after round."""

from __future__ import annotations

import pytest

from socketlab.tools.bench import interleaved_medians


def test_actions_are_taken_in_turn_round_after_round():
    calls: list[str] = []
    medians = interleaved_medians({"run": lambda: calls.append("run"),
                                    "floor": lambda: calls.append("floor")}, 3)

    assert calls == ["run", "floor"] * 3
    assert set(medians) == {"run", "floor"}
    assert all(m >= 0 for m in medians.values())


def test_the_median_is_of_each_actions_own_rounds(monkeypatch):
    import socketlab.tools.bench as bench

    clock = iter([0.0, 1.0, 1.0, 1.5,   # round 1: a 1 s, b 0.5 s
                  2.0, 5.0, 5.0, 5.1,   # round 2: a 3 s, b 0.1 s
                  6.0, 8.0, 8.0, 8.2])  # round 3: a 2 s, b 0.2 s
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))

    medians = interleaved_medians({"a": lambda: None, "b": lambda: None}, 3)

    assert medians == pytest.approx({"a": 2.0, "b": 0.2})


def test_scale_topology_is_a_lab_of_n_hosts(tmp_path):
    from socketlab.lab.composefile import read_topology
    from socketlab.tools.bench_scale import scale_topology

    path = tmp_path / "scale.yml"
    path.write_text(scale_topology(64))
    topo = read_topology(path, {"SOCKETLAB_IMAGE": "socketlab/lab:latest"}, lab_image="socketlab/lab:latest")
    assert len(topo.hosts) == 64
    assert topo.role_host("server").ip == "192.168.33.5"
    assert topo.role_host("client").ip == "192.168.33.6"
    assert topo.host("h64").ip == "192.168.33.68"
    assert len({h.ip for h in topo.hosts}) == 64


def test_bench_sizes_are_checked():
    import argparse

    import pytest

    from socketlab.cli.tools import sizes

    assert sizes("2,8,32") == (2, 8, 32)
    for bad in ("", "2,x", "1", "500"):
        with pytest.raises(argparse.ArgumentTypeError):
            sizes(bad)
