"""Content-addressed object storage for uploaded files (images, media, archives).

Objects are named by the SHA-256 of their bytes, so the same upload is stored once and a key can never
point at different content. ``ObjectStore`` is the interface the web layer uses; ``LocalObjectStore``
implements it on a local directory (the default), ``s3_storage.S3ObjectStore`` on S3-compatible object
storage (``LABELHIVE_OBJECT_STORE=s3://bucket/prefix``), which every replica of the service reads alike.
``open_object_store`` picks one from the settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .settings import DatasetSettings

CHUNK_SIZE = 1024 * 1024
_KEY_RE = re.compile(r"[0-9a-f]{64}")
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)", re.ASCII | re.IGNORECASE)


class StorageError(Exception):
    """Base class of the errors raised by object stores."""


class ObjectTooLarge(StorageError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"object exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class ObjectNotFound(StorageError, KeyError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no object with key {key!r}")
        self.key = key

    def __str__(self) -> str:  # KeyError would otherwise show the repr of the message
        return str(self.args[0])


class RangeNotSatisfiable(StorageError):
    def __init__(self, size: int) -> None:
        super().__init__(f"requested range not satisfiable for an object of {size} bytes")
        self.size = size


@dataclass(frozen=True)
class StoredObject:
    key: str  # sha256 hex digest of the content
    size: int


@dataclass(frozen=True)
class ByteRange:
    """Half-open range ``[start, end)`` of an object of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        """Value of the HTTP ``Content-Range`` header (whose end is inclusive)."""
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


def is_valid_key(key: str) -> bool:
    return bool(_KEY_RE.fullmatch(key))


def parse_byte_range(header: str | None, size: int) -> ByteRange | None:
    """Parse a single-range HTTP ``Range`` header; ``None`` means "send the whole object".

    Multi-range and malformed headers are answered with the whole object, as RFC 9110 allows; a
    well-formed range that starts past the end raises ``RangeNotSatisfiable`` (HTTP 416).
    """
    match = _RANGE_RE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        if not last or int(last) == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(size - int(last), 0), size, size)
    start = int(first)
    if last and int(last) < start:  # invalid syntax, not an unsatisfiable range
        return None
    if start >= size:
        raise RangeNotSatisfiable(size)
    end = int(last) + 1 if last else size
    return ByteRange(start, min(end, size), size)


