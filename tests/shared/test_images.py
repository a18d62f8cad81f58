"""shared.images: the one decoding policy, on generated images (no service, no platform)."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import pytest
from PIL import Image, ImageFile

from shared.images import (
    IMAGE_FORMATS,
    CorruptImage,
    ImageRefused,
    TooManyPixels,
    UnsupportedImage,
    decode_image,
    open_image,
    pixel_cap,
)

ORIENTATION = 0x0112  # the EXIF tag


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise(width: int = 96, height: int = 64) -> Image.Image:
    return Image.frombytes("RGB", (width, height), bytes((i * 7919) % 251 for i in range(width * height * 3)))


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 gray PNG whose header claims ``width`` x ``height``: only the header says how big it is."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)  # IHDR's data follows the signature, length and type
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the CRC of IHDR's type and data
    return bytes(data)


@pytest.fixture
def no_pixel_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any image's pixels are decoded."""

    def load(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"pixels of a {self.size} image were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


# ------------------------------------------------------------------------------------------ accepted


@pytest.mark.parametrize("fmt", sorted(IMAGE_FORMATS))
def test_every_listed_format_decodes(fmt: str) -> None:
    image = decode_image(encode(noise(), fmt))
    assert (image.format, image.size) == (fmt, (96, 64))


def test_sixteen_bit_tiff_keeps_its_depth() -> None:
    # Industrial cameras write 16-bit gray TIFFs; detect stretches them itself, so nothing may clip them here.
    image = decode_image(encode(Image.new("I;16", (8, 4), 40_000), "TIFF"))
    assert image.mode == "I;16" and image.getpixel((0, 0)) == 40_000


def test_sources_other_than_bytes(tmp_path) -> None:
    data = encode(noise(), "PNG")
    path = tmp_path / "noise.png"
    path.write_bytes(data)
    with open_image(path) as from_path, open_image(io.BytesIO(data)) as from_file:
        assert from_path.tobytes() == from_file.tobytes() == decode_image(data).tobytes()


# ------------------------------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("PPM", encode(Image.new("RGB", (4, 4)), "PPM")),
        ("ICO", encode(Image.new("RGB", (16, 16)), "ICO")),
        ("EPS", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"),  # Ghostscript's to parse
        ("SVG", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'),
        ("text", b"plain text pretending to be a picture\n" * 4),
        ("empty", b""),
    ],
)
def test_a_format_outside_the_list_is_refused_unparsed(fmt: str, data: bytes, no_pixel_decoded: None) -> None:
    with pytest.raises(UnsupportedImage):
        decode_image(data)


def test_the_list_can_be_narrowed_or_widened_by_a_caller() -> None:
    ppm, png = encode(Image.new("RGB", (4, 4)), "PPM"), encode(Image.new("RGB", (4, 4)), "PNG")
    assert open_image(ppm, formats={"PPM"}).format == "PPM"
    with pytest.raises(UnsupportedImage, match=r"supported format \(JPEG\)"):
        open_image(png, formats={"JPEG"})


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_a_truncated_file_is_refused(fmt: str) -> None:
    data = encode(noise(), fmt)
    with pytest.raises(CorruptImage, match="corrupt or truncated"):
        decode_image(data[: len(data) * 6 // 10])


def test_a_png_bomb_header_is_refused_from_its_header(no_pixel_decoded: None) -> None:
    # 10 Gpx from 100 bytes: beyond twice Pillow's limit, where Pillow itself refuses while opening.
    data = png_claiming(100_000, 100_000)
    assert len(data) < 100
    with pytest.raises(TooManyPixels, match="decompression bomb"):
        decode_image(data)


@pytest.mark.parametrize("warnings_filter", ["ignore", "error", "default"])
def test_between_pillows_limit_and_twice_that_is_refused_whatever_the_warnings_filter(
    warnings_filter: str, no_pixel_decoded: None
) -> None:
    # 100 Mpx: Pillow (limit ~89 Mpx) only warns here, so the refusal must not depend on that warning.
    data = png_claiming(10_000, 10_000)
    with warnings.catch_warnings(record=True):  # the test's own filter, never the decoder's
        warnings.simplefilter(warnings_filter)  # type: ignore[arg-type]
        with pytest.raises(TooManyPixels):
            open_image(data, max_pixels=10**9)


def test_a_huge_pixel_image_is_refused_without_decoding_it(no_pixel_decoded: None) -> None:
    # A real, complete image: only the cap, read from the header, refuses it.
    data = encode(noise(200, 100), "PNG")
    with pytest.raises(TooManyPixels, match="200x100 pixels exceeds the limit of 19999 pixels"):
        decode_image(data, max_pixels=19_999)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_cap_is_never_above_pillows_own(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pixel_cap(50_000_000) == 50_000_000
    assert pixel_cap(10**12) == Image.MAX_IMAGE_PIXELS
    assert pixel_cap() == Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(TooManyPixels, match="limit of 1000 pixels"):
        decode_image(encode(noise(40, 40), "PNG"), max_pixels=10**9)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert pixel_cap() is None and pixel_cap(7) == 7


def test_every_refusal_is_one_value_error_type() -> None:
    for refusal in (UnsupportedImage, CorruptImage, TooManyPixels):
        assert issubclass(refusal, ImageRefused) and issubclass(refusal, ValueError)


# --------------------------------------------------------------------------------------- orientation


def marked_photo() -> Image.Image:
    """40x20 gray with a white block in the top-left corner, as stored."""
    image = Image.new("L", (40, 20), 0)
    image.paste(255, (0, 0, 8, 8))
    return image


@pytest.mark.parametrize(
    ("orientation", "size", "marked_corner"),
    [
        (1, (40, 20), (0, 0)),  # as stored
        (3, (40, 20), (39, 19)),  # turned 180 degrees
        (6, (20, 40), (19, 0)),  # shown turned 90 degrees clockwise: the top-left corner goes top-right
        (8, (20, 40), (0, 39)),  # 90 degrees counter-clockwise: it goes bottom-left
    ],
)
def test_a_rotated_exif_jpeg_is_decoded_upright(
    orientation: int, size: tuple[int, int], marked_corner: tuple[int, int]
) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = encode(marked_photo(), "JPEG", exif=exif.tobytes(), quality=95)
    image = decode_image(data)
    assert image.size == size
    assert image.getpixel(marked_corner) > 200  # type: ignore[operator]
    assert image.getexif().get(ORIENTATION, 1) == 1  # applied, so no one applies it twice
    with open_image(data) as stored:
        assert stored.size == (40, 20)  # open_image leaves the pixels as stored


def test_a_malformed_exif_block_leaves_a_fine_photo_usable() -> None:
    broken = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x01\x12"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns of the corrupt EXIF block it skips
        image = decode_image(encode(marked_photo(), "JPEG", exif=broken))
    assert image.size == (40, 20)
