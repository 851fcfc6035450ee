"""Uploads and downloads of files (contract v2, docs/protocol.md "Files"): the thin
adapter between aiohttp and the store, with core/files.py's rules and images.py's
Pillow work.

An upload streams to a temporary file under the data directory, counted as it comes:
past --max-upload it is refused at once (413) and nothing is kept. Then its type comes
from its bytes; an image is re-encoded in a thread; the store keeps the result by its
SHA-256. A download is served only to who may read the file (the store's rule), and
every refusal is the same 404 as a missing file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from parley.core.files import (
    OCTET_STREAM,
    SNIFF_BYTES,
    TEXT,
    ByteRange,
    TextCheck,
    claimed_type,
    clean_name,
    content_disposition,
    is_image,
    new_file_id,
    parse_range,
    sniff,
    thumb_type,
)
from parley.protocol import ErrorCode, File, ProtocolError
from parley.protocol.fields import FILE_ID_PATTERN
from parley.server.images import ImageRefused, process_image
from parley.store import FileRecord, QuotaExceeded, Store, StoreUnavailable

__all__ = ["FILE_HEADERS", "NOT_FOUND", "Downloads", "Uploads", "purge_unused"]

log = logging.getLogger("parley.files")
T = TypeVar("T")

CHUNK: Final = 64 * 1024  # bytes read from the request, or written out, at a time
SERVE_CHUNK: Final = 256 * 1024  # bytes read from the store at a time
MAX_THUMB_BYTES: Final = 4 * 1024 * 1024  # far above a 320 px thumbnail
UNUSED_FOR: Final = 24 * 3600.0  # an upload no message carries is removed after this
IMAGES_AT_ONCE: Final = 2  # images decoded at once (see Uploads.decoding)
# Served bytes are never a page: a browser must not run or sniff them. `sandbox` makes a
# document opened from them a unique origin without scripts; an image still shows
# inline (an <img> or a top-level view ignores the document's CSP for its own bytes).
FILE_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    # kept by the browser only, and asked again each time (a 304 when unchanged): who
    # may read a file can change (a removal, a delete), its bytes never do
    "Cache-Control": "private, no-cache",
    "Accept-Ranges": "bytes",
    "Cross-Origin-Resource-Policy": "same-origin",
}
NOT_FOUND: Final = "no such file"  # one message for every refusal: nothing to tell apart
_FILE_ID: Final = re.compile(FILE_ID_PATTERN)


def _bad(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, message)


@dataclass(slots=True)
class _Received:
    """An upload on disk: its size, hash and what its bytes look like."""

    path: Path
    name: str
    size: int = 0
    head: bytes = b""
    sha256: str = ""
    text: bool = True


class Uploads:
    """POST /api/files: receive, check, process and store one file."""

    def __init__(
        self, store: Store, data: Path, max_upload: int, quota: int, idle_timeout: float
    ) -> None:
        self.store = store
        self.staging = data / "uploads"
        self.max_upload = max_upload
        self.quota = quota  # 0: none
        self.idle_timeout = idle_timeout or None  # seconds each chunk may take; 0: none
        # A 50-megapixel image takes a few hundred MB to decode and shrink: one at a time
        # per core, so that many uploads at once queue instead of exhausting memory.
        self.decoding = asyncio.Semaphore(IMAGES_AT_ONCE)

    async def receive(self, request: web.Request, username: str) -> File:
        """The request's one part `file`, stored as `username`'s upload."""
        reader = await _multipart(request)
        part = await self._next_part(reader)
        if not isinstance(part, BodyPartReader) or part.name != "file":
            raise _bad("send the file as multipart/form-data in one part named `file`")
        await asyncio.to_thread(self.staging.mkdir, parents=True, exist_ok=True)
        temporary = self.staging / f"{new_file_id()}.part"
        try:
            received = await self._stream(part, temporary)
            if await self._next_part(reader) is not None:
                raise _bad("send one part only: `file`")
            return await self._store(received, username)
        finally:
            await asyncio.to_thread(_remove, temporary, temporary.with_suffix(".out"))

    async def sweep(self, now: float) -> int:
        """Remove what uploads left in the staging folder (a crash mid-upload) older than
        UNUSED_FOR; how many files."""
        return await asyncio.to_thread(_sweep, self.staging, now - UNUSED_FOR)

    async def _next_part(self, reader: MultipartReader) -> object:
        """The body's next part (None: no more), read within the idle timeout."""
        return await self._within(reader.next())

    async def _stream(self, part: BodyPartReader, path: Path) -> _Received:
        """Copy the part to `path`, counting: past max_upload, too_large at once."""
        received = _Received(path, clean_name(part.filename))
        digest = hashlib.sha256()
        check = TextCheck()
        with path.open("wb") as out:
            while chunk := await self._chunk(part):
                received.size += len(chunk)
                if received.size > self.max_upload:
                    raise ProtocolError(
                        ErrorCode.TOO_LARGE, f"the file is over {self.max_upload} bytes"
                    )
                if len(received.head) < SNIFF_BYTES:
                    received.head += chunk[:SNIFF_BYTES]
                digest.update(chunk)
                check.feed(chunk)
                out.write(chunk)  # to the page cache: flushed and synced before it is kept
        if received.size == 0:
            raise _bad("the file is empty")
        check.feed(b"", final=True)
        received.sha256, received.text = digest.hexdigest(), check.text
        return received

    async def _chunk(self, part: BodyPartReader) -> bytes:
        chunk: bytes = await self._within(part.read_chunk(CHUNK))
        return chunk

    async def _within(self, step: Awaitable[T]) -> T:
        """One read of the multipart body: within the idle timeout, a broken body or a
        lost client answered as such."""
        try:
            async with asyncio.timeout(self.idle_timeout):
                return await step
        except TimeoutError:
            raise web.HTTPRequestTimeout(
                reason="the upload stalled", headers={"Connection": "close"}
            ) from None
        except ConnectionError:  # the client left mid-body: nobody to answer
            raise web.HTTPBadRequest(reason="the connection was lost") from None
        except (ValueError, RuntimeError, HttpProcessingError) as exc:  # a broken body
            raise _bad(f"the multipart body is malformed ({exc})") from None

    async def _store(self, received: _Received, username: str) -> File:
        kind = sniff(received.head)
        if kind == OCTET_STREAM and received.text:
            kind = TEXT
        claimed = claimed_type(received.name)
        if claimed is not None and claimed != kind:
            raise _bad(f"the file's name says {claimed} but its bytes are {kind}")
        content, thumb = received.path, None
        width = height = None
        size, sha = received.size, received.sha256
        if is_image(kind):
            content = received.path.with_suffix(".out")
            thumb = received.path.with_suffix(".thumb")
            try:
                async with self.decoding:
                    shape = await asyncio.to_thread(
                        process_image, received.path, kind, content, thumb
                    )
            except ImageRefused as exc:
                raise _bad(str(exc)) from None
            width, height = shape.width, shape.height
            size, sha = await asyncio.to_thread(_measure, content)
        try:
            if size > self.max_upload:  # a tightly packed image can grow when re-encoded
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"the image is over {self.max_upload} bytes once re-encoded "
                    "(without its metadata): send it smaller",
                )
            thumb_sha = None if thumb is None else (await asyncio.to_thread(_measure, thumb))[1]
            await asyncio.to_thread(_sync, content, thumb)
            record = FileRecord(
                new_file_id(),
                sha,
                received.name,
                kind,
                size,
                width,
                height,
                thumb_sha,
                username,
                time.time(),
            )
            await self.store.add_file(record, content, thumb, self.quota)
        except QuotaExceeded:
            raise ProtocolError(
                ErrorCode.QUOTA_EXCEEDED,
                f"your files would take more than your quota of {self.quota} bytes",
            ) from None
        finally:
            if thumb is not None:
                await asyncio.to_thread(_remove, thumb)
        return record.as_file()


