"""The log's formats (server/logs.py): one JSON object a line with the record's fields, and
no value of a field named like a secret in either format."""

from __future__ import annotations

import json
import logging

import pytest

from parley.server.logs import JsonFormatter, TextFormatter, is_secret


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("parley.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_json_line_has_the_usual_keys_and_the_fields() -> None:
    line = JsonFormatter().format(record("%s signed in", "alice", user="alice", request_id=7))
    entry = json.loads(line)
    assert entry["message"] == "alice signed in"
    assert entry["level"] == "info"
    assert entry["logger"] == "parley.test"
    assert entry["ts"].endswith("Z")
    assert (entry["user"], entry["request_id"]) == ("alice", 7)
    assert "\n" not in line


def test_a_field_with_no_value_is_left_out() -> None:
    entry = json.loads(JsonFormatter().format(record("x", request_id=None)))
    assert "request_id" not in entry


@pytest.mark.parametrize("name", ["token", "password", "Cookie", "authorization", "new_password"])
def test_a_secret_field_is_never_written(name: str) -> None:
    assert is_secret(name)
    secret = "s3cr3t-value"
    for formatter in (JsonFormatter(), TextFormatter("%(message)s")):
        line = formatter.format(record("event", **{name: secret}))
        assert secret not in line
        assert "[redacted]" in line


def test_text_lines_carry_the_fields_as_key_value() -> None:
    line = TextFormatter("%(levelname)s %(message)s").format(record("signed out", user="bob"))
    assert line == "INFO signed out user=bob"


def test_values_json_cannot_hold_are_written_as_text() -> None:
    entry = json.loads(JsonFormatter().format(record("x", thing=object())))
    assert entry["thing"].startswith("<object object")
