"""`parley export ROOM` (history as JSON lines), `parley export --all` and `parley import`:
a team's server moved from SQLite to PostgreSQL (or to another SQLite) with every seq,
password, marker, private room and uploaded file kept."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import AsyncApi, ServerFactory, User
from tests.support.client import parley_ws
from tests.support.images import image_bytes
from tests.support.pg import PgServer
from tests.support.server import PARLEY, ServerProcess

JSON = dict[str, Any]


def parley(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PARLEY, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def store_args(store: str, request: pytest.FixtureRequest) -> list[str]:
    """serve/export arguments for a fresh database on `store` (besides --data)."""
    if store == "sqlite":
        return []
    pg: PgServer = request.getfixturevalue("pg_server")
    return ["--db", pg.create_database()]


async def busy_team(api: AsyncApi) -> dict[str, User]:
    """Three people, a public room, a private one (carol outside it), a DM, and every kind
    of event: replies, mentions, edits, reactions, deletes, a topic, read markers."""
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    await api.create_room(alice.token, "pub")
    await api.create_room(alice.token, "secret", private=True)
    assert (await api.invite(alice.token, "secret", bob.username)).status_code in (200, 201, 204)
    dm = await api.post("/api/dms", token=alice.token, json={"users": [bob.username]})
    assert dm.status_code == 201, dm.text
    for i in range(12):
        await api.send(alice.token, "pub", f"pub message {i} for @{bob.username}")
        await api.send(bob.token, "secret", f"secret plan {i}")
        await api.send(carol.token, "general", f"hello {i}")
    await api.send(alice.token, dm.json()["room"], "just us")
    first = await api.send(bob.token, "pub", "a reply", client_id="c-1")
    await api.post(
        "/api/rooms/pub/messages", token=carol.token, json={"text": "re", "reply_to": first["seq"]}
    )
    for method, path, token, body in [
        ("PATCH", "/api/rooms/pub/messages/1", alice.token, {"text": "pub message 0, edited"}),
        ("DELETE", "/api/rooms/pub/messages/2", alice.token, None),
        ("PUT", "/api/rooms/pub/messages/3/reactions/%F0%9F%91%8D", bob.token, None),
        ("PUT", "/api/rooms/pub/messages/3/reactions/%F0%9F%8E%89", carol.token, None),
        ("PATCH", "/api/rooms/secret", alice.token, {"topic": "the plan"}),
        ("POST", "/api/rooms/pub/read", bob.token, {"seq": 5}),
        ("POST", "/api/rooms/secret/read", alice.token, {"seq": 7}),
    ]:
        resp = await api.request(method, path, token=token, json=body)
        assert resp.status_code in (200, 204), (path, resp.text)
    return {"alice": alice, "bob": bob, "carol": carol}


async def seen_by(api: AsyncApi, user: User) -> JSON:
    """Everything `user` sees: their rooms with counts, and each room's whole history."""
    rooms = await api.rooms(user.token)
    return {
        "rooms": rooms,
        "history": {r["room"]: await api.all_messages(user.token, r["room"]) for r in rooms},
    }


def export_lines(*args: str | Path) -> list[JSON]:
    out = parley("export", *args)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def imported(
    dump: Path, store: str, request: pytest.FixtureRequest, factory: ServerFactory, data: Path
) -> ServerProcess:
    """A server on a new database on `store` (SQLite: under `data`) that `dump` went into."""
    args = store_args(store, request)
    out = parley("import", dump, *(args or ["--data", str(data)]))
    assert out.returncode == 0, out.stderr
    return factory(args, data_dir=data)


def stored_contents(data: Path) -> list[str]:
    """The names of the contents a SQLite server keeps under `data`."""
    return [p.name for p in (data / "files").rglob("*") if p.is_file()]


