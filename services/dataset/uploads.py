"""003's `POST /task/upload_data`: a zip of `1.txt, 2.txt, ...` or `1.jpg, 2.jpg, ...` from a requester.

The archive is spooled to disk and vetted whole (zip slip, entry count, declared and real expanded sizes,
compression methods, links) before any member is read. Its listing then decides the answer:

- a member of another type than `data_type`: code 32, nothing kept;
- numbers from 1 without a gap: every file is kept, code 0 with a tag per file;
- a gap: the unbroken run `1..legal_num` is kept and listed, code 20 with the counts (as documented).

Each kept text must be UTF-8 (the document's rule) and each image must decode; one bad file refuses the
whole upload. Texts get a `text_id` (the `texts` row), images a URL on the image bed. The files of one
upload form a dataset of their own (`document = '003'`), so they can be exported.

The documented wait ("x MB: ordinary x10 s, silver x7 s, gold x3 s, diamond x0 s") is a per-user
cool-down: after an upload of x MB the next one is accepted x*N seconds later (429 until then, with the
seconds left in `data.retry_after`), and a user's uploads never overlap. Holding the request open for
that long instead would tie up a connection per waiting user and outlast any proxy's timeout.
`LABELHIVE_UPLOAD_THROTTLE=0` turns it off.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Annotated, Any, BinaryIO, TypedDict, cast

import anyio
from fastapi import Depends, Request
from redis.asyncio import Redis

from shared.errors import InvalidRequest, RateLimited, ServiceUnavailable
from shared.http import ServiceClient
from shared.identity import Identity, required_identity
from shared.redis import Keys

from .errors import DataTypeError, rejected
from .forms import UploadContext, one_file
from .ingest import (
    SEQUENCE_EXTENSIONS,
    IngestError,
    SequenceCheck,
    TooLarge,
    check_image,
    check_sequence,
    decode_text,
    iter_zip_members,
    sanitize_filename,
    zip_names,
)
from .media import new_name
from .models import Dataset
from .repository import DatasetRepository
from .settings import DatasetSettings

# Seconds to wait per MB of archive, by membership level (0 none, 1 silver, 2 gold, 3 diamond).
THROTTLE_SECONDS_PER_MB = {0: 10.0, 1: 7.0, 2: 3.0, 3: 0.0}
# How long an upload in progress blocks the next one at most (a crashed process must not block forever).
IN_PROGRESS_TTL = 1800
MB = 1024 * 1024


# ------------------------------------------------------------------------------------------ throttle


class UploadThrottle:
    def __init__(self, redis: Redis, keys: Keys, auth: ServiceClient, enabled: bool) -> None:
        self.redis = redis
        self.keys = keys
        self.auth = auth
        self.enabled = enabled

    def _key(self, user_id: int) -> str:
        return self.keys.of("dataset", "upload-wait", user_id)

    async def membership_level(self, user_id: int) -> int:
        response = await self.auth.request("GET", f"/internal/users/{user_id}")
        if response.status_code != 200:
            raise ServiceUnavailable("auth service unavailable", details=f"status {response.status_code}")
        try:
            return int(response.json()["data"]["membership_level"])
        except (ValueError, KeyError, TypeError):
            raise ServiceUnavailable("auth service gave no membership level") from None

    async def begin(self, user_id: int) -> float:
        """Admits an upload (429 while the user must wait); returns the seconds to wait per MB after it."""
        level = await self.membership_level(user_id)
        key = self._key(user_id)
        if not await self.redis.set(key, "uploading", nx=True, ex=IN_PROGRESS_TTL):
            left = max(int(await self.redis.ttl(key)), 1)
            raise RateLimited(f"upload_data: wait {left} s before the next upload", data={"retry_after": left})
        return THROTTLE_SECONDS_PER_MB.get(level, THROTTLE_SECONDS_PER_MB[0])

    async def finish(self, user_id: int, archive_bytes: int, seconds_per_mb: float) -> None:
        wait = math.ceil(archive_bytes / MB * seconds_per_mb)
        if wait > 0:
            await self.redis.set(self._key(user_id), "waiting", ex=wait)
        else:
            await self.redis.delete(self._key(user_id))

    async def abort(self, user_id: int) -> None:
        await self.redis.delete(self._key(user_id))


@dataclass
class ThrottleTicket:
    archive_bytes: int = 0


async def _throttled(
    request: Request, identity: Annotated[Identity, Depends(required_identity)]
) -> AsyncIterator[ThrottleTicket]:
    throttle: UploadThrottle = request.app.state.throttle
    ticket = ThrottleTicket()
    if not throttle.enabled:
        yield ticket
        return
    seconds_per_mb = await throttle.begin(identity.user_id)
    try:
        yield ticket
    except BaseException:
        with anyio.CancelScope(shield=True):
            await throttle.abort(identity.user_id)
        raise
    # Request-scoped: this runs once the upload has committed.
    with anyio.CancelScope(shield=True):
        await throttle.finish(identity.user_id, ticket.archive_bytes, seconds_per_mb)


Throttled = Annotated[ThrottleTicket, Depends(_throttled)]


# ---------------------------------------------------------------------------------------- the upload


@dataclass
class UploadOutcome:
    dataset_id: int
    check: SequenceCheck
    files: list[dict[str, str]] = field(default_factory=list)


def parse_kind(data_type: str | None) -> str:
    if data_type is None or not data_type.strip():
        raise InvalidRequest("data_type is required (text or image)")
    kind = data_type.strip().lower()
    if kind not in SEQUENCE_EXTENSIONS:
        raise DataTypeError(f"data type error: data_type must be text or image, not {data_type!r}")
    return kind


class _ArchiveCaps(TypedDict):
    """The limits an archive is read within (`zip_names`, `iter_zip_members`)."""

    max_entries: int
    max_total_uncompressed: int
    max_member_size: int
    archive_name: str


def _spool_member(reader: IO[bytes], name: str, limit: int, directory: str) -> BinaryIO:
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024, dir=directory)  # noqa: SIM115
    try:
        copied = 0
        while chunk := reader.read(256 * 1024):
            copied += len(chunk)
            if copied > limit:
                raise TooLarge(name, f"larger than the limit of {limit} bytes")
            spool.write(chunk)
        spool.seek(0)
        return cast(BinaryIO, spool)  # typeshed's SpooledTemporaryFile is an IO[bytes], BinaryIO's methods and all
    except BaseException:
        spool.close()
        raise


async def upload_data(
    context: UploadContext,
    repo: DatasetRepository,
    owner: Identity,
    kind: str,
    ticket: ThrottleTicket,
    settings: DatasetSettings,
    slots: asyncio.Semaphore,
) -> UploadOutcome:
    form = await context.form(max_bytes=settings.max_archive_bytes + 64 * 1024, max_files=1, max_fields=10)
    upload = one_file(form, "file")
    assert upload is not None
    archive_name = sanitize_filename(upload.filename or "file.zip")
    ticket.archive_bytes = upload.size or 0
    caps = _ArchiveCaps(
        max_entries=settings.max_archive_entries,
        max_total_uncompressed=settings.max_archive_expanded_bytes,
        max_member_size=settings.max_archive_member_bytes,
        archive_name=archive_name,
    )
    try:
        names = await anyio.to_thread.run_sync(lambda: zip_names(upload.file, **caps))
    except IngestError as exc:
        raise rejected(exc) from None
    check = check_sequence(names, kind)
    if check.wrong_type:
        raise DataTypeError(data={"files": check.wrong_type[:100]})
    if check.upload_num == 0:
        raise InvalidRequest(f"{archive_name}: the archive holds no files")

    dataset = Dataset(
        owner_id=owner.user_id, kind=kind, document="003", name=archive_name, data_type=kind, source="upload_data"
    )
    legal = set(check.legal)
    texts: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    scratch = str(settings.scratch_dir)
    members = iter_zip_members(upload.file, **caps)
    try:
        while (member := await anyio.to_thread.run_sync(next, members, None)) is not None:
            if member.name not in legal:
                continue
            if kind == "text":
                data = await anyio.to_thread.run_sync(member.reader.read, settings.max_text_bytes + 1)
                if len(data) > settings.max_text_bytes:
                    raise TooLarge(member.name, f"larger than the limit of {settings.max_text_bytes} bytes")
                texts.append({"file_name": member.name, "content": decode_text(data, member.name, ("utf-8",))})
                continue
            spool = await anyio.to_thread.run_sync(
                _spool_member, member.reader, member.name, settings.max_image_bytes, scratch
            )
            try:
                async with slots:
                    info = await anyio.to_thread.run_sync(
                        partial(check_image, spool, settings.max_image_pixels, filename=member.name)
                    )
                stored = await context.staging.put_file(spool, settings.max_image_bytes, kept=False)
            finally:
                spool.close()
            images.append(
                {
                    "file_name": member.name,
                    "format": info.format,
                    "width": info.width,
                    "height": info.height,
                    "size": stored.size,
                    "object_key": stored.key,
                    "content_type": info.media_type,
                    "public": new_name(info.extension),
                }
            )
    except IngestError as exc:
        raise rejected(exc) from None
    finally:
        members.close()

    await repo.add(dataset)
    outcome = UploadOutcome(dataset.id, check)
    if kind == "text":
        ids = await repo.insert_texts([{**row, "dataset_id": dataset.id} for row in texts])
        tags = {name: str(text_id) for name, text_id in ids.items()}
    else:
        references: dict[str, int] = {}
        for image in images:  # the image's row and its URL: two references
            references[image["object_key"]] = references.get(image["object_key"], 0) + 2
        await context.staging.attach(repo, references)
        await repo.insert_images(
            [
                {
                    "dataset_id": dataset.id,
                    **{k: image[k] for k in ("file_name", "format", "width", "height", "size", "object_key")},
                }
                for image in images
            ]
        )
        await repo.insert_media(
            [
                {
                    "name": image["public"],
                    "kind": "picbed",
                    "owner_id": owner.user_id,
                    "object_key": image["object_key"],
                    "content_type": image["content_type"],
                    "size": image["size"],
                    "original_name": sanitize_filename(image["file_name"]),
                }
                for image in images
            ]
        )
        tags = {image["file_name"]: f"/picbed/{image['public']}" for image in images}
    outcome.files = [{"filename": name, "tag": tags[name]} for name in check.legal]
    return outcome
