"""The life of stored bytes: put by a request, referenced by its rows, removed once nothing uses them.

The object store is content-addressed, so two uploads of the same bytes share one object. The database
counts references (`objects.refcount`: one per `images` or `media` row) and is the only judge of
whether bytes may go. Both sides of the one race that matters take the same advisory lock on the key:

- a request that stored bytes references them (`ObjectStaging.attach`) inside its transaction, holding
  the key's lock until it commits, and checks the bytes are (still) there, storing them again if a
  concurrent removal took them;
- removal (`collect`) takes the key's lock, checks nothing references it, and deletes the row and the
  bytes before its own commit, so a referencing transaction either saw the bytes gone or comes after.

A request that fails after storing bytes (a bad file later in the batch, a failed commit) calls
`discard`, which collects what it staged: bytes that an older row still references stay. Bytes a process
left behind when it died between storing and committing are found by `sweep_orphans` (at start-up).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .errors import UploadRaced
from .repository import DatasetRepository
from .storage import ObjectStore, StoredObject

log = logging.getLogger(__name__)


@dataclass
class Staged:
    key: str
    size: int
    # Gives the same bytes again (a file rewound to its start), or None when they cannot be re-read.
    reopen: Callable[[], BinaryIO] | None = None


class ObjectStaging:
    """What one request has put into the store."""

    def __init__(self, store: ObjectStore, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.store = store
        self.sessionmaker = sessionmaker
        self.staged: dict[str, Staged] = {}

    def _record(self, stored: StoredObject, reopen: Callable[[], BinaryIO] | None) -> StoredObject:
        if stored.key not in self.staged or self.staged[stored.key].reopen is None:
            self.staged[stored.key] = Staged(stored.key, stored.size, reopen)
        return stored

    async def put_file(self, fileobj: BinaryIO, max_bytes: int | None = None, *, kept: bool = True) -> StoredObject:
        """Stores a seekable file from its start. `kept`: the file stays open until the request ends, so
        its bytes can be stored again should a concurrent removal take them before they are referenced."""

        def rewound() -> BinaryIO:
            fileobj.seek(0)
            return fileobj

        stored = await self.store.put_fileobj(await anyio.to_thread.run_sync(rewound), max_bytes)
        return self._record(stored, rewound if kept else None)

    async def put_stream(self, chunks: AsyncIterator[bytes], max_bytes: int | None = None) -> StoredObject:
        return self._record(await self.store.put_stream(chunks, max_bytes), None)

    async def attach(self, repo: DatasetRepository, references: dict[str, int]) -> None:
        """Adds `references` (key -> how many new rows use it) in the request's transaction."""
        if not references:
            return
        await repo.lock_object_keys(references)
        await repo.add_object_refs({key: (self.staged[key].size, count) for key, count in references.items()})
        for key in references:
            if await self.store.exists(key):
                continue
            staged = self.staged[key]
            if staged.reopen is None:
                raise UploadRaced()
            log.warning("object %s vanished before it was referenced; storing it again", key)
            fileobj = await anyio.to_thread.run_sync(staged.reopen)
            await self.store.put_fileobj(fileobj)

    async def discard(self) -> int:
        """After a failure: removes the staged objects that nothing references."""
        with anyio.CancelScope(shield=True):  # never cancelled itself: it swallows no exception
            removed = await collect(self.sessionmaker, self.store, self.staged)
        return removed


async def collect(sessionmaker: async_sessionmaker[AsyncSession], store: ObjectStore, keys: Iterable[str]) -> int:
    """Removes the bytes (and the row) of each key no row references; returns how many went."""
    removed = 0
    for key in sorted(set(keys)):
        try:
            async with sessionmaker.begin() as session:
                repo = DatasetRepository(session)
                await repo.lock_object_keys([key])
                refcount = await repo.object_refcount(key)
                if refcount:
                    continue
                if refcount is not None:
                    await repo.delete_object_row(key)
                # Inside the transaction, under the key's lock: see the module docstring.
                if await store.delete(key):
                    removed += 1
        except Exception:  # a failed clean-up must not hide the error that caused it
            log.exception("could not collect object %s", key)
    return removed


async def sweep_orphans(sessionmaker: async_sessionmaker[AsyncSession], store: ObjectStore, older_than: float) -> int:
    """Removes stored bytes that no row references and that are older than `older_than` seconds (an upload
    in progress stores bytes before it references them, so young ones are left alone). Returns how many."""
    removed = 0
    async for keys in store.keys_older_than(time.time() - older_than):  # bounded batches, whatever the store
        async with sessionmaker() as session:
            referenced = await DatasetRepository(session).referenced_keys(keys)
        removed += await collect(sessionmaker, store, [key for key in keys if key not in referenced])
    return removed
