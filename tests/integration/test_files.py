"""Files (contract v2): uploads, downloads and attachments over HTTP and WebSocket, on a
SQLite and on a PostgreSQL server."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.api import AsyncApi, Fresh, User, assert_error
from tests.support.client import new_client_id, open_plain, parley_ws
from tests.support.images import GPS_IFD, image_bytes, jpeg_with_exif
from tests.support.server import ServerProcess

Event = dict[str, Any]


@pytest.fixture(scope="module")
def shared_server(shared_server_on_each_store: ServerProcess) -> ServerProcess:
    """Every test here runs on SQLite and on PostgreSQL."""
    return shared_server_on_each_store


async def _upload(api: AsyncApi, user: User, content: bytes, name: str = "notes.txt") -> Event:
    resp = await api.upload(user.token, content, name)
    assert resp.status_code == 201, resp.text
    file: Event = resp.json()
    return file


async def _download(
    api: AsyncApi, user: User, file_id: str, thumb: bool = False, **headers: str
) -> httpx.Response:
    path = f"/api/files/{file_id}" + ("/thumb" if thumb else "")
    return await api.get(path, token=user.token, headers=headers)


async def _post(api: AsyncApi, user: User, room: str, text: str, *files: str) -> httpx.Response:
    body = {"text": text, "attachments": list(files)}
    return await api.post(f"/api/rooms/{room}/messages", token=user.token, json=body)


async def test_an_upload_answers_its_file_and_serves_its_bytes(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    file = await _upload(api, ann, "caf\u00e9 \u2603\n".encode(), "../../notes.txt")
    assert set(file) == {"id", "name", "type", "size"}
    assert (file["name"], file["type"], file["size"]) == ("notes.txt", "text/plain", 10)
    assert len(file["id"]) == 26

    resp = await _download(api, ann, file["id"])
    assert resp.status_code == 200
    assert resp.content == "caf\u00e9 \u2603\n".encode()
    headers = resp.headers
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"notes.txt\"; filename*=UTF-8''notes.txt"
    )
    assert headers["Cache-Control"].startswith("private")
    etag = headers["ETag"]
    assert etag.startswith('"')
    assert len(etag) == 66  # the sha256, quoted

    again = await _download(api, ann, file["id"], **{"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    part = await _download(api, ann, file["id"], Range="bytes=5-")
    assert part.status_code == 206
    assert part.headers["Content-Range"] == "bytes 5-9/10"
    assert part.content == " \u2603\n".encode()
    past = await _download(api, ann, file["id"], Range="bytes=10-")
    assert past.status_code == 416
    assert past.headers["Content-Range"] == "bytes */10"


async def test_nobody_else_reads_an_unattached_upload_and_every_refusal_is_alike(
    fresh: Fresh,
) -> None:
    api, ann = fresh.api, fresh.user
    bob = await api.register()
    file = await _upload(api, ann, b"private notes")
    refusals = [
        await _download(api, bob, file["id"]),
        await _download(api, bob, file["id"], thumb=True),
        await _download(api, ann, "a" * 26),  # no such file
        await _download(api, ann, "..%2F..%2Fparley.db"),  # malformed
        await _download(api, ann, "x" * 300),
        await _download(api, ann, file["id"].upper()),
        await _download(api, ann, file["id"], thumb=True),  # a text has no thumbnail
    ]
    assert {(r.status_code, r.content) for r in refusals} == {(404, refusals[0].content)}
    assert_error(refusals[0], 404, "not_found")
    assert_error(await api.get(f"/api/files/{file['id']}"), 401, "unauthorized")


async def test_an_image_is_measured_inline_and_has_a_thumbnail(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    file = await _upload(api, ann, image_bytes("PNG", (1000, 400)), "wide.png")
    assert (file["type"], file["width"], file["height"]) == ("image/png", 1000, 400)
    resp = await _download(api, ann, file["id"])
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"].startswith('inline; filename="wide.png"')
    assert len(resp.content) == file["size"]
    assert Image.open(io.BytesIO(resp.content)).size == (1000, 400)
    thumb = await _download(api, ann, file["id"], thumb=True)
    assert thumb.status_code == 200
    assert thumb.headers["Content-Type"] == "image/png"
    assert thumb.headers["X-Content-Type-Options"] == "nosniff"
    assert thumb.headers["ETag"] != resp.headers["ETag"]
    assert Image.open(io.BytesIO(thumb.content)).size == (320, 128)


async def test_a_jpeg_comes_back_without_its_gps_position(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    original = jpeg_with_exif((40, 20), orientation=8)  # turned: width and height swap
    file = await _upload(api, ann, original, "holiday.jpg")
    assert (file["type"], file["width"], file["height"]) == ("image/jpeg", 20, 40)
    served = (await _download(api, ann, file["id"])).content
    assert served != original
    image = Image.open(io.BytesIO(served))
    assert image.size == (20, 40)
    assert not image.getexif().get_ifd(GPS_IFD)
    assert not image.getexif()
    assert b"SecretCam" not in served
    assert b"home sweet home" not in served


async def test_a_message_carries_its_files_live_in_history_replay_and_search(
    fresh: Fresh,
) -> None:
    api, ann, room = fresh.api, fresh.user, fresh.room
    bob = await api.register()
    photo = await _upload(api, ann, image_bytes("GIF"), "cat.gif")
    notes = await _upload(api, ann, b"see attached", "notes.txt")
    async with (
        parley_ws(fresh.server.ws_url, ann.token) as a,
        parley_ws(fresh.server.ws_url, bob.token) as b,
    ):
        await a.join_ok(room)
        await b.join_ok(room)
        cid = new_client_id()
        await a.send_json(
            {
                "type": "send",
                "room": room,
                "text": "zebrafiles here",
                "client_id": cid,
                "attachments": [photo["id"], notes["id"], photo["id"]],  # once each
            }
        )
        ack = await a.recv_type("ack", client_id=cid)
        live = await b.recv_type("message", room=room)
        assert live["attachments"] == [photo, notes]
        [stored] = await api.messages(bob.token, room)
        assert stored["attachments"] == [photo, notes]
        [past] = await b.history(room)
        assert past["attachments"] == [photo, notes]
    async with parley_ws(fresh.server.ws_url, bob.token) as late:
        await late.join_ok(room, since=ack["seq"] - 1)
        replayed = await late.recv_type("message", room=room)
        assert replayed["attachments"] == [photo, notes]
    found = await api.get("/api/search", token=bob.token, params={"q": "zebrafiles"})
    assert [r["attachments"] for r in found.json()["results"]] == [[photo, notes]]
    # the room is public: bob may read the files through the message now
    assert (await _download(api, bob, photo["id"])).status_code == 200
    assert (await _download(api, bob, photo["id"], thumb=True)).status_code == 200
    assert (await _download(api, bob, notes["id"])).content == b"see attached"


async def test_a_rest_send_may_carry_only_files_and_a_private_room_keeps_them(
    fresh: Fresh,
) -> None:
    api, ann = fresh.api, fresh.user
    bob, cat = await api.register(), await api.register()
    room = f"{fresh.room}p"
    assert (await api.create_room(ann.token, room, private=True)).status_code == 201
    assert (await api.invite(ann.token, room, bob.username)).status_code == 201
    file = await _upload(api, ann, b"%PDF-1.4 minimal", "report.pdf")
    assert file["type"] == "application/pdf"
    resp = await _post(api, ann, room, "", file["id"])  # no text: the file is the message
    assert resp.status_code == 201, resp.text
    assert (resp.json()["text"], resp.json()["attachments"]) == ("", [file])
    assert (await _download(api, bob, file["id"])).status_code == 200
    assert (await _download(api, cat, file["id"])).status_code == 404  # not a member
    removed = await api.request(
        "DELETE", f"/api/rooms/{room}/members/{bob.username}", token=ann.token
    )
    assert removed.status_code == 204
    assert (await _download(api, bob, file["id"])).status_code == 404  # no longer one


async def test_attachments_must_be_the_senders_own_uploads(fresh: Fresh) -> None:
    api, ann, room = fresh.api, fresh.user, fresh.room
    bob = await api.register()
    theirs = await _upload(api, bob, b"bob's")
    mine = await _upload(api, ann, b"ann's")
    assert_error(await _post(api, ann, room, "hi", theirs["id"]), 404, "not_found")
    assert_error(await _post(api, ann, room, "hi", "a" * 26), 404, "not_found")
    assert_error(await _post(api, ann, room, "hi", "not an id"), 404, "not_found")
    assert_error(await _post(api, ann, room, "hi", *[mine["id"]] * 11), 400, "bad_request")
    assert_error(await _post(api, ann, room, ""), 400, "bad_request")  # nothing to send
    assert_error(
        await _post(
            api,
            ann,
            room,
            "   ",
        ),
        400,
        "bad_request",
    )
    assert await api.messages(ann.token, room) == []
    async with parley_ws(fresh.server.ws_url, ann.token) as a:
        await a.join_ok(room)
        cid = new_client_id()
        frame = {"type": "send", "room": room, "text": "x", "client_id": cid}
        await a.send_json({**frame, "attachments": [theirs["id"]]})
        error = await a.expect_error("not_found")
        assert error["ref"] == cid
        await a.send_json({**frame, "client_id": new_client_id(), "attachments": "nope"})
        await a.expect_error("bad_request")
        ok = await a.send_ok(room, "plain")  # the socket goes on
        assert ok["seq"] == 1


async def test_a_deleted_message_drops_its_files(fresh: Fresh) -> None:
    api, ann, room = fresh.api, fresh.user, fresh.room
    bob = await api.register()
    file = await _upload(api, ann, b"regret")
    msg = (await _post(api, ann, room, "oops", file["id"])).json()
    assert (await _download(api, bob, file["id"])).status_code == 200
    deleted = await api.request(
        "DELETE", f"/api/rooms/{room}/messages/{msg['seq']}", token=ann.token
    )
    assert deleted.status_code == 204
    [tombstone] = await api.messages(bob.token, room)
    assert (tombstone["deleted"], tombstone["attachments"]) == (True, [])
    assert (await _download(api, bob, file["id"])).status_code == 404
    assert (await _download(api, ann, file["id"])).status_code == 200  # still the uploader's


async def test_plain_text_mode_names_the_attachments(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    file = await _upload(api, ann, b"data", "report 2026.txt")
    plain = await open_plain(fresh.server.ws_url, ann.token)
    try:
        await plain.send("ready")  # once it comes back, the socket hears general
        assert await _line_of(plain, ann) == f"{ann.username}: ready"
        resp = await _post(api, ann, "general", "", file["id"])
        assert resp.status_code == 201
        assert await _line_of(plain, ann) == f"{ann.username}: (attached: report 2026.txt)"
        resp = await _post(api, ann, "general", "and text", file["id"])
        assert await _line_of(plain, ann) == f"{ann.username}: and text (attached: report 2026.txt)"
    finally:
        await plain.close()


async def _line_of(plain: Any, user: User) -> str:
    """The next line by `user` (other tests share the server's general room)."""
    while True:
        line = await asyncio.wait_for(plain.recv(), 10)
        if isinstance(line, str) and line.startswith(f"{user.username}: "):
            return line


async def test_refused_uploads_keep_nothing(fresh: Fresh) -> None:
    api, ann = fresh.api, fresh.user
    assert_error(await api.upload(ann.token, b""), 400, "bad_request")
    assert_error(await api.upload(ann.token, b"not a png", "x.png"), 400, "bad_request")
    assert_error(await api.upload(ann.token, b"data", field="other"), 400, "bad_request")
    assert_error(await api.upload(ann.token, b"\x00\x01binary", "x.txt"), 400, "bad_request")
    binary = await _upload(api, ann, b"\x00\x01binary", "blob.bin")
    assert binary["type"] == "application/octet-stream"
    assert (
        (await _download(api, ann, binary["id"]))
        .headers["Content-Disposition"]
        .startswith("attachment;")
    )
