"""server/images.py: uploaded images re-encoded upright, without metadata, with a
thumbnail; bombs and broken images refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from parley.server.images import MAX_IMAGE_PIXELS, ImageRefused, process_image
from tests.support.images import GPS_IFD, image_bytes, jpeg_with_exif, png_bomb


def _process(tmp_path: Path, data: bytes, kind: str) -> tuple[Image.Image, Image.Image]:
    source, out, thumb = tmp_path / "in", tmp_path / "out", tmp_path / "thumb"
    source.write_bytes(data)
    shape = process_image(source, kind, out, thumb)
    image = Image.open(io.BytesIO(out.read_bytes()))
    assert (shape.width, shape.height) == image.size
    return image, Image.open(io.BytesIO(thumb.read_bytes()))


def test_a_jpeg_loses_its_exif_gps_and_comment_and_stands_upright(tmp_path: Path) -> None:
    original = jpeg_with_exif((40, 20), orientation=6)  # stored sideways: turn 90 degrees
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # it had them
    image, thumb = _process(tmp_path, original, "image/jpeg")
    assert image.format == "JPEG"
    assert image.size == (20, 40)
    assert not image.getexif()
    assert "exif" not in image.info
    assert "comment" not in image.info
    assert b"SecretCam" not in (tmp_path / "out").read_bytes()
    assert thumb.format == "JPEG"


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP"])
def test_images_keep_their_format_and_get_a_small_png_thumbnail(tmp_path: Path, fmt: str) -> None:
    image, thumb = _process(tmp_path, image_bytes(fmt, (1000, 500)), f"image/{fmt.lower()}")
    assert (image.format, image.size) == (fmt, (1000, 500))
    assert (thumb.format, thumb.size) == ("PNG", (320, 160))


def test_a_small_image_keeps_its_size_in_the_thumbnail(tmp_path: Path) -> None:
    _, thumb = _process(tmp_path, image_bytes("PNG", (10, 30)), "image/png")
    assert thumb.size == (10, 30)


def test_an_animation_keeps_its_frames(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image, thumb = _process(tmp_path, buf.getvalue(), "image/gif")
    assert getattr(image, "n_frames", 1) == 3
    assert thumb.size == (16, 16)


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = png_bomb(20000)
    assert len(bomb) < 1024 * 1024
    assert MAX_IMAGE_PIXELS < 20000 * 20000
    with pytest.raises(ImageRefused, match="more than 50 000 000 pixels"):
        _process(tmp_path, bomb, "image/png")


def test_just_over_the_limit_is_refused_too(tmp_path: Path) -> None:
    """Pillow only warns between the limit and twice it: that counts as a refusal."""
    with pytest.raises(ImageRefused, match="pixels"):
        _process(tmp_path, png_bomb(7100), "image/png")  # 50.4 MP


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png"),
        (image_bytes("PNG")[:60], "image/png"),  # cut short
        (image_bytes("PNG"), "image/jpeg"),  # not what it was sniffed as
    ],
)
def test_broken_images_are_refused(tmp_path: Path, data: bytes, kind: str) -> None:
    with pytest.raises(ImageRefused):
        _process(tmp_path, data, kind)
