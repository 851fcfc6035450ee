"""Error codes shared by the WebSocket protocol and the HTTP API, and the error they travel in."""

from __future__ import annotations

import math
from enum import IntEnum, StrEnum

__all__ = ["HTTP_STATUS", "CloseCode", "ErrorCode", "ProtocolError", "wire_seconds"]


class CloseCode(IntEnum):
    """Parley's own WebSocket close codes (the application range 4000-4999, docs/protocol.md);
    RFC 6455's are aiohttp's `WSCloseCode`."""

    SIGNED_OUT = 4001  # the token was revoked: logout, password change, sign out everywhere
    BANNED = 4003  # an admin banned the account


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    QUOTA_EXCEEDED = "quota_exceeded"  # HTTP only: an upload past the uploader's quota
    RATE_LIMITED = "rate_limited"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # HTTP only: a body that is not JSON


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.QUOTA_EXCEEDED: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
}


def wire_seconds(seconds: float) -> float:
    """A wait as the wire says it: in milliseconds, rounded up, so that a refusal never
    says "retry after 0" (a client that obeyed would be refused again at once)."""
    return max(math.ceil(seconds * 1000), 1) / 1000


class ProtocolError(Exception):
    """A request the server refuses: an `error` event on a socket (which stays open), the
    JSON error shape over HTTP. On a socket, `ref` is the refused send's client_id and
    `request_id` the refused frame's `id`, when it had them."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        ref: str | None = None,
        retry_after: float | None = None,
        request_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.retry_after = retry_after
        self.request_id = request_id
