"""004's form (field `images`: one or many files), read straight off the request stream within the
limits: an image stops being read at `max_image_bytes` and the request at `max_request_bytes`, so an
oversized upload is refused a chunk past its limit instead of being spooled whole first. Only the
`images` files are kept (in memory: every image is decoded anyway); other parts are skipped unread."""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from services.detect.detection import InvalidImage, Upload
from services.detect.settings import DetectSettings
from shared.errors import PayloadTooLarge

IMAGES_FIELD = "images"
# 004's own default for a file sent without a name.
DEFAULT_FILENAME = "uploaded_image.jpg"


def invalid_form(details: str) -> InvalidImage:
    return InvalidImage("Invalid form data", details=details)


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


@dataclass
class _Image:
    name: str
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


class ImageFormReader:
    """Feeds the request body to a streaming multipart parser, one chunk at a time; the parser's
    callbacks raise as soon as a limit is passed. The server discards what the client still sends
    after the answer: none of it is stored."""

    def __init__(self, settings: DetectSettings) -> None:
        self.max_images = settings.max_images_per_request
        self.max_image_bytes = settings.max_image_bytes
        self.max_request_bytes = settings.max_request_bytes
        self._uploads: list[Upload] = []
        self._image: _Image | None = None
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._ended = False

    async def read(self, request: Request) -> list[Upload]:
        content_type = request.headers.get("content-type", "")
        media_type, params = parse_options_header(content_type)
        if media_type != b"multipart/form-data":
            # 004's client reads `request.files`: a body of any other kind holds no files.
            raise InvalidImage(
                "No images provided",
                details="the body is not multipart/form-data with a field "
                f"'{IMAGES_FIELD}' (Content-Type: {content_type or 'none'})",
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_request_bytes:
            raise self._too_large()
        boundary = params.get(b"boundary")
        if not boundary:
            raise invalid_form("the multipart/form-data Content-Type has no boundary")
        try:
            parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
            )
        except ValueError as exc:  # a boundary longer than RFC 2046 allows
            raise invalid_form(str(exc)) from None
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > self.max_request_bytes:
                    raise self._too_large()
                parser.write(chunk)
        except MultipartParseError as exc:
            raise invalid_form(str(exc)) from None
        except ClientDisconnect:  # nobody is left to answer; this ends the request without a traceback
            raise invalid_form("the client closed the connection before the body ended") from None
        parser.finalize()
        if not self._ended:
            raise invalid_form("the multipart body ends before its closing boundary")
        if not self._uploads:
            raise InvalidImage("No images provided", details=f"the form field '{IMAGES_FIELD}' holds no file")
        return self._uploads

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            "Request body too large", details=f"larger than the limit of {self.max_request_bytes} bytes"
        )

    def _on_part_begin(self) -> None:
        self._disposition = b""
        self._image = None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise invalid_form("a part has no Content-Disposition header with a field name")
        if _decode(options[b"name"]) != IMAGES_FIELD or b"filename" not in options:
            return  # a text field, or a file in another field: not an image of this request
        name = _decode(options[b"filename"]) or DEFAULT_FILENAME
        if "\x00" in name:
            raise invalid_form("a file name holds a NUL character")
        if len(self._uploads) >= self.max_images:
            raise InvalidImage("Too many images", details=f"at most {self.max_images} images per request")
        self._image = _Image(name)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        image = self._image
        if image is None:
            return
        image.size += end - start
        if image.size > self.max_image_bytes:
            raise InvalidImage(
                f"Invalid image data for {image.name}", details=f"larger than the limit of {self.max_image_bytes} bytes"
            )
        image.chunks.append(data[start:end])

    def _on_part_end(self) -> None:
        if self._image is not None:
            self._uploads.append(Upload(self._image.name, b"".join(self._image.chunks)))
            self._image = None

    def _on_end(self) -> None:
        self._ended = True
