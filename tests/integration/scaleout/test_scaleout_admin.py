"""Admin actions on one node take effect on the others (PostgreSQL + Redis): a ban closes
the banned user's sockets everywhere with 4003, a role change reaches their sockets
everywhere, a registration mode holds everywhere."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.api import DEFAULT_PASSWORD, AsyncApi, assert_error, unique_name
from tests.support.client import open_ws
from tests.support.server import ServerProcess

ClusterFactory = Callable[..., list[ServerProcess]]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_a_ban_on_one_node_closes_the_sockets_on_another(cluster: ClusterFactory) -> None:
    a, b = cluster(2)
    async with AsyncApi(a.url) as on_a, AsyncApi(b.url) as on_b:
        admin = await on_a.register()  # the first account
        eve = await on_b.register()
        sockets = [await open_ws(node.ws_url, eve.token) for node in (a, b)]
        resp = await on_a.post(f"/api/admin/users/{eve.username}/ban", token=admin.token)
        assert resp.status_code == 204, resp.text
        for ws in sockets:
            assert await ws.wait_closed() == 4003
        assert_error(await on_b.login_raw(eve.username, eve.password), 403, "forbidden")
        assert_error(await on_b.get("/api/me", token=eve.token), 401, "unauthorized")


async def test_a_grant_on_one_node_reaches_the_sockets_on_another(cluster: ClusterFactory) -> None:
    a, b = cluster(2)
    async with AsyncApi(a.url) as on_a, AsyncApi(b.url) as on_b:
        admin = await on_a.register()  # the first account
        sam = await on_b.register()
        sockets = [await open_ws(node.ws_url, sam.token) for node in (a, b)]
        grant = f"/api/admin/users/{sam.username}/admin"
        resp = await on_a.request("PUT", grant, token=admin.token)
        assert resp.status_code == 204, resp.text
        for ws in sockets:
            assert await ws.recv_type("account") == {"type": "account", "admin": True}
            await ws.close()


async def test_a_registration_mode_set_on_one_node_holds_on_another(
    cluster: ClusterFactory,
) -> None:
    a, b = cluster(2)
    async with AsyncApi(a.url) as on_a, AsyncApi(b.url) as on_b:
        admin = await on_a.register()
        resp = await on_a.request(
            "PATCH", "/api/admin/settings", token=admin.token, json={"registration": "invite"}
        )
        assert resp.status_code == 200, resp.text
        assert_error(await on_b.register_raw(unique_name(), DEFAULT_PASSWORD), 403, "forbidden")
        code = (await on_a.post("/api/invites", token=admin.token, json={})).json()["code"]
        body = {"username": unique_name(), "password": DEFAULT_PASSWORD, "invite": code}
        assert (await on_b.post("/api/register", json=body)).status_code == 201
        body["username"] = unique_name()
        assert_error(await on_a.post("/api/register", json=body), 403, "forbidden")
