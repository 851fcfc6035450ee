"""Contract: --tls-cert/--tls-key serve https and wss on the same port (cert made by trustme)."""

from __future__ import annotations

import ssl

import httpx
import pytest

from tests.support.api import AsyncApi
from tests.support.client import handshake_status, open_plain, open_ws
from tests.support.server import TlsServer


async def test_https_and_wss_on_the_same_port(
    tls_server: TlsServer,
) -> None:
    srv, ctx = tls_server
    assert srv.url.startswith("https://")
    assert srv.ws_url.startswith("wss://")
    async with AsyncApi(srv.url, verify=ctx) as api:
        assert (await api.get("/healthz")).status_code == 200
        alice = await api.register()
        bob = await api.register()
        a = await open_ws(srv.ws_url, alice.token, ssl_context=ctx)
        b = await open_ws(srv.ws_url, bob.token, ssl_context=ctx)
        assert a.username == alice.username
        await a.join_ok("general")
        await b.join_ok("general")
        ack = await a.send_ok("general", "over tls")
        assert ack["seq"] == 1
        msg = await b.recv_type("message")
        assert (msg["username"], msg["text"]) == (alice.username, "over tls")
        # the page served over https is its own origin
        own = await open_ws(srv.ws_url, alice.token, ssl_context=ctx, origin=srv.url)
        await own.close()
        assert await handshake_status(srv.ws_url, ssl_context=ctx) == 401
        assert (
            await handshake_status(
                srv.ws_url, alice.token, ssl_context=ctx, origin="https://evil.example"
            )
            == 403
        )
        plain = await open_plain(srv.ws_url, bob.token, ssl_context=ctx)
        await plain.send("plain over tls")
        assert await plain.recv() == f"{bob.username}: plain over tls"
        await plain.close()
        stored = await api.messages(alice.token, "general")
        assert [m["text"] for m in stored] == ["over tls", "plain over tls"]
        for c in (a, b):
            await c.close()


async def test_tls_certificate_is_the_configured_one(
    tls_server: TlsServer,
) -> None:
    srv, ctx = tls_server
    # a client that does not trust the test CA refuses the connection: the cert is ours, not a
    # default or self-signed one that a lax client would accept
    async with httpx.AsyncClient(verify=ssl.create_default_context(), trust_env=False) as strict:
        with pytest.raises(httpx.ConnectError):
            await strict.get(f"{srv.url}/healthz")
    async with httpx.AsyncClient(verify=ctx, trust_env=False) as trusting:
        assert (await trusting.get(f"{srv.url}/healthz")).status_code == 200
    # plain http on the TLS port does not serve the API
    async with httpx.AsyncClient(trust_env=False, timeout=5) as plain:
        try:
            resp = await plain.get(f"http://127.0.0.1:{srv.port}/healthz")
        except httpx.HTTPError:
            pass
        else:
            assert resp.status_code != 200


async def test_over_tls_hsts_and_a_secure_cookie(tls_server: TlsServer) -> None:
    srv, ctx = tls_server
    async with AsyncApi(srv.url, verify=ctx) as api:
        register = await api.register_raw("tlsuser", "correct horse battery")
        page = await api.get("/")
        missing = await api.get("/no-such-file.txt")
    assert register.status_code == 201
    assert "secure" in register.headers["set-cookie"].lower().split("; ")
    assert register.headers["cache-control"] == "no-store"
    for resp in (register, page, missing):
        assert resp.headers["strict-transport-security"] == "max-age=63072000"
        assert resp.headers["server"] == "parley"
