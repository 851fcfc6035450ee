"""core/expiring.py: entries forgotten a window after they were last set."""

from __future__ import annotations

from parley.core import ExpiringMap


def test_an_entry_lives_for_the_window_from_its_last_set() -> None:
    seen: ExpiringMap[str, int] = ExpiringMap(10.0)
    seen.set("a", 1, 0.0)
    seen.set("b", 2, 5.0)
    assert seen.get("a", 10.0) == 1
    assert seen.get("a", 10.5) is None  # gone, and forgotten
    assert len(seen) == 1
    seen.set("b", 3, 12.0)  # set again: counts from now, with its new value
    assert seen.get("b", 21.0) == 3
    assert seen.get("b", 22.5) is None
    assert len(seen) == 0


def test_a_key_never_set_is_none() -> None:
    assert ExpiringMap[str, int](1.0).get("x", 0.0) is None