async def _multipart(request: web.Request) -> MultipartReader:
    if request.content_type != "multipart/form-data":
        raise _bad("send the file as multipart/form-data in one part named `file`")
    try:
        return await request.multipart()
    except (KeyError, ValueError, AssertionError) as exc:  # no boundary, or a broken one
        raise _bad(f"the multipart body is malformed ({exc})") from None


def _measure(path: Path) -> tuple[int, str]:
    """(size, sha256) of a file, read a chunk at a time."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(SERVE_CHUNK):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def _sync(*paths: Path | None) -> None:
    """On disk before the store records them (they are moved, not copied, on SQLite)."""
    for path in paths:
        if path is not None:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _sweep(folder: Path, before: float) -> int:
    removed = 0
    for path in folder.glob("*") if folder.is_dir() else ():
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < before:
                path.unlink()
                removed += 1
    return removed


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


class Downloads:
    """GET /api/files/{id} and /thumb: the bytes, to who may read them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def serve(
        self, request: web.Request, file_id: str, username: str, thumb: bool
    ) -> web.StreamResponse:
        record = await self._readable(file_id, username)
        if thumb:
            if record.thumb is None:
                raise ProtocolError(ErrorCode.NOT_FOUND, NOT_FOUND)
            data = await self.store.read_blob(record.thumb, 0, MAX_THUMB_BYTES)
            sha, size, kind = record.thumb, len(data), thumb_type(record.type)
        else:
            sha, size, kind = record.sha256, record.size, record.type
        headers = dict(FILE_HEADERS)
        headers["ETag"] = f'"{sha}"'
        headers["Content-Disposition"] = content_disposition(record.name, is_image(record.type))
        if _etag_matches(request.headers.get("If-None-Match"), sha):
            return web.Response(status=304, headers=headers)
        wanted = parse_range(request.headers.get("Range"), size)
        if wanted is False:
            headers["Content-Range"] = f"bytes */{size}"
            return web.Response(status=416, headers=headers)
        span = wanted if isinstance(wanted, ByteRange) else ByteRange(0, size - 1, size)
        response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
        if wanted:
            response.headers["Content-Range"] = span.content_range()
        response.content_type = kind
        if kind == TEXT:
            response.charset = "utf-8"  # checked when it was uploaded
        response.content_length = span.length
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in self._chunks(sha, span):
                await response.write(chunk)
        await response.write_eof()
        return response

    async def _readable(self, file_id: str, username: str) -> FileRecord:
        """The file, or the one 404 for every reason (malformed, missing, not theirs)."""
        record = None
        if _FILE_ID.search(file_id):
            record = await self.store.readable_file(file_id, username)
        if record is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, NOT_FOUND)
        return record

    async def _chunks(self, sha: str, span: ByteRange) -> AsyncIterator[bytes]:
        offset, left = span.start, span.length
        while left > 0:
            chunk = await self.store.read_blob(sha, offset, min(SERVE_CHUNK, left))
            if not chunk:  # removed meanwhile: the response ends short (the client sees)
                return
            offset += len(chunk)
            left -= len(chunk)
            yield chunk


def _etag_matches(header: str | None, sha: str) -> bool:
    """If-None-Match holds our (strong) tag, or `*`; weak comparison, as RFC 9110 says."""
    if header is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or f'"{sha}"' in tags


async def purge_unused(store: Store, now: float) -> int:
    """Remove the uploads no message carries that are older than UNUSED_FOR; how many."""
    try:
        count = await store.purge_files(now - UNUSED_FOR)
    except StoreUnavailable:
        return 0  # the next round tries again
    except Exception:  # e.g. two nodes' purges deadlocked: the next round tries again
        log.exception("purging unused uploads failed")
        return 0
    if count:
        log.info("removed %d unused uploads", count)
    return count
