"""Uploaded images (PNG, JPEG, GIF, WebP) made safe to serve, with Pillow: decoded within
a pixel limit, turned upright (EXIF orientation), re-encoded without their metadata (EXIF
and its GPS position, comments, text chunks), measured, and given a thumbnail.

Blocking work: callers run `process_image` in a thread (`asyncio.to_thread`), never on
the event loop.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from PIL import Image, ImageOps, UnidentifiedImageError

from parley.core.files import GIF, JPEG, PNG, WEBP

__all__ = ["MAX_IMAGE_PIXELS", "MAX_THUMB_SIDE", "ImageRefused", "Processed", "process_image"]

# Pillow's decompression-bomb guard, set explicitly: an image of more pixels is refused
# before it is decoded (50 MP: a 8660 x 5773 photo; a bomb of a few KiB that would
# decode to gigabytes is refused from its header). Pillow warns between the limit and
# twice it and raises past that; the warning is made an error here, so both refuse.
MAX_IMAGE_PIXELS: Final = 50_000_000
MAX_FRAME_PIXELS: Final = 4 * MAX_IMAGE_PIXELS  # all frames of an animation together
MAX_THUMB_SIDE: Final = 320
JPEG_QUALITY: Final = 90
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)

_FORMATS: Final = {PNG: "PNG", JPEG: "JPEG", GIF: "GIF", WEBP: "WEBP"}
# What an animation needs to play as it did; everything else in `info` is dropped.
_KEPT_INFO: Final = ("duration", "loop", "transparency", "background", "disposal")


class ImageRefused(Exception):
    """The bytes are no image Parley serves (broken, or too many pixels): bad_request."""


@dataclass(frozen=True, slots=True)
class Processed:
    width: int
    height: int


def process_image(source: Path, content_type: str, out: Path, thumb: Path) -> Processed:
    """Re-encode the image at `source` (sniffed as `content_type`) into `out`, its
    thumbnail (at most MAX_THUMB_SIDE on its long side; JPEG for a JPEG, else PNG) into
    `thumb`; ImageRefused when it cannot be."""
    try:
        with Image.open(source, formats=[_FORMATS[content_type]]) as image:
            return _process(image, content_type, out, thumb)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRefused(_too_many_pixels()) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRefused(f"the image cannot be decoded ({exc})") from None


def _too_many_pixels() -> str:
    return f"the image has more than {MAX_IMAGE_PIXELS:,} pixels".replace(",", " ")


def _process(image: Image.Image, content_type: str, out: Path, thumb: Path) -> Processed:
    frames = getattr(image, "n_frames", 1)
    if image.width * image.height > MAX_IMAGE_PIXELS:  # Pillow checks too: belt and braces
        raise ImageRefused(_too_many_pixels())
    if image.width * image.height * frames > MAX_FRAME_PIXELS:
        raise ImageRefused("the animation has too many pixels in all")
    fmt = _FORMATS[content_type]
    if frames > 1:  # an animation keeps its frames (GIF and WebP carry no orientation)
        kept = {str(k): v for k, v in image.info.items() if k in _KEPT_INFO}
        image.info = {k: v for k, v in image.info.items() if k in _KEPT_INFO}
        image.save(out, format=fmt, save_all=True, **kept)
        upright = image
    else:
        upright = ImageOps.exif_transpose(image) or image
        upright.info = {k: v for k, v in upright.info.items() if k == "transparency"}
        _save_still(upright, fmt, out)
    _thumbnail(upright, content_type, thumb)
    return Processed(upright.width, upright.height)


def _save_still(image: Image.Image, fmt: str, out: Path) -> None:
    options: dict[str, Any] = {}
    if fmt == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        options["quality"] = JPEG_QUALITY
    elif fmt == "WEBP":
        options["quality"] = JPEG_QUALITY
    image.save(out, format=fmt, **options)


def _thumbnail(image: Image.Image, content_type: str, thumb: Path) -> None:
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # an animation's thumbnail is its first frame
    small = image.copy()
    small.thumbnail((MAX_THUMB_SIDE, MAX_THUMB_SIDE))
    small.info = {}
    if content_type == JPEG:
        if small.mode not in ("RGB", "L"):
            small = small.convert("RGB")
        small.save(thumb, format="JPEG", quality=85)
    else:
        if small.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
            small = small.convert("RGBA")
        small.save(thumb, format="PNG")
