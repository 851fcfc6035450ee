"""HTTP behaviour shared by every route: security headers, JSON errors for all of /api."""

from __future__ import annotations

import pytest

from tests.support.api import AsyncApi, assert_error


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
