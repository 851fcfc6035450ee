from __future__ import annotations

from parley.core import FairQueue


def drain(queue: FairQueue[str]) -> list[str]:
    out = []
    while (job := queue.pop()) is not None:
        out.append(job)
    return out


def test_keys_take_turns_and_each_key_keeps_its_order() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(4):
        assert queue.push("flood", f"f{i}")
    assert queue.push("alice", "a0")
    assert queue.push("bob", "b0")
    assert queue.push("alice", "a1")
    assert len(queue) == 7
    assert drain(queue) == ["f0", "a0", "b0", "f1", "a1", "f2", "f3"]
    assert len(queue) == 0


def test_newcomer_waits_for_one_job_per_other_key_not_for_the_flood() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(100):
        queue.push("flood", f"f{i}")
    assert queue.pop() == "f0"
    queue.push("late", "late")
    assert [queue.pop(), queue.pop()] == ["f1", "late"]


def test_bound_per_key_refuses_the_excess_only_for_that_key() -> None:
    queue: FairQueue[str] = FairQueue(max_waiting=2)
    assert [queue.push("flood", f"f{i}") for i in range(4)] == [True, True, False, False]
    assert queue.waiting("flood") == 2
    assert queue.push("other", "o0")
    assert queue.pop() == "f0"
    assert queue.push("flood", "f4")  # room again once one was served
    assert drain(queue) == ["o0", "f1", "f4"]
    assert queue.waiting("flood") == 0


def test_zero_means_no_bound_and_empty_pops_none() -> None:
    queue: FairQueue[int] = FairQueue(max_waiting=0)
    assert all(queue.push("k", i) for i in range(1000))
    assert queue.waiting("k") == 1000
    empty: FairQueue[int] = FairQueue()
    assert empty.pop() is None
