"""Images made in memory for the upload tests (Pillow)."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image

__all__ = ["GPS_IFD", "image_bytes", "jpeg_with_exif", "noisy_jpeg", "png_bomb"]

GPS_IFD = 0x8825  # the EXIF tag of the GPS block


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), color: str = "red") -> bytes:
    buf = io.BytesIO()
    mode = "RGBA" if fmt in ("PNG", "WEBP") else "RGB"
    Image.new(mode, size, color).save(buf, fmt)
    return buf.getvalue()


def noisy_jpeg(size: tuple[int, int] = (96, 96), quality: int = 5) -> bytes:
    """Random pixels squeezed at a very low quality: re-encoded at Parley's, it grows."""
    buf = io.BytesIO()
    Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3)).save(
        buf, "JPEG", quality=quality
    )
    return buf.getvalue()


def jpeg_with_exif(size: tuple[int, int] = (40, 20), orientation: int = 1) -> bytes:
    """A JPEG carrying a GPS position, an orientation and a comment."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"  # Make
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    buf = io.BytesIO()
    Image.new("RGB", size, "blue").save(buf, "JPEG", exif=exif, comment=b"home sweet home")
    return buf.getvalue()


def png_bomb(side: int = 20000) -> bytes:
    """A one-colour PNG of side x side pixels, a few KiB long, written directly (Pillow would
    need the pixels in memory first): zlib squeezes its rows of zeros down to nothing."""
    row = b"\x00" + b"\x00" * side  # filter byte, then one grey byte a pixel
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
