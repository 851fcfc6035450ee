"""The hashing pool's adapter: real threads, no clock; the turn rule itself is FairQueue's."""

from __future__ import annotations

import asyncio
import threading

import pytest

from parley.server.hashing import HashPool, HashQueueFull


class Gate:
    """A blocking job that waits until the test opens it, and records the order jobs ran."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.ran: list[str] = []

    def job(self, name: str) -> str:
        self.open.wait(10)
        self.ran.append(name)
        return name.upper()


async def test_waiting_jobs_run_in_turn_between_addresses() -> None:
    gate, pool = Gate(), HashPool(workers=1, max_waiting=0)
    first = asyncio.create_task(pool.run("flood", gate.job, "f0"))
    await asyncio.sleep(0)  # f0 is on the worker; the rest wait
    flood = [asyncio.create_task(pool.run("flood", gate.job, f"f{i}")) for i in range(1, 4)]
    other = asyncio.create_task(pool.run("other", gate.job, "o0"))
    await asyncio.sleep(0)
    gate.open.set()
    assert await other == "O0"
    await asyncio.gather(first, *flood)
    assert gate.ran == ["f0", "f1", "o0", "f2", "f3"]


async def test_an_address_over_its_bound_is_refused_at_once() -> None:
    gate, pool = Gate(), HashPool(workers=1, max_waiting=2)
    running = asyncio.create_task(pool.run("a", gate.job, "a0"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(pool.run("a", gate.job, f"a{i}")) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(HashQueueFull):
        await pool.run("a", gate.job, "a3")
    other = asyncio.create_task(pool.run("b", gate.job, "b0"))  # another address: fine
    gate.open.set()
    assert await asyncio.gather(running, *waiting, other) == ["A0", "A1", "A2", "B0"]


async def test_a_job_whose_caller_gave_up_is_skipped_and_errors_reach_the_caller() -> None:
    gate, pool = Gate(), HashPool(workers=1, max_waiting=0)
    running = asyncio.create_task(pool.run("a", gate.job, "a0"))
    await asyncio.sleep(0)
    abandoned = asyncio.create_task(pool.run("a", gate.job, "gone"))
    await asyncio.sleep(0)
    abandoned.cancel()
    gate.open.set()
    await running

    def broken(_: str) -> str:
        raise ValueError("bad hash")

    with pytest.raises(ValueError, match="bad hash"):
        await pool.run("a", broken, "x")
    assert await pool.run("a", gate.job, "a1") == "A1"
    assert gate.ran == ["a0", "a1"]