@runtime_checkable
class ObjectStore(Protocol):
    async def put_stream(self, chunks: AsyncIterator[bytes], max_bytes: int | None = None) -> StoredObject:
        """Store what ``chunks`` yields; raise ``ObjectTooLarge`` past ``max_bytes`` (nothing is kept)."""
        ...

    async def put_file(self, path: str | os.PathLike[str], max_bytes: int | None = None) -> StoredObject: ...

    async def put_fileobj(self, fileobj: BinaryIO, max_bytes: int | None = None) -> StoredObject:
        """Store a readable binary file object (read in a worker thread, in chunks)."""
        ...

    async def put_bytes(self, data: bytes, max_bytes: int | None = None) -> StoredObject: ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int: ...

    async def delete(self, key: str) -> bool:
        """Remove the object; ``False`` when there was none.

        Identical uploads share one object, so callers delete only once their own records hold no other
        reference to the key (the database, not the store, counts references).
        """
        ...

    async def open_stream(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of an object (for ``StreamingResponse`` and range requests).

        The object and the range are checked before this returns (``ObjectNotFound``,
        ``RangeNotSatisfiable``): a missing object must fail before a streaming response sends its status.
        """
        ...

    def open(self, key: str) -> BinaryIO:
        """A seekable, blocking binary reader (use from a worker thread)."""
        ...

    def path(self, key: str) -> Path | None:
        """Local file path of the object, or ``None`` for stores that are not on a local disk."""
        ...

    def keys_older_than(self, cutoff: float) -> AsyncIterator[list[str]]:
        """Keys of the objects last written before ``cutoff`` (a Unix time), a bounded batch at a time."""
        ...

    async def purge_stale_temp(self, older_than_seconds: float = 24 * 3600) -> int:
        """Remove what uploads that a killed process left unfinished wrote (call at start-up); returns how many."""
        ...


class _PendingObject:
    """A temp file being written and hashed; committed into place by rename, or discarded."""

    def __init__(self, tmp_dir: Path, max_bytes: int | None) -> None:
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="put-", suffix=".part")
        self._file = os.fdopen(fd, "wb")
        self.tmp_path = Path(name)
        self._hash = hashlib.sha256()
        self._max_bytes = max_bytes
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise ObjectTooLarge(self._max_bytes)
        self._hash.update(data)
        self._file.write(data)

    def commit(self, final_path_for: Callable[[str], Path]) -> StoredObject:
        # fsync before the rename: the content-addressed name promises the bytes, and after a crash a
        # renamed-but-unflushed file could be empty while its name says otherwise.
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        key = self._hash.hexdigest()
        final = final_path_for(key)
        if final.exists():
            self.tmp_path.unlink()  # same bytes are already stored
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp_path, final)
        return StoredObject(key=key, size=self.size)

    def discard(self) -> None:
        self._file.close()
        self.tmp_path.unlink(missing_ok=True)


class WholeObjectPuts:
    """`put_file` and `put_bytes`, the same for every store: both go through the store's `put_fileobj`."""

    async def put_fileobj(self, fileobj: BinaryIO, max_bytes: int | None = None) -> StoredObject:
        raise NotImplementedError

    async def put_file(self, path: str | os.PathLike[str], max_bytes: int | None = None) -> StoredObject:
        with open(path, "rb") as fileobj:
            return await self.put_fileobj(fileobj, max_bytes)

    async def put_bytes(self, data: bytes, max_bytes: int | None = None) -> StoredObject:
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectTooLarge(max_bytes)
        return await self.put_fileobj(io.BytesIO(data))


class LocalObjectStore(WholeObjectPuts):
    """Objects under ``root/ab/cd/<sha256>``; temp files under ``root/.tmp`` (same filesystem, so the
    final ``os.replace`` is atomic and readers never see a half-written object)."""

    def __init__(self, root: str | os.PathLike[str], flush_size: int = CHUNK_SIZE) -> None:
        self.root = Path(root)
        self._tmp_dir = self.root / ".tmp"
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        self._flush_size = flush_size

    def _object_path(self, key: str) -> Path:
        if not is_valid_key(key):
            # Keys reach us from URLs: refusing anything but a digest rules out path traversal.
            raise ObjectNotFound(key)
        return self.root / key[:2] / key[2:4] / key

    def path(self, key: str) -> Path:
        path = self._object_path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._object_path(key), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def put_stream(self, chunks: AsyncIterator[bytes], max_bytes: int | None = None) -> StoredObject:
        pending = _PendingObject(self._tmp_dir, max_bytes)
        buffer = bytearray()
        try:
            async for chunk in chunks:
                buffer += chunk
                if max_bytes is not None and pending.size + len(buffer) > max_bytes:
                    raise ObjectTooLarge(max_bytes)
                # Batch small chunks so the thread hand-off is paid per ~1 MiB, not per network read.
                if len(buffer) >= self._flush_size:
                    await asyncio.to_thread(pending.write, buffer)
                    buffer = bytearray()
            if buffer:
                await asyncio.to_thread(pending.write, buffer)
            return await asyncio.to_thread(pending.commit, self._object_path)
        except BaseException:  # includes cancellation: the temp file must not outlive the request
            pending.discard()
            raise

    async def put_fileobj(self, fileobj: BinaryIO, max_bytes: int | None = None) -> StoredObject:
        return await asyncio.to_thread(self._put_fileobj_sync, fileobj, max_bytes)

    def _put_fileobj_sync(self, fileobj: BinaryIO, max_bytes: int | None) -> StoredObject:
        pending = _PendingObject(self._tmp_dir, max_bytes)
        try:
            while chunk := fileobj.read(self._flush_size):
                pending.write(chunk)
            return pending.commit(self._object_path)
        except BaseException:
            pending.discard()
            raise

    async def purge_stale_temp(self, older_than_seconds: float = 24 * 3600) -> int:
        return await asyncio.to_thread(self._purge_stale_temp_sync, older_than_seconds)

    def _purge_stale_temp_sync(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        for leftover in self._tmp_dir.glob("put-*.part"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:  # another process finished or purged it meanwhile
                continue
        return removed

    async def exists(self, key: str) -> bool:
        try:
            return self._object_path(key).is_file()
        except ObjectNotFound:
            return False

    async def size(self, key: str) -> int:
        try:
            return self._object_path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def delete(self, key: str) -> bool:
        try:
            self._object_path(key).unlink()
        except (FileNotFoundError, ObjectNotFound):
            return False
        return True

    async def open_stream(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        fileobj = self.open(key)
        size = os.fstat(fileobj.fileno()).st_size
        stop = size if end is None else min(end, size)
        if not 0 <= start <= stop:
            fileobj.close()
            raise RangeNotSatisfiable(size)
        return _iter_file(fileobj, start, stop, chunk_size)

    async def keys_older_than(self, cutoff: float) -> AsyncIterator[list[str]]:
        tops = sorted(
            entry.path
            for entry in os.scandir(self.root)
            if entry.is_dir(follow_symlinks=False) and len(entry.name) == 2
        )
        for top in tops:  # a 256th of the store at a time: memory stays small however many objects there are
            if keys := await asyncio.to_thread(_old_keys, top, cutoff):
                yield keys


def _old_keys(directory: str, cutoff: float) -> list[str]:
    """Object keys under one top-level directory of a local store, last written before `cutoff`."""
    keys = []
    with os.scandir(directory) as level1:
        for sub in level1:
            if not sub.is_dir(follow_symlinks=False):
                continue
            with os.scandir(sub.path) as level2:
                for entry in level2:
                    if is_valid_key(entry.name) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        keys.append(entry.name)
    return keys


async def _iter_file(fileobj: BinaryIO, start: int, stop: int, chunk_size: int) -> AsyncIterator[bytes]:
    try:
        await asyncio.to_thread(fileobj.seek, start)
        remaining = stop - start
        while remaining > 0:
            chunk = await asyncio.to_thread(fileobj.read, min(chunk_size, remaining))
            if not chunk:  # cannot happen for immutable objects, but never spin
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        fileobj.close()


def open_object_store(settings: DatasetSettings) -> ObjectStore:
    """The store the settings name: S3-compatible storage for ``s3://bucket/prefix``, else the local one."""
    if settings.object_store:
        # Imported here: the S3 client is a native extension that a local-only deployment never needs loaded.
        from .s3_storage import S3ObjectStore

        return S3ObjectStore.from_url(settings.object_store)
    return LocalObjectStore(settings.objects_dir)
