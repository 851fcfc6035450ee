"""The server's log: text for a terminal, or one JSON object a line for a collector.

A JSON line holds ts, level, logger, message, request_id when the record has one (a
WebSocket frame's `id`), and the record's other structured fields (`extra=`). A field
named like a secret is never written: its value is replaced, whatever it holds, so a
careless `extra={"token": ...}` cannot leak a session.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

__all__ = ["LOG_FORMATS", "JsonFormatter", "TextFormatter", "configure", "is_secret"]

LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED: Final = "[redacted]"
_SECRET_WORDS: Final = ("token", "password", "passwd", "secret", "cookie", "authorization")
# What every LogRecord has: anything else on a record came from `extra=`.
_STANDARD: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_encode: Final = msgspec.json.Encoder(enc_hook=repr).encode


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's structured fields (`extra=`), secrets replaced; None values left out."""
    return {
        key: REDACTED if is_secret(key) else value
        for key, value in vars(record).items()
        if key not in _STANDARD and value is not None
    }


class TextFormatter(logging.Formatter):
    """The classic line, then the structured fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        return f"{line} {fields}" if fields else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry).decode()


def configure(level: str, log_format: str = "text") -> None:
    """Send the log to standard error in `log_format` (LOG_FORMATS) from `level` up."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
