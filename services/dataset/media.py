"""003's image bed (`/picbed/`) and media bed (`/video/`).

Each upload gets a URL of its own, `/picbed/<token>.<ext>` or `/video/<token>.<ext>`: a random token (the
URL is the only key to the file, so it must not be guessable, and it must not reveal the content's hash)
and the extension of the format the bytes really are. Identical uploads share their bytes in the object
store; each URL is one reference, so deleting one never removes bytes another URL still serves.

Images are fully decoded before they are accepted. Media files are streamed straight into the store
and recognised by their signature (MP4/MOV/M4A, WebM/Matroska, Ogg, MP3, WAV, FLAC, AVI); a body that is
none of these is refused before any of it is kept.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from shared.contract import Dialect
from shared.db import after_commit
from shared.envelopes import error_response
from shared.errors import InvalidRequest, LabelhiveError, NoPermission, PayloadTooLarge
from shared.identity import Identity

from .datasets import decode
from .errors import RangeNotSatisfiable, too_large
from .forms import SingleFileStream, UploadContext, one_file
from .ingest import sanitize_filename
from .models import Media
from .objects import collect
from .repository import DatasetRepository
from .settings import DatasetSettings
from .storage import ObjectNotFound, ObjectStore, ObjectTooLarge, parse_byte_range
from .storage import RangeNotSatisfiable as StoreRangeNotSatisfiable

NAME_RE = re.compile(r"[A-Za-z0-9_-]{16,64}\.[a-z0-9]{1,5}")
_SNIFF_BYTES = 64


def new_name(extension: str) -> str:
    return f"{secrets.token_urlsafe(16)}{extension}"


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name))


@dataclass(frozen=True)
class MediaFormat:
    extension: str
    content_type: str


def sniff_media(head: bytes) -> MediaFormat | None:
    """The media format the first bytes of a file announce, or None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return MediaFormat(".mov", "video/quicktime")
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return MediaFormat(".m4a", "audio/mp4")
        return MediaFormat(".mp4", "video/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return (
            MediaFormat(".webm", "video/webm")
            if b"webm" in head[:_SNIFF_BYTES]
            else MediaFormat(".mkv", "video/x-matroska")
        )
    if head.startswith(b"OggS"):
        return MediaFormat(".ogg", "application/ogg")
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return MediaFormat(".wav", "audio/wav")
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return MediaFormat(".avi", "video/x-msvideo")
    if head.startswith(b"fLaC"):
        return MediaFormat(".flac", "audio/flac")
    if head.startswith(b"ID3"):
        return MediaFormat(".mp3", "audio/mpeg")
    # An MPEG audio frame: 11 sync bits, a known version and a layer other than "reserved".
    if (
        len(head) >= 4
        and head[0] == 0xFF
        and head[1] & 0xE0 == 0xE0
        and head[1] & 0x18 != 0x08
        and head[1] & 0x06 != 0
        and head[2] & 0xF0 != 0xF0
    ):
        return MediaFormat(".mp3", "audio/mpeg")
    return None


class _Sniffed:
    """Passes a byte stream through, refusing it after its first bytes unless they are a media file."""

    def __init__(self, chunks: AsyncIterator[bytes], source: SingleFileStream) -> None:
        self._chunks = chunks
        self._source = source
        self.format: MediaFormat | None = None

    def _check(self, head: bytes) -> None:
        self.format = sniff_media(head)
        if self.format is None:
            name = sanitize_filename(self._source.filename or "video")
            raise InvalidRequest(
                f"{name}: not a supported media file (mp4, mov, m4a, webm, mkv, ogg, mp3, wav, flac, avi)"
            )

    async def chunks(self) -> AsyncIterator[bytes]:
        head = b""
        async for chunk in self._chunks:
            if self.format is None:
                head += chunk
                if len(head) < _SNIFF_BYTES:
                    continue
                self._check(head)
                chunk, head = head, b""
            yield chunk
        if self.format is None:
            self._check(head)
            if head:
                yield head


# ---------------------------------------------------------------------------------------- uploads


