"""Each pytest-xdist worker draws its free ports from a slice of its own."""

from __future__ import annotations

import pytest

from tests.support.ports import port_slice


def test_workers_get_disjoint_slices_of_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    slices = []
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    for n in range(4):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{n}")
        slices.append(port_slice(20000, 32700))
    ports = [set(range(*s)) for s in slices]
    assert all(20000 <= lo < hi <= 32700 for lo, hi in slices)
    assert all(len(p) >= 3000 for p in ports)
    assert len(set().union(*ports)) == sum(len(p) for p in ports)  # no port in two slices


def test_outside_xdist_the_whole_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert port_slice(20000, 32700) == (20000, 32700)
