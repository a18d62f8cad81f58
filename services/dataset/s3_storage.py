"""The object store on S3-compatible storage (AWS S3, MinIO, Ceph RGW), through obstore.

Same guarantees as the local store, and every replica of the service sees the same objects:

- Content-addressed keys ``<prefix>/ab/cd/<sha256>``; identical uploads are stored once.
- Nothing half-written is ever visible under a key. An upload that fits in one part (5 MiB, S3's smallest
  multipart part) is hashed in memory and written with one PUT, which S3 applies whole or not at all. A
  larger one streams as a multipart upload to ``<prefix>/.tmp/put-<uuid>.part`` (the key is the hash of
  bytes not all seen yet), then a server-side copy makes the final object and the temp one goes. A failed
  or cancelled upload aborts its multipart upload; temp objects a killed process left are purged at start-up.
  (S3 copies up to 5 GiB in one request: the largest upload, `max_media_bytes`, stays below that.)
- Streaming both ways: an upload holds at most four parts in memory (the one being read, the writer's
  buffer, two in flight); a download is ranged on the server and streamed in ``chunk_size`` pieces.
- Reference counts stay in the database (``objects.py``), whatever the store.

Failures of the storage service itself become ``StoreUnavailable``, a 503 in the route's envelope.
Configure the bucket's lifecycle to abort incomplete multipart uploads after a day: a process killed in
the middle of one leaves parts that no client can see but that the bucket still bills.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from shared.errors import ServiceUnavailable

if TYPE_CHECKING:  # obstore's typed dicts and reader exist in its stubs only
    from obstore import ReadableFile
    from obstore.store import ClientConfig, RetryConfig

from .storage import (
    CHUNK_SIZE,
    ObjectNotFound,
    ObjectTooLarge,
    RangeNotSatisfiable,
    StorageError,
    StoredObject,
    WholeObjectPuts,
    is_valid_key,
)

log = logging.getLogger(__name__)

PART_SIZE = 5 * 1024 * 1024  # S3's smallest multipart part; smaller uploads are one PUT
TEMP_DIR = ".tmp"
_OBJECT_PATH_RE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})")
# A storage service that does not answer fails the request in seconds (a 503), not after minutes of retries.
_RETRY: RetryConfig = {"max_retries": 3, "retry_timeout": timedelta(seconds=20)}
_OPTIONAL_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
_CLIENT: ClientConfig = {
    # The operator chose the scheme in AWS_ENDPOINT_URL (MinIO inside a cluster often speaks plain HTTP);
    # https endpoints stay https.
    "allow_http": True,
    "connect_timeout": "5s",
    "timeout": "60s",
}


class StoreUnavailable(StorageError, ServiceUnavailable):
    """The object storage service failed or did not answer (the details go to the log, not the client)."""


def _unavailable(what: str, exc: BaseError) -> StoreUnavailable:
    log.warning("object storage failed on %s: %s", what, str(exc).splitlines()[0])
    return StoreUnavailable()


@contextmanager
def _translated(key: str) -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, NotFoundError):
        raise ObjectNotFound(key) from None
    except BaseError as exc:
        raise _unavailable(key, exc) from exc


def _object_path(key: str) -> str:
    if not is_valid_key(key):
        # Keys reach us from URLs: anything but a digest names no object.
        raise ObjectNotFound(key)
    return f"{key[:2]}/{key[2:4]}/{key}"


class S3ObjectStore(WholeObjectPuts):
    def __init__(self, store: S3Store, part_size: int = PART_SIZE) -> None:
        self._store = store
        self._part_size = part_size

    @classmethod
    def from_url(cls, url: str, **config: Any) -> S3ObjectStore:
        """``s3://bucket/prefix``; endpoint, credentials and region come from the ``AWS_*`` environment
        (or ``config``, e.g. ``endpoint=...`` in tests)."""
        for name in _OPTIONAL_VARIABLES:
            # Empty means unset (docker compose passes `${AWS_ENDPOINT_URL:-}` as ""): obstore would take ""
            # for an endpoint (and fail on the first request) or for a key (instead of the pod's role).
            if os.environ.get(name) == "":
                del os.environ[name]
        return cls(S3Store.from_url(url, client_options=_CLIENT, retry_config=_RETRY, **config))

    def path(self, key: str) -> Path | None:
        return None

    # ------------------------------------------------------------------------------------------ writes

    async def put_stream(self, chunks: AsyncIterator[bytes], max_bytes: int | None = None) -> StoredObject:
        upload = _Upload(aiter(chunks), max_bytes)
        first = await upload.read(self._part_size)
        if len(first) < self._part_size:  # the whole object is in memory: its key is known, one PUT
            key = await upload.digest(first)
            with _translated(key):
                if not await self.exists(key):
                    await obstore.put_async(self._store, _object_path(key), first, use_multipart=False)
            return StoredObject(key, upload.size)
        temp = f"{TEMP_DIR}/put-{uuid.uuid4().hex}.part"
        try:
            with _translated(temp):
                # Leaving the block on an error or a cancellation aborts the multipart upload.
                async with obstore.open_writer_async(
                    self._store, temp, buffer_size=self._part_size, max_concurrency=2
                ) as writer:
                    part, first = first, bytearray()
                    while part:
                        await upload.digest(part)
                        await writer.write(part)  # the writer holds the part (no copy) until it is sent
                        part = bytearray()  # so drop ours before reading the next
                        part = await upload.read(self._part_size)
            key = await upload.digest(b"")
            with _translated(key):
                if not await self.exists(key):
                    await obstore.copy_async(self._store, temp, _object_path(key))
            return StoredObject(key, upload.size)
        finally:
            await asyncio.shield(self._forget(temp))

    async def _forget(self, temp: str) -> None:
        try:
            await obstore.delete_async(self._store, temp)
        except Exception:  # purge_stale_temp takes it later; the upload's own outcome matters more
            log.warning("could not remove the temp object %s", temp)

    async def put_fileobj(self, fileobj: BinaryIO, max_bytes: int | None = None) -> StoredObject:
        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await asyncio.to_thread(fileobj.read, CHUNK_SIZE):
                yield chunk

        return await self.put_stream(chunks(), max_bytes)

    async def delete(self, key: str) -> bool:
        if not await self.exists(key):  # S3 answers a delete of nothing with success
            return False
        with _translated(key):
            await obstore.delete_async(self._store, _object_path(key))
        return True

    async def purge_stale_temp(self, older_than_seconds: float = 24 * 3600) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        try:
            with _translated(TEMP_DIR):
                async for batch in obstore.list(self._store, prefix=TEMP_DIR, chunk_size=1000):
                    stale = [meta["path"] for meta in batch if meta["last_modified"].timestamp() < cutoff]
                    if stale:
                        await obstore.delete_async(self._store, stale)
                        removed += len(stale)
        except StoreUnavailable:
            # A clean-up at start-up: storage that is down must not keep the service from starting (it
            # answers 503 for files meanwhile); the next start purges.
            pass
        return removed

    # ------------------------------------------------------------------------------------------- reads

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except ObjectNotFound:
            return False
        return True

    async def size(self, key: str) -> int:
        with _translated(key):
            return (await obstore.head_async(self._store, _object_path(key)))["size"]

    async def open_stream(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        path = _object_path(key)
        if end is not None and end <= start:  # nothing to send: only the range needs checking
            size = await self.size(key)
            if start > size:
                raise RangeNotSatisfiable(size)
            return _nothing()
        try:
            # One request for the bytes; the object's size is asked for only when the range is refused.
            result = await obstore.get_async(
                self._store, path, options={"range": {"offset": start} if end is None else (start, end)}
            )
        except (FileNotFoundError, NotFoundError):
            raise ObjectNotFound(key) from None
        except BaseError as exc:
            size = await self.size(key)
            if start == size:
                return _nothing()
            if start > size:
                raise RangeNotSatisfiable(size) from None
            raise _unavailable(key, exc) from exc
        return _stream(result.stream(min_chunk_size=chunk_size), key)

    def open(self, key: str) -> BinaryIO:
        with _translated(key):
            reader = obstore.open_reader(self._store, _object_path(key), buffer_size=CHUNK_SIZE)
        return io.BufferedReader(_RemoteReader(reader, key), CHUNK_SIZE)

    async def keys_older_than(self, cutoff: float) -> AsyncIterator[list[str]]:
        with _translated("(listing)"):
            async for batch in obstore.list(self._store, chunk_size=1000):
                keys = [
                    match.group(1)
                    for meta in batch
                    if meta["last_modified"].timestamp() < cutoff and (match := _OBJECT_PATH_RE.fullmatch(meta["path"]))
                ]
                if keys:
                    yield keys


class _Upload:
    """Counts and hashes the bytes of one upload as they arrive, and enforces its limit."""

    def __init__(self, chunks: AsyncIterator[bytes], max_bytes: int | None) -> None:
        self._chunks = chunks
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0

    async def read(self, at_least: int) -> bytearray:
        """The next `at_least` bytes or more (a chunk is never split); fewer only at the end."""
        buffer = bytearray()
        async for chunk in self._chunks:
            self.size += len(chunk)
            if self._max_bytes is not None and self.size > self._max_bytes:
                raise ObjectTooLarge(self._max_bytes)
            buffer += chunk
            if len(buffer) >= at_least:
                break
        return buffer

    async def digest(self, data: bytes | bytearray) -> str:
        """Adds `data` to the hash (in a worker thread: a part is megabytes); the key of what came so far."""
        if data:
            await asyncio.to_thread(self._hash.update, data)
        return self._hash.hexdigest()


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield


async def _stream(chunks: AsyncIterator[bytes], key: str) -> AsyncIterator[bytes]:
    with _translated(key):
        async for chunk in chunks:
            yield bytes(chunk)


class _RemoteReader(io.RawIOBase):
    """A blocking, seekable reader over obstore's ``ReadableFile`` (ranged GETs as the reader moves)."""

    def __init__(self, remote: ReadableFile, key: str) -> None:
        self._remote = remote
        self._key = key

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _translated(self._key):
            data = self._remote.read(len(buffer))
        count = len(data)
        memoryview(buffer).cast("B")[:count] = data
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with _translated(self._key):
            return self._remote.seek(offset, whence)

    def tell(self) -> int:
        return self._remote.tell()

    def close(self) -> None:
        if not self.closed:
            self._remote.close()
        super().close()
