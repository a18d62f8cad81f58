"""Reading upload requests without trusting their size.

- `UploadContext` (a request dependency) parses a form with caps on the body, the number of files and
  fields; file parts are spooled to disk past 1 MiB (Starlette's `UploadFile`), never held whole. It
  also owns the request's `ObjectStaging`: when the request fails, bytes it stored that nothing
  references are removed, and the spooled files are closed whatever happens.
- `SingleFileStream` streams one file part of a multipart body straight through (for the media bed),
  so a large upload goes from the socket to the object store in one pass.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from shared.errors import InvalidRequest, PayloadTooLarge

from .objects import ObjectStaging

MAX_TEXT_FIELD_BYTES = 1024 * 1024


def check_declared_length(request: Request, max_bytes: int) -> None:
    """Refuses a body whose Content-Length already says it is too large, before reading any of it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise InvalidRequest("invalid Content-Length header") from None
        if length > max_bytes:
            raise PayloadTooLarge(f"request body of {length} bytes is larger than the limit of {max_bytes}")


async def limited_stream(request: Request, max_bytes: int) -> AsyncGenerator[bytes, None]:
    """The request body, failing as soon as it passes `max_bytes` (whatever Content-Length claimed)."""
    check_declared_length(request, max_bytes)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLarge(f"request body larger than the limit of {max_bytes} bytes")
        yield chunk


class UploadContext:
    def __init__(self, request: Request) -> None:
        self.request = request
        state = request.app.state
        self.staging = ObjectStaging(state.store, state.sessionmaker)
        self._form: FormData | None = None

    async def form(self, *, max_bytes: int, max_files: int, max_fields: int = 100) -> FormData:
        content_type = self.request.headers.get("content-type", "")
        stream = limited_stream(self.request, max_bytes)
        try:
            if content_type.startswith("multipart/form-data"):
                parser = MultiPartParser(
                    self.request.headers,
                    stream,
                    max_files=max_files,
                    max_fields=max_fields,
                    max_part_size=MAX_TEXT_FIELD_BYTES,
                )
                self._form = await parser.parse()
            elif content_type.startswith("application/x-www-form-urlencoded"):
                self._form = await FormParser(self.request.headers, stream).parse()
            else:
                raise InvalidRequest("expected a multipart/form-data body")
        except MultiPartException as exc:
            raise InvalidRequest(f"invalid multipart body: {exc.message}") from None
        return self._form

    async def close(self) -> None:
        if self._form is not None:
            await self._form.close()


async def _upload_context(request: Request) -> AsyncIterator[UploadContext]:
    context = UploadContext(request)
    try:
        yield context
    except BaseException:
        await context.staging.discard()
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await context.close()


# Request-scoped: its clean-up runs after the unit of work has committed or rolled back, so a failed
# commit also discards what the request stored.
Upload = Annotated[UploadContext, Depends(_upload_context)]


def files_of(form: FormData, field: str) -> list[UploadFile]:
    values = form.getlist(field)
    if any(not isinstance(v, UploadFile) for v in values):
        raise InvalidRequest(f"{field} must be a file")
    return [v for v in values if isinstance(v, UploadFile)]


def one_file(form: FormData, field: str, required: bool = True) -> UploadFile | None:
    files = files_of(form, field)
    if len(files) > 1:
        raise InvalidRequest(f"{field}: one file expected, got {len(files)}")
    if not files and required:
        raise InvalidRequest(f"{field} is required")
    return files[0] if files else None


def text_of(form: FormData, field: str) -> str | None:
    values = form.getlist(field)
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        raise InvalidRequest(f"{field} must be one text field")
    return values[0]


async def read_small(upload: UploadFile, max_bytes: int, name: str) -> bytes:
    """The whole content of a small file part (label files, tables, XML), refusing larger ones."""
    if upload.size is not None and upload.size > max_bytes:
        raise PayloadTooLarge(f"{name}: larger than the limit of {max_bytes} bytes")
    await upload.seek(0)
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{name}: larger than the limit of {max_bytes} bytes")
    return data


class SingleFileStream:
    """The bytes of the file part named `field` of a multipart body, as they arrive.

    `filename` is known once `chunks()` has yielded its first chunk (or finished). Other text fields are
    read and ignored (capped); a second file in `field`, or none at all, is an error.
    """

    def __init__(self, request: Request, field: str, max_body: int) -> None:
        content_type, params = parse_options_header(request.headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in params:
            raise InvalidRequest("expected a multipart/form-data body")
        self._boundary = params[b"boundary"]
        self._request = request
        self._field = field
        self._max_body = max_body
        self.filename: str | None = None
        self._found = False
        self._capturing = False
        self._out: list[bytes] = []
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._other_bytes = 0

    # python-multipart callbacks (synchronous, called from parser.write) ----------------------------

    def _on_part_begin(self) -> None:
        self._disposition = b""
        self._capturing = False

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != self._field:
            return
        if b"filename" not in options:
            raise InvalidRequest(f"{self._field} must be a file")
        if self._found:
            raise InvalidRequest(f"{self._field}: one file per upload")
        self._found = self._capturing = True
        self.filename = options[b"filename"].decode("utf-8", "replace")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._capturing:
            self._out.append(bytes(data[start:end]))
            return
        self._other_bytes += end - start
        if self._other_bytes > MAX_TEXT_FIELD_BYTES:
            raise InvalidRequest(f"fields other than {self._field} are larger than {MAX_TEXT_FIELD_BYTES} bytes")

    def _on_part_end(self) -> None:
        self._capturing = False

    async def chunks(self) -> AsyncIterator[bytes]:
        parser = MultipartParser(
            self._boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
            },
        )
        try:
            async for chunk in limited_stream(self._request, self._max_body):
                parser.write(chunk)
                if self._out:
                    data = b"".join(self._out)
                    self._out.clear()
                    yield data
            parser.finalize()
        except FormParserError:
            raise InvalidRequest("invalid multipart body") from None
        if not self._found:
            raise InvalidRequest(f"{self._field} is required")
