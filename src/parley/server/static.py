"""The browser client's files, read once at start and served with strong ETags."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from typing import Final

from aiohttp import web

__all__ = ["StaticFiles"]

_TYPES: Final = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",  # the client's ES modules: a module script needs a JS type
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
}


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    etag: str
    content_type: str


class StaticFiles:
    """Files of the `parley.web` package directory (flat: no sub-folders, no `..`)."""

    def __init__(self) -> None:
        self.files: dict[str, _File] = {}
        root = resources.files("parley.web")
        for entry in root.iterdir():
            name = entry.name
            if not entry.is_file() or name.startswith((".", "_")) or name.endswith(".py"):
                continue
            body = entry.read_bytes()
            suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
            ctype = (
                _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
            )
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self.files[name] = _File(body, etag, ctype)

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name") or "index.html"
        file = self.files.get(name)
        if file is None:
            raise web.HTTPNotFound()
        headers = {"ETag": file.etag, "Cache-Control": "no-cache"}
        if file.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        charset = "utf-8" if file.content_type.startswith("text/") else None
        return web.Response(
            body=file.body, content_type=file.content_type, charset=charset, headers=headers
        )