def export_all(args: list[str], data: Path, into: Path) -> list[JSON]:
    """`export --all` of the server on `args` (else under `data`) written to `into`."""
    out = parley("export", "--all", *(args or ["--data", str(data)]))
    assert out.returncode == 0, out.stderr
    into.write_text(out.stdout)
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_export_room_is_its_history(
    store: str, request: pytest.FixtureRequest, server_factory: ServerFactory
) -> None:
    args = store_args(store, request)
    srv = server_factory(args)
    async with AsyncApi(srv.url) as api:
        team = await busy_team(api)
        history = await api.all_messages(team["alice"].token, "pub")
    where = args or ["--data", str(srv.data_dir)]
    assert export_lines("pub", *where) == history
    assert [m["seq"] for m in history] == sorted(m["seq"] for m in history)
    assert any(m["deleted"] for m in history)
    assert any(m["reactions"] for m in history)
    missing = parley("export", "no-such-room", *where)
    assert missing.returncode == 1
    assert "no room 'no-such-room'" in missing.stderr
    assert missing.stdout == ""


@pytest.mark.parametrize(
    ("source", "target"), [("sqlite", "postgres"), ("sqlite", "sqlite"), ("postgres", "sqlite")]
)
async def test_move_a_team(
    source: str,
    target: str,
    request: pytest.FixtureRequest,
    server_factory: ServerFactory,
    tmp_path: Path,
) -> None:
    old_args = store_args(source, request)
    old = server_factory(old_args)
    async with AsyncApi(old.url) as api:
        team = await busy_team(api)
        before = {name: await seen_by(api, user) for name, user in team.items()}
        # alice registered first: the admin; an invite code makes an audit entry
        made = await api.post("/api/invites", token=team["alice"].token, json={})
        invite = made.json()["code"]
    dump = tmp_path / "team.jsonl"
    kinds = {r["record"] for r in export_all(old_args, old.data_dir, dump)}
    assert kinds == {
        *("parley-export", "user", "room", "member", "read_mark", "event", "mention"),
        *("settings", "invites", "audit"),  # admin (migration 9)
    }
    assert old.terminate() == 0

    new = imported(dump, target, request, server_factory, tmp_path / "new")
    async with AsyncApi(new.url) as api:
        for name, user in team.items():
            signed_in = await api.login(user)  # the old password; sessions did not move
            assert await seen_by(api, signed_in) == before[name], name
            team[name] = signed_in
        await _admin_moved(api, team["alice"], invite)
        carol = team["carol"]
        assert "secret" not in await api.room_names(carol.token)
        assert (await api.messages_raw(carol.token, "secret")).status_code == 404
        found = await api.get("/api/search", token=team["bob"].token, params={"q": "plan"})
        assert len(found.json()["results"]) == 12
        # join with since replays what came after; the next event takes the next seq
        alice = team["alice"]
        last = next(r["last_seq"] for r in before["alice"]["rooms"] if r["room"] == "pub")
        async with parley_ws(new.ws_url, alice.token) as ws:
            joined = await ws.join_ok("pub", since=last - 4)
            assert joined["last_seq"] == last
            replayed = [await ws.recv_until(lambda e: "seq" in e) for _ in range(4)]
            assert [e["seq"] for e in replayed] == list(range(last - 3, last + 1))
            ack = await ws.send_ok("pub", "after the move")
            assert ack["seq"] == last + 1


async def _admin_moved(api: AsyncApi, admin: User, invite: str) -> None:
    """The admin, the invite code and the audit log moved; the log's ids go on after them."""
    assert (await api.get("/api/me", token=admin.token)).json()["admin"] is True
    listed = await api.get("/api/invites", token=admin.token)
    assert [i["code"] for i in listed.json()["invites"]] == [invite]
    assert (await api.post("/api/invites", token=admin.token, json={})).status_code == 201
    entries = (await api.get("/api/admin/audit", token=admin.token)).json()["entries"]
    assert [(e["action"], e["actor"]) for e in entries] == [("invite", admin.username)] * 2
    assert entries[0]["id"] > entries[1]["id"]


