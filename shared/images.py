"""Untrusted images in, pixels or a refusal out: the one decoding policy of every service that reads uploads
(dataset's image sites and task archives, face's photos, detect's batches).

The policy:

- Only the decoders in ``IMAGE_FORMATS`` are tried, so data claiming to be EPS (which Pillow would hand to
  Ghostscript), PSD or any other of Pillow's rarer formats is refused as unsupported rather than parsed.
- The pixel count is checked from the header, before a single pixel is decoded. The cap is the caller's
  ``max_pixels`` and never more than Pillow's process-wide ``Image.MAX_IMAGE_PIXELS``: Pillow refuses
  twice that by itself but only warns in between, and a warning is no defence. (Turning the warning into
  an error with ``warnings.catch_warnings`` is not an option: it changes process-global state and is not
  thread-safe, and uploads decode on thread pools.)
- Every pixel is decoded before the image is handed on: ``Image.open`` only reads the header, and only a
  full decode exposes truncated and corrupt files.
- A picture is turned upright per its EXIF orientation (``decode_image``); a malformed EXIF block leaves it
  as stored rather than refusing an otherwise fine photo.

Every refusal is an ``ImageRefused`` (a ``ValueError``), which each service maps to its own 4xx::

    ImageRefused
     +-- UnsupportedImage   not an image, or not in one of IMAGE_FORMATS
     +-- CorruptImage       truncated or corrupt data, or no pixels at all
     +-- TooManyPixels      dimensions above the pixel cap (usually a small file claiming a huge picture)
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_FORMATS",
    "CorruptImage",
    "ImageRefused",
    "ImageSource",
    "TooManyPixels",
    "UnsupportedImage",
    "decode_image",
    "open_image",
    "pixel_cap",
    "upright",
]

# Pillow's format name -> (the extension, the media type) a stored copy is named and served with. JPEG
# (with the multi-picture JPEGs of phone cameras, Pillow's "MPO"), PNG, GIF and WebP are the web's; BMP and
# TIFF (8 or 16 bits) are what industrial cameras write, for detect.
IMAGE_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": (".jpg", "image/jpeg"),
    "PNG": (".png", "image/png"),
    "GIF": (".gif", "image/gif"),
    "BMP": (".bmp", "image/bmp"),
    "WEBP": (".webp", "image/webp"),
    "TIFF": (".tif", "image/tiff"),
}

ImageSource = bytes | str | os.PathLike[str] | BinaryIO

# Between MAX_IMAGE_PIXELS and twice that Pillow only warns, and open_image refuses the image itself: the
# warning would just repeat in the log. Set once at import, never toggled, so no thread sees it change.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# What Pillow's decoders raise on data they cannot make sense of (beside UnidentifiedImageError, an OSError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError)
# What a malformed EXIF block raises from ImageOps.exif_transpose.
_EXIF_ERRORS = (OSError, ValueError, KeyError, TypeError, SyntaxError, IndexError)


class ImageRefused(ValueError):
    """An image this process will not use; the subclass says why, the message says what exactly."""


class UnsupportedImage(ImageRefused):
    pass


class CorruptImage(ImageRefused):
    pass


class TooManyPixels(ImageRefused):
    pass


def pixel_cap(max_pixels: int | None = None) -> int | None:
    """The pixel cap in force: ``max_pixels``, never above Pillow's ``Image.MAX_IMAGE_PIXELS`` (None: no cap)."""
    ceiling = Image.MAX_IMAGE_PIXELS
    if max_pixels is None or ceiling is None:
        return ceiling if max_pixels is None else max_pixels
    return min(max_pixels, int(ceiling))


def open_image(
    source: ImageSource, *, max_pixels: int | None = None, formats: Iterable[str] = IMAGE_FORMATS
) -> Image.Image:
    """The image, fully decoded, its pixels as stored (no EXIF orientation applied), or ``ImageRefused``.

    For a caller that checks a file and keeps its bytes (the dataset service); ``formats`` narrows or,
    for a test, widens ``IMAGE_FORMATS``. The image holds the file open when ``source`` is a path to a
    multi-frame file: close it (``with open_image(...) as image``) when done.
    """
    allowed = tuple(formats)
    if isinstance(source, bytes):
        if not source:
            raise UnsupportedImage("the file is empty")
        source = io.BytesIO(source)
    try:
        image = Image.open(source, formats=allowed)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Above twice MAX_IMAGE_PIXELS Pillow refuses while opening (its message says "decompression bomb");
        # the warning only arrives as an exception where a warnings filter made it one.
        raise TooManyPixels(str(exc)) from None
    except UnidentifiedImageError:
        raise UnsupportedImage(f"not an image in a supported format ({', '.join(sorted(allowed))})") from None
    except FileNotFoundError:
        raise
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"corrupt or truncated image data ({exc})") from None
    try:
        _check_size(image.size, max_pixels)
        image.load()
    except ImageRefused:
        image.close()
        raise
    except _DECODE_ERRORS as exc:
        image.close()
        raise CorruptImage(f"corrupt or truncated image data ({exc})") from None
    return image


def decode_image(source: ImageSource, *, max_pixels: int | None = None) -> Image.Image:
    """The picture as a viewer shows it: ``open_image`` turned upright per its EXIF orientation."""
    return upright(open_image(source, max_pixels=max_pixels))


def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation in place (most images have none: no copy of every upload) and return
    ``image``; a malformed EXIF block leaves the image as stored."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except _EXIF_ERRORS:
        pass
    return image


def _check_size(size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"invalid image dimensions {width}x{height}")
    cap = pixel_cap(max_pixels)
    if cap is not None and width * height > cap:
        raise TooManyPixels(f"{width}x{height} pixels exceeds the limit of {cap} pixels")
