"""Headers every HTTP response carries, whoever made it: a route, the router's 404/405,
or aiohttp's own answer to a request it could not parse."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Final

from aiohttp import web

from parley.core.addresses import Network, forwarded_https

__all__ = ["HSTS", "SECURITY_HEADERS", "SERVER", "harden", "is_https"]

SERVER: Final = "parley"  # not aiohttp's "Python/3.x aiohttp/3.x": no versions to look up
HSTS: Final = "max-age=63072000"  # two years; subdomains are not ours to speak for

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def is_https(request: web.BaseRequest, trusted: Sequence[Network]) -> bool:
    """The client reached us over TLS: ours, or a trusted proxy's (X-Forwarded-Proto)."""
    if request.secure:
        return True
    if not trusted:
        return False
    # items(), not getall(): aiohttp's stand-in request for one it could not parse has a
    # plain dict for headers
    protos = [v for k, v in request.headers.items() if k.lower() == "x-forwarded-proto"]
    return forwarded_https(request.remote, protos, trusted)


def harden(
    request: web.BaseRequest, headers: MutableMapping[str, str], trusted: Sequence[Network]
) -> None:
    """The security headers, `Server: parley`, `Cache-Control: no-store` unless the
    handler chose a caching rule (static files do), and HSTS over https."""
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    headers["Server"] = SERVER
    headers.setdefault("Cache-Control", "no-store")
    if is_https(request, trusted):
        headers["Strict-Transport-Security"] = HSTS
