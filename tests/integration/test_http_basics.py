"""HTTP behaviour shared by every route: security headers, JSON errors for all of /api,
and the Prometheus metrics."""

from __future__ import annotations

import pytest

from tests.support.api import AsyncApi, assert_error
from tests.support.client import open_ws
from tests.support.server import ServerProcess


@pytest.mark.parametrize("path", ["/", "/app.js", "/api/me", "/healthz"])
async def test_every_page_carries_the_security_headers(api: AsyncApi, path: str) -> None:
    resp = await api.get(path)
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/api/nothing-here", "/api/rooms/general/nope", "/api/"])
async def test_unknown_api_path_is_a_json_404(api: AsyncApi, path: str) -> None:
    assert_error(await api.get(path), 404, "not_found")


async def test_wrong_method_on_an_api_path_is_a_json_405(api: AsyncApi) -> None:
    resp = await api.request("DELETE", "/api/rooms")
    assert_error(resp, 405, "bad_request")
    assert set(resp.headers["allow"].split(",")) >= {"GET", "POST"}


async def test_unknown_page_outside_api_is_a_plain_404(api: AsyncApi) -> None:
    resp = await api.get("/no-such-file.txt")
    assert resp.status_code == 404
    assert "error" not in resp.text


async def test_metrics_count_connections_stored_messages_and_ack_latency(
    api: AsyncApi, server: ServerProcess
) -> None:
    user = await api.register()
    ws = await open_ws(server.ws_url, user.token)
    await ws.join_ok("general")
    for i in range(3):
        await ws.send_ok("general", f"counted {i}")
    await ws.send_ok("general", "a resend is not stored twice", client_id="same")
    await ws.send_ok("general", "a resend is not stored twice", client_id="same")
    samples = _samples((await api.get("/metrics")).text)
    await ws.close()
    assert samples["parley_connections"] >= 1
    assert samples["parley_messages_stored_total"] == 4
    assert samples["parley_ack_seconds_count"] == 5
    assert samples['parley_ack_seconds_bucket{le="+Inf"}'] == 5
    assert 0 < samples["parley_ack_seconds_sum"] < 5 * 2.5
    buckets = [v for k, v in samples.items() if k.startswith("parley_ack_seconds_bucket")]
    assert buckets == sorted(buckets)  # cumulative


def _samples(text: str) -> dict[str, float]:
    """`name{labels} value` lines of the Prometheus text format."""
    lines = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in lines}


async def test_head_works_wherever_get_does(api: AsyncApi) -> None:
    assert (await api.request("HEAD", "/api/me")).status_code == 401
    assert (await api.request("HEAD", "/api/rooms")).status_code == 401
    assert (await api.request("HEAD", "/")).status_code == 200