async def store_picture(
    context: UploadContext,
    repo: DatasetRepository,
    owner: Identity,
    settings: DatasetSettings,
    slots: asyncio.Semaphore,
) -> str:
    form = await context.form(max_bytes=settings.max_image_bytes + 64 * 1024, max_files=1, max_fields=10)
    upload = one_file(form, "img")
    assert upload is not None
    original = sanitize_filename(upload.filename or "img")
    if (upload.size or 0) > settings.max_image_bytes:
        raise PayloadTooLarge(f"{original}: larger than the limit of {settings.max_image_bytes} bytes")
    info = await decode(upload, original, settings, slots)
    stored = await context.staging.put_file(upload.file, settings.max_image_bytes)
    name = new_name(info.extension)
    await context.staging.attach(repo, {stored.key: 1})
    await repo.insert_media(
        [
            {
                "name": name,
                "kind": "picbed",
                "owner_id": owner.user_id,
                "object_key": stored.key,
                "content_type": info.media_type,
                "size": stored.size,
                "original_name": original,
            }
        ]
    )
    return f"/picbed/{name}"


async def store_video(
    request: Request, context: UploadContext, repo: DatasetRepository, owner: Identity, settings: DatasetSettings
) -> str:
    source = SingleFileStream(request, "video", settings.max_media_bytes + 1024 * 1024)
    sniffed = _Sniffed(source.chunks(), source)
    try:
        stored = await context.staging.put_stream(sniffed.chunks(), settings.max_media_bytes)
    except ObjectTooLarge as exc:
        raise too_large(sanitize_filename(source.filename or "video"), exc) from None
    assert sniffed.format is not None
    if stored.size == 0:
        raise InvalidRequest("video: the file is empty")
    name = new_name(sniffed.format.extension)
    await context.staging.attach(repo, {stored.key: 1})
    await repo.insert_media(
        [
            {
                "name": name,
                "kind": "video",
                "owner_id": owner.user_id,
                "object_key": stored.key,
                "content_type": sniffed.format.content_type,
                "size": stored.size,
                "original_name": sanitize_filename(source.filename or "video"),
            }
        ]
    )
    return f"/video/{name}"


async def delete(
    request: Request,
    repo: DatasetRepository,
    store: ObjectStore,
    kind: str,
    name: str,
    identity: Identity,
    not_found: type[LabelhiveError],
) -> None:
    media = await repo.media(name, kind, lock=True) if valid_name(name) else None
    if media is None:
        raise not_found()
    if media.owner_id != identity.user_id and identity.role != "admin":
        raise NoPermission()
    key = media.object_key
    await repo.delete_media(media)
    if await repo.release_object(key) == 0:
        sessionmaker = request.app.state.sessionmaker
        after_commit(request, lambda: collect(sessionmaker, store, [key]))


# -------------------------------------------------------------------------------------- downloads


async def find(repo: DatasetRepository, kind: str, name: str, not_found: type[LabelhiveError]) -> Media:
    media = await repo.media(name, kind) if valid_name(name) else None
    if media is None:
        raise not_found()
    return media


async def object_response(
    request: Request,
    store: ObjectStore,
    media: Media,
    not_found: type[LabelhiveError],
    cache_control: str = "private, max-age=3600",
) -> Response:
    """The bytes of `media`, whole or one HTTP range of them (206), streamed from the store."""
    size, etag = media.size, f'"{media.object_key}"'
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": cache_control,
        "X-Content-Type-Options": "nosniff",
    }
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header and if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's copy is another version: send the whole file
    try:
        byte_range = parse_byte_range(range_header, size)
    except StoreRangeNotSatisfiable:
        response = error_response(Dialect.CROWD_003, RangeNotSatisfiable(), request.url.path)
        response.headers["Content-Range"] = f"bytes */{size}"
        response.headers["Accept-Ranges"] = "bytes"
        return response
    start, end, status = (0, size, 200) if byte_range is None else (byte_range.start, byte_range.end, 206)
    if byte_range is not None:
        headers["Content-Range"] = byte_range.content_range
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media.content_type)
    try:
        body = await store.open_stream(media.object_key, start, end)
    except (ObjectNotFound, StoreRangeNotSatisfiable):
        raise not_found() from None
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media.content_type)
