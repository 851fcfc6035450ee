"""Uploaded files' rules without I/O (contract v2, docs/protocol.md "Files"): what type
some bytes are, what a file is called, and the headers it is served with.

The type comes from the bytes (their magic numbers), never from the client's claim; a
name is a label shown to people, never a path.
"""

from __future__ import annotations

import base64
import codecs
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

__all__ = [
    "FILE_ID_BYTES",
    "IMAGE_TYPES",
    "MAX_NAME_CHARS",
    "OCTET_STREAM",
    "SNIFF_BYTES",
    "TEXT",
    "ByteRange",
    "TextCheck",
    "claimed_type",
    "clean_name",
    "content_disposition",
    "is_image",
    "new_file_id",
    "parse_range",
    "sniff",
    "thumb_type",
]

FILE_ID_BYTES: Final = 16  # 128 random bits: 26 characters of base32
MAX_NAME_CHARS: Final = 255
SNIFF_BYTES: Final = 16  # the longest magic number read (WebP's RIFF....WEBP: 12)
OCTET_STREAM: Final = "application/octet-stream"
TEXT: Final = "text/plain"
PNG: Final = "image/png"
JPEG: Final = "image/jpeg"
GIF: Final = "image/gif"
WEBP: Final = "image/webp"
PDF: Final = "application/pdf"
IMAGE_TYPES: Final = frozenset({PNG, JPEG, GIF, WEBP})

# The types whose extension a name may claim: a name that claims one the bytes are not
# is refused (a `.png` that is no PNG). Other extensions claim nothing.
_EXTENSIONS: Final = {
    "png": PNG,
    "jpg": JPEG,
    "jpeg": JPEG,
    "jpe": JPEG,
    "gif": GIF,
    "webp": WEBP,
    "pdf": PDF,
    "txt": TEXT,
}
# Text may hold tabs, newlines, carriage returns and form feeds, no other C0 control.
_BINARY: Final = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")


def new_file_id() -> str:
    """A file's id: random and opaque (never the content's hash, which would tell whether
    someone stored some content)."""
    raw = secrets.token_bytes(FILE_ID_BYTES)
    return base64.b32encode(raw).decode().rstrip("=").lower()


def sniff(head: bytes) -> str:
    """The type the first bytes of some content say (at least SNIFF_BYTES of them, or the
    whole content): one of the images, PDF, or application/octet-stream (whether that is
    UTF-8 text, only the whole content tells: `TextCheck`)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    return OCTET_STREAM


class TextCheck:
    """Whether content fed to it piece by piece is UTF-8 text (no NUL or other control
    characters but whitespace); the content need never be whole in memory."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = True

    def feed(self, chunk: bytes, final: bool = False) -> None:
        if not self.text:
            return
        try:
            decoded = self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            self.text = False
            return
        if _BINARY.search(decoded):
            self.text = False


def claimed_type(name: str) -> str | None:
    """The type `name`'s extension claims, when it is one Parley recognises."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return None
    return _EXTENSIONS.get(extension.lower())


def is_image(content_type: str) -> bool:
    return content_type in IMAGE_TYPES


def thumb_type(content_type: str) -> str:
    """A thumbnail's type: JPEG for a JPEG (a photo), else PNG (keeps transparency)."""
    return JPEG if content_type == JPEG else PNG


def clean_name(raw: str | None) -> str:
    """An uploaded file's label: its base name (whatever the client sent before the last
    `/` or `\\` goes), control and format characters dropped (newlines, NUL, bidi
    overrides), blanks trimmed, at most MAX_NAME_CHARS; "file" when nothing is left."""
    base = re.split(r"[/\\]", raw or "")[-1]
    kept = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    name = kept.strip()[:MAX_NAME_CHARS].strip()
    return "file" if name in ("", ".", "..") else name


def content_disposition(name: str, inline: bool) -> str:
    """`inline` or `attachment`, with the name as RFC 6266 says: an ASCII fallback
    (anything else, quotes and backslashes become `_`) and `filename*` in UTF-8
    (RFC 5987 percent-encoding, so no quote or newline can end the header's value)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    encoded = quote(name, safe="")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes `start` to `end` inclusive of content `size` bytes long (HTTP's numbers)."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


_RANGE: Final = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str | None, size: int) -> ByteRange | bool | None:
    """A `Range` header against content of `size` bytes (RFC 9110 14.2): the one range to
    serve; None to serve it all (no header, not a single byte range we read: ignored,
    as the RFC allows); False when it cannot be satisfied (416)."""
    if header is None:
        return None
    found = _RANGE.fullmatch(header.strip())
    if found is None or found[1] == found[2] == "":
        return None  # several ranges, another unit, or nonsense
    first, last = found[1], found[2]
    if len(first) > 20 or len(last) > 20:
        return False
    if first == "":  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return False
        return ByteRange(max(size - suffix, 0), size - 1, size)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        return False
    return ByteRange(start, end, size)
