"""Hostile uploads (contract v2 files): empty, oversized, lying about their type, image
bombs, hostile names, broken multipart bodies, strangers and odd ranges. Each gets a clear
4xx, nothing is half-stored, and the server stays up and small."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import AsyncApi, ServerFactory, User, assert_error
from tests.support.images import image_bytes, noisy_jpeg, png_bomb
from tests.support.server import ServerProcess

MIB = 1024 * 1024
BOUNDARY = "parleyboundary"


def _stored(server: ServerProcess) -> list[Path]:
    """The files of the data directory's uploads (staging) and files (kept) folders."""
    return sorted(
        p
        for folder in ("uploads", "files")
        for p in (server.data_dir / folder).rglob("*")
        if p.is_file()
    )


def _peak_rss(server: ServerProcess) -> int:
    """The server process's peak resident memory so far (VmHWM), in bytes."""
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found is not None
    return int(found[1]) * 1024


def _multipart(*parts: tuple[str, bytes]) -> bytes:
    """A multipart body of (Content-Disposition parameters, content) parts."""
    body = b""
    for disposition, content in parts:
        body += f"--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n".encode()
        body += b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


async def _post_raw(api: AsyncApi, user: User, body: bytes, content_type: str) -> httpx.Response:
    return await api.post(
        "/api/files", token=user.token, content=body, headers={"Content-Type": content_type}
    )


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture(scope="module")
def server(shared_server: ServerProcess) -> ServerProcess:
    """One server for the module (a fresh one costs a process start): each test signs up
    users of its own, and a check that nothing was kept compares the data directory's files
    before and after. The tests that measure the server's memory start their own."""
    return shared_server


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[AsyncApi]:
    async with AsyncApi(server.url) as client:
        yield client


async def test_bodies_without_exactly_one_good_file_part_are_bad_requests(
    server: ServerProcess, api: AsyncApi
) -> None:
    ann = await api.register()
    kept = _stored(server)
    cases = [
        (_multipart(('name="file"; filename="a.txt"', b"")), MULTIPART),  # zero bytes
        (_multipart(('name="other"; filename="a.txt"', b"data")), MULTIPART),  # no part file
        (_multipart(), MULTIPART),  # no part at all
        (
            _multipart(('name="file"; filename="a.txt"', b"one"), ('name="x"', b"two")),
            MULTIPART,
        ),  # a second part
        (b'{"file": "data"}', "application/json"),  # not multipart
        (b"file=data", "application/x-www-form-urlencoded"),
        (b"data", "multipart/form-data"),  # no boundary
        (b"garbage without any boundary line", MULTIPART),
        (_multipart(('name="\x7fbad\x08"', b"x")), MULTIPART),  # a part header aiohttp refuses
        (b"", MULTIPART),
    ]
    for body, content_type in cases:
        resp = await _post_raw(api, ann, body, content_type)
        error = assert_error(resp, 400, "bad_request")
        assert error["message"], body
    assert _stored(server) == kept
    ok = await _post_raw(api, ann, _multipart(('name="file"', b"no file name")), MULTIPART)
    assert ok.status_code == 201, ok.text
    assert ok.json()["name"] == "file"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("photo.png", b"just some text"),
        ("photo.png", image_bytes("JPEG")),  # an image, but not the one it says
        ("photo.jpg", image_bytes("PNG")),
        ("anim.gif", b"%PDF-1.4"),
        ("doc.pdf", image_bytes("GIF")),
        ("notes.txt", b"\x00\x01\x02binary"),
        ("photo.webp", b"RIFF\x00\x00\x00\x00WAVEfmt "),
    ],
)
async def test_bytes_that_are_not_what_the_name_says_are_refused(
    server: ServerProcess, api: AsyncApi, name: str, content: bytes
) -> None:
    ann = await api.register()
    kept = _stored(server)
    resp = await api.upload(ann.token, content, name)
    assert "but its bytes are" in assert_error(resp, 400, "bad_request")["message"]
    assert _stored(server) == kept