async def test_import_refusals(server_factory: ServerFactory, tmp_path: Path) -> None:
    srv = server_factory([])
    async with AsyncApi(srv.url) as api:
        await api.register()
    dump = tmp_path / "dump.jsonl"
    out = parley("export", "--all", "--data", srv.data_dir)
    dump.write_text(out.stdout)
    # into the data directory of a running server: refused by its lock
    busy = parley("import", dump, "--data", srv.data_dir)
    assert busy.returncode == 1
    assert "a server is running" in busy.stderr
    assert srv.terminate() == 0
    # into a database that is not empty
    full = parley("import", dump, "--data", srv.data_dir)
    assert full.returncode == 1
    assert "not empty (1 users" in full.stderr
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("this is not json\n")
    headless = tmp_path / "headless.jsonl"
    headless.write_text("\n".join(dump.read_text().splitlines()[1:]))
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(dump.read_text() + '{"record": "spaceship"}\n')
    for source, said in [
        (garbage, "line 1: not a JSON object"),
        (headless, "not a Parley export"),
        (unknown, "unknown record 'spaceship'"),
        (tmp_path / "missing.jsonl", "cannot be read"),
    ]:
        empty = tmp_path / f"empty-{source.stem}"
        out = parley("import", source, "--data", empty)
        assert out.returncode == 1, source
        assert said in out.stderr, out.stderr
        # nothing stored: a server on that directory starts with no users
        if (empty / "parley.db").exists():
            redo = parley("import", dump, "--data", empty)
            assert redo.returncode == 0, redo.stderr


def test_export_needs_a_database(tmp_path: Path) -> None:
    out = parley("export", "--all", "--data", tmp_path / "nothing")
    assert out.returncode == 1
    assert "no such database" in out.stderr
    assert not (tmp_path / "nothing").exists()


# Bytes that take several blob_data records (CONTENT_CHUNK is 96 KiB), the same in two files.
BIG = bytes(range(256)) * 1200


async def team_with_files(api: AsyncApi) -> tuple[dict[str, User], dict[str, str]]:
    """alice's image (and so its thumbnail) and a big non-image sent in a private room
    (carol outside it), bob's upload of the same big bytes sent in a public room, and an
    upload of alice's on no message; the files' ids by name."""
    alice, bob, carol = await api.register(), await api.register(), await api.register()
    await api.create_room(alice.token, "pub")
    await api.create_room(alice.token, "secret", private=True)
    assert (await api.invite(alice.token, "secret", bob.username)).status_code in (200, 201, 204)
    ids: dict[str, str] = {}
    for name, user, content, label in [
        ("photo", alice, image_bytes("PNG", (800, 600)), "photo.png"),
        ("big", alice, BIG, "data.bin"),
        ("copy", bob, BIG, "copy.bin"),
        ("draft", alice, b"not sent yet", "draft.txt"),
    ]:
        resp = await api.upload(user.token, content, label)
        assert resp.status_code == 201, resp.text
        ids[name] = resp.json()["id"]
    for user, room, files in [(alice, "secret", ["photo", "big"]), (bob, "pub", ["copy"])]:
        body = {"text": f"files for {room}", "attachments": [ids[f] for f in files]}
        resp = await api.post(f"/api/rooms/{room}/messages", token=user.token, json=body)
        assert resp.status_code in (200, 201), resp.text
    return {"alice": alice, "bob": bob, "carol": carol}, ids


async def downloads(api: AsyncApi, user: User, ids: dict[str, str]) -> dict[str, JSON]:
    """What `user` gets for each file and its thumbnail: status, type, ETag and bytes."""
    got: dict[str, JSON] = {}
    for name, file_id in ids.items():
        for path in (f"/api/files/{file_id}", f"/api/files/{file_id}/thumb"):
            resp = await api.get(path, token=user.token)
            got[path.replace(file_id, name)] = {
                "status": resp.status_code,
                "type": resp.headers.get("Content-Type"),
                "etag": resp.headers.get("ETag"),
                "content": resp.content,
            }
    return got


