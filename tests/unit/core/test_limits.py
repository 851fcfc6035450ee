from __future__ import annotations

import pytest

from parley.core import FailureThrottle, RateLimiter, TokenBucket


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