async def test_a_decompression_bomb_is_refused_and_the_server_stays_small(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()  # its own: the peak memory of a fresh process is measured
    async with AsyncApi(server.url) as api:
        ann = await api.register()
        bomb = png_bomb(20000)  # 400 megapixels in a few KiB
        before = _peak_rss(server)
        resp = await api.upload(ann.token, bomb, "bomb.png")
        assert "pixels" in assert_error(resp, 400, "bad_request")["message"]
        assert _peak_rss(server) - before < 64 * MIB  # decoded it would take 400 MB
        broken = await api.upload(ann.token, image_bytes("PNG")[:80], "cut.png")
        assert "cannot be decoded" in assert_error(broken, 400, "bad_request")["message"]
        assert _stored(server) == []
        assert (await api.upload(ann.token, image_bytes("PNG"), "fine.png")).status_code == 201


HOSTILE_NAMES = [
    ('filename="..\\\\..\\\\windows\\\\evil.exe"', "evil.exe"),
    ('filename="../../../etc/passwd"', "passwd"),
    ("filename*=UTF-8''a%0D%0AX-Injected%3A%201.txt", "aX-Injected: 1.txt"),
    ("filename*=UTF-8''%E2%80%AEtxt.exe", "txt.exe"),  # a right-to-left override
    ("filename*=UTF-8''nul%00l.txt", "null.txt"),
    ("filename*=UTF-8''%22quoted%22%3B%20x%3D1.txt", '"quoted"; x=1.txt'),
    ("filename*=UTF-8''caf%C3%A9%20%E2%98%83.txt", "caf\u00e9 \u2603.txt"),
    ('filename="' + "x" * 1000 + '.txt"', "x" * 255),
    ('filename=""', "file"),
]


@pytest.mark.parametrize(("disposition", "expected"), HOSTILE_NAMES)
async def test_hostile_names_become_labels(
    server: ServerProcess, api: AsyncApi, disposition: str, expected: str
) -> None:
    ann = await api.register()
    body = _multipart((f'name="file"; {disposition}', b"harmless"))
    resp = await _post_raw(api, ann, body, MULTIPART)
    assert resp.status_code == 201, resp.text
    file = resp.json()
    assert file["name"] == expected
    got = await api.get(f"/api/files/{file['id']}", token=ann.token)
    assert got.status_code == 200
    assert "x-injected" not in got.headers
    [disposition_header] = got.headers.get_list("Content-Disposition")
    assert disposition_header.isascii()
    assert disposition_header.startswith("attachment; filename=")
    assert not set("\r\n\x00") & set(disposition_header)
    # the bytes live under the data directory's files/, named by their hash only
    kept = _stored(server)
    assert kept
    assert all(re.fullmatch("[0-9a-f]{64}", p.name) for p in kept), kept
    assert all(p.is_relative_to(server.data_dir / "files") for p in kept)


async def test_an_image_that_grows_past_the_limit_when_re_encoded_is_refused(
    server_factory: ServerFactory,
) -> None:
    small = noisy_jpeg()  # about 1.2 KB; about 1.9 KB once re-encoded
    server = server_factory(["--max-upload", str(len(small) + 300)])
    async with AsyncApi(server.url) as api:
        ann = await api.register()
        refused = await api.upload(ann.token, small, "noise.jpg")
        error = assert_error(refused, 413, "too_large")
        assert "once re-encoded" in error["message"]
        assert _stored(server) == []  # nothing half-kept, nothing left in staging
        assert (await api.upload(ann.token, image_bytes("JPEG"), "red.jpg")).status_code == 201


async def test_an_oversized_upload_is_refused_while_it_is_still_being_sent(
    server_factory: ServerFactory,
) -> None:
    """413 before the body is all sent, nothing kept, and the server's memory does not
    grow by the upload's size (it streams to disk; past the limit it reads no more)."""
    server = server_factory(["--max-upload", str(4 * MIB)])
    async with AsyncApi(server.url) as api:
        ann = await api.register()
        assert (await api.upload(ann.token, b"warm up")).status_code == 201
    before = _peak_rss(server)
    total = 256 * MIB
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    )
    writer.write(
        (
            "POST /api/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {ann.token}\r\nContent-Type: {MULTIPART}\r\n"
            f"Content-Length: {len(head) + total}\r\n\r\n{head}"
        ).encode()
    )
    answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
    chunk = os.urandom(256 * 1024)
    sent = 0
    try:
        while sent < total and not answer.done():
            writer.write(chunk)
            sent += len(chunk)
            await asyncio.wait([answer], timeout=0.01)
            await writer.drain()
        status = (await asyncio.wait_for(answer, 30)).split(b"\r\n", 1)[0]
    finally:
        writer.close()
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert sent < total // 4, sent  # refused long before the end
    assert _peak_rss(server) - before < 16 * MIB
    assert [p.name for p in _stored(server) if p.suffix] == []  # no staging left
    async with AsyncApi(server.url) as api:  # the server goes on
        assert (await api.upload(ann.token, b"small")).status_code == 201


