"""Where credentials come from on a request, and which browser origins we trust."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aiohttp import web

from parley.core import Network, client_key
from parley.server.headers import is_https

__all__ = ["COOKIE", "client_address", "origin_allowed", "request_token"]

COOKIE: Final = "parley_session"


def request_token(request: web.BaseRequest) -> str | None:
    """The bearer token or session cookie; "" for a malformed header; None when absent.

    Tokens are never read from the URL: URLs end up in logs and browser history.
    """
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    return request.cookies.get(COOKIE)


def origin_allowed(
    request: web.BaseRequest, allowed: frozenset[str], trusted: Sequence[Network] = ()
) -> bool:
    """No Origin header (a non-browser client) or our own or a configured origin.

    Our own is the scheme the browser used: behind a TLS-terminating `--trusted-proxy` the
    request reaches us as http, while the page's origin is https."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    origin = origin.rstrip("/").lower()
    scheme = "https" if is_https(request, trusted) else "http"
    return origin == f"{scheme}://{request.host}".lower() or origin in allowed


def client_address(request: web.BaseRequest, trusted_proxies: Sequence[Network]) -> str:
    """The key for per-address limits (see `parley.core.addresses`)."""
    return client_key(
        request.remote, request.headers.getall("X-Forwarded-For", ()), trusted_proxies
    )
