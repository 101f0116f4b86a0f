"""The experiment catalogue and selection, and the verdict's invariants (no Docker)."""

import pytest

from socketlab.errors import ConfigError
from socketlab.experiments.base import Verdict
from socketlab.experiments.registry import catalogue, select


def test_the_catalogue_is_in_the_posts_order_and_ids_match():
    ids = list(catalogue())
    assert ids == sorted(ids, key=lambda i: (i[0], int(i[1:])))  # C1..C10, then S1..
    assert "C4" in ids
    for exp_id, exp in catalogue().items():
        assert exp.id == exp_id
        assert exp.title
        assert exp.claim


def test_select_is_case_insensitive_and_keeps_the_order_given():
    assert [e.id for e in select(["c4"])] == ["C4"]
    assert [e.id for e in select(None)] == list(catalogue())


def test_an_unknown_experiment_is_refused_naming_the_known_ones():
    with pytest.raises(ConfigError, match="no experiment C99") as info:
        select(["C99"])
    assert "C4" in info.value.hint


def test_a_verdict_has_one_of_four_statuses():
    with pytest.raises(ValueError, match="unknown verdict status"):
        Verdict("C1", "probably", "…")