async def test_an_upload_near_the_limit_streams_to_disk(server_factory: ServerFactory) -> None:
    server = server_factory(["--max-upload", str(48 * MIB)])
    content = os.urandom(40 * MIB)
    async with AsyncApi(server.url) as api:
        ann = await api.register()
        assert (await api.upload(ann.token, b"warm up")).status_code == 201
        before = _peak_rss(server)
        resp = await api.upload(ann.token, content, "big.bin")
        assert resp.status_code == 201, resp.text
        assert resp.json()["size"] == len(content)
        assert _peak_rss(server) - before < 20 * MIB  # never whole in memory
        got = await api.get(f"/api/files/{resp.json()['id']}", token=ann.token)
        assert got.content == content


async def test_the_quota_refuses_with_its_own_code_and_keeps_nothing(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(["--upload-quota", "100"])
    async with AsyncApi(server.url) as api:
        ann = await api.register()
        assert (await api.upload(ann.token, b"a" * 60)).status_code == 201
        kept = _stored(server)
        resp = await api.upload(ann.token, b"b" * 60)
        assert "quota" in assert_error(resp, 413, "quota_exceeded")["message"]
        assert _stored(server) == kept
        assert (await api.upload(ann.token, b"c" * 40)).status_code == 201  # exactly full
        bob = await api.register()
        assert (await api.upload(bob.token, b"d" * 100)).status_code == 201


async def test_strangers_get_the_same_404_as_for_nothing(
    server: ServerProcess, api: AsyncApi
) -> None:
    ann, eve = await api.register(), await api.register()
    file = (await api.upload(ann.token, image_bytes("PNG"), "private.png")).json()
    answers = [
        await api.get(path, token=eve.token)
        for path in (
            f"/api/files/{file['id']}",
            f"/api/files/{file['id']}/thumb",
            f"/api/files/{file['id'][:-1]}a",
            "/api/files/" + "z" * 26,
            "/api/files/%00",
            "/api/files/" + "a" * 5000,
        )
    ]
    assert {(r.status_code, r.content) for r in answers} == {(404, answers[0].content)}
    assert "ETag" not in answers[0].headers
    # ... and sending a stranger's file is a not_found too
    resp = await api.post(
        "/api/rooms/general/messages",
        token=eve.token,
        json={"text": "mine now", "attachments": [file["id"]]},
    )
    assert_error(resp, 404, "not_found")


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "body"),
    [
        ("bytes=0-0", 206, "bytes 0-0/10", b"0"),
        ("bytes=-1", 206, "bytes 9-9/10", b"9"),
        ("bytes=-100", 206, "bytes 0-9/10", b"0123456789"),
        ("bytes=8-1000", 206, "bytes 8-9/10", b"89"),
        ("bytes=10-", 416, "bytes */10", b""),
        ("bytes=-0", 416, "bytes */10", b""),
        ("bytes=99999999999999999999999-", 416, "bytes */10", b""),
        ("bytes=5-2", 200, None, b"0123456789"),  # invalid: ignored
        ("bytes=0-1,3-4", 200, None, b"0123456789"),  # several: the whole file
        ("lines=1-2", 200, None, b"0123456789"),
        ("bytes=abc", 200, None, b"0123456789"),
        ("bytes=" + "1" * 5000, 200, None, b"0123456789"),
    ],
)
async def test_range_edge_cases(
    server: ServerProcess,
    api: AsyncApi,
    range_header: str,
    status: int,
    content_range: str | None,
    body: bytes,
) -> None:
    ann = await api.register()
    file = (await api.upload(ann.token, b"0123456789", "digits.txt")).json()
    resp = await api.get(
        f"/api/files/{file['id']}", token=ann.token, headers={"Range": range_header}
    )
    assert resp.status_code == status
    assert resp.headers.get("Content-Range") == content_range
    if status != 416:
        assert resp.content == body
