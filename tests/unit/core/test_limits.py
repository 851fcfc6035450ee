from __future__ import annotations

import pytest

from parley.core import (
    ALLOWANCES,
    Action,
    ActionLimits,
    Allowance,
    FailureThrottle,
    RateLimiter,
    TokenBucket,
)


def test_bucket_allows_capacity_then_asks_to_wait() -> None:
    bucket = TokenBucket(capacity=3, period=10.0, updated=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(10.0 / 3)


def test_bucket_refills_evenly() -> None:
    bucket = TokenBucket(capacity=10, period=10.0, updated=0.0)
    for _ in range(10):
        bucket.take(0.0)
    assert bucket.take(0.5) > 0
    assert bucket.take(1.0) == 0.0
    assert bucket.full(100.0)


def test_rate_limiter_is_per_key_and_off_at_zero() -> None:
    limiter = RateLimiter(per_period=2, period=10.0)
    assert limiter.check("a", 0) == 0.0
    assert limiter.check("a", 0) == 0.0
    assert limiter.check("a", 0) > 0
    assert limiter.check("b", 0) == 0.0
    off = RateLimiter(per_period=0)
    assert all(off.check("a", 0) == 0.0 for _ in range(1000))


def test_rate_limiter_prunes_idle_buckets() -> None:
    limiter = RateLimiter(per_period=2)
    limiter.check("a", 0)
    limiter.prune(100)
    assert limiter.buckets == {}


def test_failure_throttle_sliding_window() -> None:
    throttle = FailureThrottle(limit=3, window=60.0)
    for t in (0.0, 1.0, 2.0):
        assert throttle.retry_after("alice", t) == 0.0
        throttle.fail("alice", t)
    assert throttle.retry_after("alice", 3.0) == pytest.approx(57.0)
    assert throttle.retry_after("bob", 3.0) == 0.0
    assert throttle.retry_after("alice", 60.5) == 0.0  # the first failure slid out
    throttle.clear("alice")
    assert throttle.failures == {}


def test_failure_throttle_prune_forgets_old_keys() -> None:
    throttle = FailureThrottle(limit=3, window=60.0)
    throttle.fail("old", 0.0)
    throttle.fail("new", 50.0)
    throttle.prune(70.0)
    assert list(throttle.failures) == ["new"]


def test_action_limits_keep_each_action_and_key_apart() -> None:
    limits = ActionLimits({Action.JOIN: Allowance(2, 60.0, "joining too fast")})
    assert limits.check(Action.JOIN, "ann", 0) == 0.0
    assert limits.check(Action.JOIN, "ann", 0) == 0.0
    assert limits.check(Action.JOIN, "ann", 0) == pytest.approx(30.0)  # 2 per 60 s
    assert limits.refusal(Action.JOIN) == "joining too fast"
    assert limits.check(Action.JOIN, "bob", 0) == 0.0  # another key: its own bucket
    assert limits.check(Action.JOIN, "ann", 30.0) == 0.0  # one earned back
    assert limits.check(Action.HISTORY, "ann", 0) == 0.0  # not in the table: unlimited


def test_default_allowances_cover_every_action_and_a_real_user() -> None:
    """What people do must never be refused: a reconnect storm of five tabs joining 90
    rooms each, a fast typist's typing frame per keystroke for a minute, paging back 200
    pages of history at 3 a second, creating 20 rooms and inviting 150 people at once."""
    assert set(ALLOWANCES) == set(Action)
    limits = ActionLimits.scaled(30, 1.0)
    assert all(limits.check(Action.JOIN, "u", 0.0) == 0.0 for _ in range(450))
    assert all(limits.check(Action.LEAVE, "u", 0.0) == 0.0 for _ in range(450))
    assert all(limits.check(Action.TYPING, "u", i / 5) == 0.0 for i in range(300))
    assert all(limits.check(Action.HISTORY, "u", i / 3) == 0.0 for i in range(200))
    assert all(limits.check(Action.CREATE_ROOM, "u", 0.0) == 0.0 for _ in range(20))
    assert all(limits.check(Action.INVITE, "u", 0.0) == 0.0 for _ in range(150))
    assert all(limits.check(Action.SEND, "u", 0.0) == 0.0 for _ in range(30))
    # ...and each stops a flood
    for action in Action:
        assert any(limits.check(action, "u", 60.0) > 0 for _ in range(1000)), action


def test_scaling_the_action_limits_and_zero_turns_them_off() -> None:
    half = ActionLimits.scaled(30, 0.5)
    assert [half.check(Action.CREATE_ROOM, "u", 0) == 0.0 for _ in range(16)] == [True] * 15 + [
        False
    ]
    tiny = ActionLimits.scaled(30, 0.0001)  # never below one action
    assert tiny.check(Action.CREATE_ROOM, "u", 0) == 0.0
    assert tiny.check(Action.CREATE_ROOM, "u", 0) > 0
    off = ActionLimits.scaled(5, 0)
    for action in Action:
        if action is not Action.SEND:
            assert all(off.check(action, "u", 0) == 0.0 for _ in range(10_000)), action
    # the send allowance is --rate-limit's, not scaled: 5 here, and 0 turns it off
    assert [off.check(Action.SEND, "u", 0) == 0.0 for _ in range(6)] == [True] * 5 + [False]
    assert all(ActionLimits.scaled(0, 1).check(Action.SEND, "u", 0) == 0.0 for _ in range(99))


def test_action_limits_prune_idle_keys() -> None:
    limits = ActionLimits.scaled(30, 1.0)
    for action in Action:
        limits.check(action, "u", 0)
    limits.prune(60)  # the room a minute ago is earned back after 120 s (30 an hour)
    assert [a for a, limiter in limits._limiters.items() if limiter.buckets] == [Action.CREATE_ROOM]
    limits.prune(120)
    assert all(not limiter.buckets for limiter in limits._limiters.values())
