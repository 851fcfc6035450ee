"""GET /api/search (contract v2): who finds what, room references, hostile queries and
bad input, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support.api import AsyncApi, Fresh, User, assert_error, unique_room
from tests.support.server import ServerProcess

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def shared_server(shared_server_on_each_store: ServerProcess) -> ServerProcess:
    """Every test here runs on SQLite and on PostgreSQL."""
    return shared_server_on_each_store


def unique_word() -> str:
    """A word no other test's message holds (the server and its general room are shared)."""
    return "w" + uuid.uuid4().hex[:12]


async def search_raw(api: AsyncApi, user: User, q: str, **params: str | int) -> httpx.Response:
    return await api.get("/api/search", token=user.token, params={"q": q, **params})


async def search(api: AsyncApi, user: User, q: str, **params: str | int) -> list[JSON]:
    resp = await search_raw(api, user, q, **params)
    assert resp.status_code == 200, resp.text
    results: list[JSON] = resp.json()["results"]
    return results


async def test_results_are_messages_newest_first_with_where_they_matched(fresh: Fresh) -> None:
    api, ann, room = fresh.api, fresh.user, fresh.room
    word = unique_word()
    first = await api.send(ann.token, room, f"Über {word} and more")
    second = await api.send(ann.token, room, f"{word.upper()}!")
    results = await search(api, ann, f"{word[:8]} ")
    assert [r["seq"] for r in results] == [second["seq"], first["seq"]]
    assert {k: v for k, v in results[1].items() if k != "matches"} == first
    assert results[1]["matches"] == [[5, 13]]
    assert results[0]["matches"] == [[0, 8]]
    both = await search(api, ann, f"uber {word}")
    assert [(r["seq"], r["matches"]) for r in both] == [(first["seq"], [[0, 4], [5, 18]])]
    assert await search(api, ann, f"{word} absentword") == []


async def test_limit_and_room(fresh: Fresh) -> None:
    api, ann, room = fresh.api, fresh.user, fresh.room
    word = unique_word()
    other = unique_room()
    assert (await api.create_room(ann.token, other)).status_code == 201
    sent = [await api.send(ann.token, room, f"{word} {i}") for i in range(3)]
    elsewhere = await api.send(ann.token, other, f"{word} elsewhere")
    assert len(await search(api, ann, word)) == 4
    assert [r["seq"] for r in await search(api, ann, word, room=room)] == [
        m["seq"] for m in reversed(sent)
    ]
    assert [r["seq"] for r in await search(api, ann, word, limit=1)] == [elsewhere["seq"]]
    for bad in ("0", "51", "x", "-1"):
        assert_error(await search_raw(api, ann, word, limit=bad), 400, "bad_request")


async def test_a_private_room_is_searched_by_its_members_only(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    bob = await api.register()
    word = unique_word()
    secret = unique_room()
    assert (await api.create_room(ann.token, secret, private=True)).status_code == 201
    hidden = await api.send(ann.token, secret, f"{word} hidden")
    assert await search(api, bob, word) == []
    assert_error(await search_raw(api, bob, word, room=secret), 404, "not_found")
    assert (await api.invite(ann.token, secret, bob.username)).status_code == 201
    assert [r["seq"] for r in await search(api, bob, word, room=secret)] == [hidden["seq"]]
    assert [r["room"] for r in await search(api, bob, word)] == [secret]
    removed = await api.request(
        "DELETE", f"/api/rooms/{secret}/members/{bob.username}", token=ann.token
    )
    assert removed.status_code == 204
    assert await search(api, bob, word) == []
    assert_error(await search_raw(api, bob, word, room=secret), 404, "not_found")


async def test_a_dm_is_found_by_the_callers_reference(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    bob, cat = await api.register(), await api.register()
    dm = (await api.post("/api/dms", token=ann.token, json={"users": [bob.username]})).json()
    word = unique_word()
    await api.send(ann.token, dm["room"], f"psst {word}")
    assert [r["room"] for r in await search(api, bob, word)] == [dm["room"]]
    assert await search(api, cat, word) == []


async def test_edited_and_deleted_messages(fresh: Fresh) -> None:
    api, ann, room = fresh.api, fresh.user, fresh.room
    old, new = unique_word(), unique_word()
    edited = await api.send(ann.token, room, f"{old} first")
    gone = await api.send(ann.token, room, f"{old} second")
    path = f"/api/rooms/{room}/messages"
    resp = await api.request(
        "PATCH", f"{path}/{edited['seq']}", token=ann.token, json={"text": new}
    )
    assert resp.status_code == 200, resp.text
    resp = await api.request("DELETE", f"{path}/{gone['seq']}", token=ann.token)
    assert resp.status_code == 204
    assert await search(api, ann, old) == []
    [found] = await search(api, ann, new)
    assert (found["seq"], found["text"], found["edited"] is not None) == (edited["seq"], new, True)


async def test_nothing_to_search_for(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    for blank in ("", "   ", "\t\n"):
        assert_error(await search_raw(api, ann, blank), 400, "bad_request")
    resp = await api.get("/api/search", token=ann.token)
    assert_error(resp, 400, "bad_request")
    assert await search(api, ann, '" * ( ) -') == []
    assert_error(await search_raw(api, ann, "x", room="no such room!"), 400, "bad_request")
    assert_error(await search_raw(api, ann, "x", room=unique_room()), 404, "not_found")
    assert_error(await api.get("/api/search", params={"q": "x"}), 401, "unauthorized")
    # past what a URL may carry (8 KiB), or past 6,000 characters: a clear 400
    assert_error(await search_raw(api, ann, "word " * 2000), 400, "bad_request")
    assert_error(await search_raw(api, ann, "a" * 6001), 400, "bad_request")


@pytest.mark.parametrize(
    "query",
    [
        "{w} " + " ".join(["a"] * 999),
        "{w} " + " ".join(f"n{i}" for i in range(999)),
        '"{w}',
        "{w} NEAR(a b)",
        "{w}* OR -b",
        "(({w} )",
        "{w}\x00",
        "{w}" + "x" * 3000,
        "{w}' & !:* <-> \\",
    ],
)
async def test_hostile_queries_give_results_never_a_server_error(fresh: Fresh, query: str) -> None:
    api, ann, room = fresh.api, fresh.user, fresh.room
    word = unique_word()
    sent = await api.send(ann.token, room, f"{word} near a b or")
    results = await search(api, ann, query.format(w=word))
    assert [r["seq"] for r in results] in ([], [sent["seq"]])


async def test_search_off_answers_503_and_on_again_finds_everything(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """`--search off`: sends are not indexed and search is unavailable; the next start
    with search on rebuilds the index, so what was sent meanwhile is found."""
    data = tmp_path / "data"
    word = unique_word()
    off = server_factory(["--search", "off"], data_dir=data)
    async with AsyncApi(off.url) as api:
        ann = await api.register()
        sent = await api.send(ann.token, "general", f"{word} while off")
        assert_error(await search_raw(api, ann, word), 503, "unavailable")
    off.stop()
    on = server_factory(data_dir=data)
    async with AsyncApi(on.url) as api:
        ann = await api.login(ann)
        assert [r["seq"] for r in await search(api, ann, word)] == [sent["seq"]]