@pytest.mark.parametrize(("source", "target"), [("sqlite", "postgres"), ("postgres", "sqlite")])
async def test_move_a_team_with_its_files(
    source: str,
    target: str,
    request: pytest.FixtureRequest,
    server_factory: ServerFactory,
    tmp_path: Path,
) -> None:
    old_args = store_args(source, request)
    old = server_factory(old_args)
    async with AsyncApi(old.url) as api:
        team, ids = await team_with_files(api)
        before = {name: await seen_by(api, user) for name, user in team.items()}
        got = {name: await downloads(api, user, ids) for name, user in team.items()}
    dump = tmp_path / "team.jsonl"
    records = export_all(old_args, old.data_dir, dump)
    assert old.terminate() == 0
    contents = [r for r in records if r["record"] == "blob_data"]
    big_sha = got["alice"]["/api/files/big"]["etag"].strip('"')
    assert len([r for r in contents if r["sha256"] == big_sha]) == 4  # chunks of 96 KiB
    assert b"".join(base64.b64decode(r["data"]) for r in contents if r["sha256"] == big_sha) == BIG

    new = imported(dump, target, request, server_factory, tmp_path / "new")
    async with AsyncApi(new.url) as api:
        for name, user in team.items():
            signed_in = await api.login(user)
            assert await seen_by(api, signed_in) == before[name], name
            assert await downloads(api, signed_in, ids) == got[name], name
    # the same access rules: the private room's files are its members', a file on no
    # message its uploader's; the image's thumbnail came along, the text has none
    alice, bob, carol = got["alice"], got["bob"], got["carol"]
    assert alice["/api/files/big"]["content"] == BIG
    assert (
        alice["/api/files/photo/thumb"]["status"] == bob["/api/files/photo/thumb"]["status"] == 200
    )
    assert alice["/api/files/photo/thumb"]["type"] == "image/png"
    assert alice["/api/files/big/thumb"]["status"] == 404
    assert [carol[f"/api/files/{f}"]["status"] for f in ("photo", "big", "copy")] == [404, 404, 200]
    assert [bob[f"/api/files/{f}"]["status"] for f in ("draft", "copy")] == [404, 200]
    assert alice["/api/files/draft"]["status"] == 200
    if target == "sqlite":  # the bytes under --data: four contents (big and copy share one)
        stored = stored_contents(new.data_dir)
        assert sorted(stored) == sorted(r["sha256"] for r in records if r["record"] == "blobs")
        assert len(stored) == 4


async def test_a_damaged_content_is_refused(
    request: pytest.FixtureRequest, server_factory: ServerFactory, tmp_path: Path
) -> None:
    old = server_factory([])
    async with AsyncApi(old.url) as api:
        await team_with_files(api)
    dump = tmp_path / "team.jsonl"
    lines = [json.dumps(r) for r in export_all([], old.data_dir, dump)]
    assert old.terminate() == 0
    # one byte changed in the last chunk of a content (its base64 still valid)
    where = max(i for i, line in enumerate(lines) if '"blob_data"' in line)
    chunk = json.loads(lines[where])
    data = bytearray(base64.b64decode(chunk["data"]))
    data[-1] ^= 1
    lines[where] = json.dumps({**chunk, "data": base64.b64encode(data).decode()})
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("\n".join(lines))
    contentless = tmp_path / "contentless.jsonl"  # the contents left out
    contentless.write_text("\n".join(line for line in lines if '"blob_data"' not in line))
    pg: PgServer = request.getfixturevalue("pg_server")
    for source, said in [
        (damaged, f"blob {chunk['sha256']}: its content is damaged"),
        (contentless, "the dump carries no content for it"),
    ]:
        new_data = tmp_path / f"new-{source.stem}"  # for SQLite; PostgreSQL's is empty
        for target in (["--db", pg.create_database()], ["--data", str(new_data)]):
            out = parley("import", source, *target)
            assert out.returncode == 1, out.stderr
            assert said in out.stderr, out.stderr
            # nothing imported: no content under --data (yet), and the good dump goes in
            assert stored_contents(new_data) == []
            redo = parley("import", dump, *target)
            assert redo.returncode == 0, redo.stderr
