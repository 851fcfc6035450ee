"""The load generator's pure helpers: payload marker, percentiles, ramp, loss check."""

from __future__ import annotations

import json
import math

import pytest

from parley.protocol import MessageEvent, encode
from parley_bench.stats import (
    MARK,
    check_sequence,
    is_sustained,
    make_text,
    message_seq,
    parse_marker,
    percentile,
    rate_steps,
    ratio,
    summarize_ns,
)


def test_marker_round_trips_in_plain_and_json_frames() -> None:
    text = make_text(7, 42, 123_456_789_000, size=64)
    assert len(text) == 64
    assert text.startswith(MARK)
    assert parse_marker(text.encode()) == (7, 42, 123_456_789_000)
    frame = json.dumps({"type": "message", "room": "general", "seq": 9, "text": text})
    assert parse_marker(frame.encode()) == (7, 42, 123_456_789_000)


def test_marker_text_is_never_shorter_than_its_header() -> None:
    text = make_text(123456, 999999, 10**18, size=8)
    assert parse_marker(text.encode()) == (123456, 999999, 10**18)


@pytest.mark.parametrize("data", [b"", b"hello", b'{"type":"ack"}', b"~b~1:2", b"~b~x:y:z:"])
def test_parse_marker_rejects_other_frames(data: bytes) -> None:
    assert parse_marker(data) is None


def test_message_seq_reads_parleys_message_frames() -> None:
    event = MessageEvent("general", 1234, "ann", 'say, "seq":9', "2026-11-27T21:00:00Z", "c1")
    assert message_seq(encode(event)) == 1234
    assert message_seq(b'{"type":"joined","room":"general","last_seq":5}') is None
    assert message_seq(b'{"type":"message","room":"general"}') is None
    assert message_seq(b"plain text") is None


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert math.isnan(percentile([], 50))


def test_summarize_ns_reports_milliseconds() -> None:
    out = summarize_ns([1_000_000] * 99 + [50_000_000])
    assert out["count"] == 100
    assert out["p50"] == 1.0
    assert out["p90"] == 1.0
    assert out["p99"] == 1.0
    assert out["p999"] == 50.0
    assert out["max"] == 50.0


def test_rate_steps_rise_to_the_maximum() -> None:
    assert rate_steps(100, 2, 1000) == [100, 200, 400, 800, 1000]
    assert rate_steps(5, 1.5, 5) == [5]
    with pytest.raises(ValueError, match="factor"):
        rate_steps(100, 1.0, 1000)


def test_is_sustained() -> None:
    assert is_sustained(1000, 990, 20.0)
    assert not is_sustained(1000, 900, 20.0)  # fell behind
    assert not is_sustained(1000, 1000, 2000.0)  # latency grew past the bound
    assert not is_sustained(1000, 1000, math.nan)  # no samples
    assert not is_sustained(0, 0, 1.0)


def test_check_sequence_counts_lost_and_doubled() -> None:
    assert check_sequence([1, 2, 3, 4], 1, 4) == (0, 0)
    assert check_sequence([1, 2, 2, 4], 1, 4) == (1, 1)
    assert check_sequence([], 5, 7) == (3, 0)
    assert check_sequence([3, 1, 2], 1, 3) == (0, 0)  # order is not this check's business
    assert check_sequence([0, 1, 1], 1, 1) == (0, 1)  # before the range: ignored unless doubled


def test_ratio() -> None:
    assert ratio(3, 2) == 1.5
    assert ratio(None, 2) is None
    assert ratio(1, 0) is None
    assert ratio(math.nan, 1) is None
