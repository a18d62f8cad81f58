"""One in-memory FaceIndex per collection, kept equal to PostgreSQL across writes and replicas.

PostgreSQL is the truth; each collection row carries a `version` that every committed change bumps
(under the row's lock, so versions follow commit order). A replica's index for a collection is at some
version, and moves on in one of two ways:

* a `Change` (the vectors added, the ids removed, a clear, a drop) whose version is exactly the next
  one is applied in place: the writer applies its own change before it answers (so a deleted or updated
  target is gone from search at once) and publishes it on Redis for the other replicas (sync.py);
* anything else (a change that skips a version, because a message was lost or two writers' messages
  crossed; a collection this replica has not seen; the periodic check finding another version) reloads
  the collection from a consistent snapshot of PostgreSQL.

A search first reads the collection's version from PostgreSQL; a replica that is behind waits briefly for
the change message it knows is coming, then reloads. So a search on any replica sees every change that
was committed before it began.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.face.repository import FaceRepository, Snapshot, vectors_from
from services.face.vector_index import EMPTY_ID, FaceIndex, IndexKind, IndexSettings

log = logging.getLogger(__name__)


class IndexDescription(TypedDict):
    """One collection's index, as `describe` reports it."""

    version: int
    size: int
    kind: IndexKind
    dim: int


@dataclass
class Change:
    collection_id: int
    version: int
    dim: int | None = None
    added: list[tuple[int, str, np.ndarray]] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    clear: bool = False
    drop: bool = False

    def to_message(self, origin: str) -> str:
        return json.dumps(
            {
                "origin": origin,
                "collection_id": self.collection_id,
                "version": self.version,
                "dim": self.dim,
                "removed": self.removed,
                "clear": self.clear,
                "drop": self.drop,
                "added": [[i, t, base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()] for i, t, v in self.added],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_message(cls, message: str) -> tuple[str, Change]:
        data = json.loads(message)
        added = [
            (int(i), str(t), np.frombuffer(base64.b64decode(v), dtype="<f4").astype(np.float32))
            for i, t, v in data.get("added", [])
        ]
        change = cls(
            int(data["collection_id"]),
            int(data["version"]),
            data.get("dim"),
            added,
            [int(i) for i in data.get("removed", [])],
            bool(data.get("clear")),
            bool(data.get("drop")),
        )
        return str(data.get("origin", "")), change


@dataclass
class CollectionIndex:
    collection_id: int
    dim: int
    version: int
    index: FaceIndex
    targets: dict[int, str]

    @property
    def size(self) -> int:
        # Not index.size: that takes the index's lock, which a search or a change in a thread holds, and
        # the event loop must never wait for it. `targets` mirrors the index's live vectors.
        return len(self.targets)


@dataclass(frozen=True)
class Match:
    target_id: str
    cosine: float


@dataclass
class Counters:
    applied: int = 0  # changes applied in place
    reloads: int = 0  # collections (re)loaded from PostgreSQL
    ignored: int = 0  # changes this replica already had


class IndexRegistry:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: IndexSettings, event_wait_seconds: float = 0.5
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.event_wait_seconds = event_wait_seconds
        self.counters = Counters()
        self._states: dict[int, CollectionIndex] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._moved = asyncio.Condition()

    # --- reading ---------------------------------------------------------------------------------

    def get(self, collection_id: int) -> CollectionIndex | None:
        return self._states.get(collection_id)

    def describe(self) -> dict[str, IndexDescription]:
        return {
            str(cid): {"version": s.version, "size": s.size, "kind": s.index.kind, "dim": s.dim}
            for cid, s in sorted(self._states.items())
        }

    async def current(self, collection_id: int, version: int) -> CollectionIndex | None:
        """The collection's index at `version` or later (waits for the change, else reloads)."""
        state = self._states.get(collection_id)
        if state is not None and state.version >= version:
            return state
        deadline = time.monotonic() + self.event_wait_seconds
        async with self._moved:
            while (state := self._states.get(collection_id)) is None or state.version < version:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._moved.wait(), remaining)
                except TimeoutError:
                    break
        if state is not None and state.version >= version:
            return state
        return await self.reload(collection_id)

    async def search(self, state: CollectionIndex, vector: np.ndarray, k: int, per_target: int) -> list[Match]:
        """The best `k` distinct targets, best first (each target scored by its closest vector)."""
        if state.size == 0:
            return []
        fetch = min(state.size, k * max(1, per_target))
        # In a thread, like every change: a search waits on the index's lock while a change holds it.
        scores, ids = await asyncio.to_thread(state.index.search, vector, fetch)
        matches: list[Match] = []
        seen: set[str] = set()
        for score, feature_id in zip(scores[0].tolist(), ids[0].tolist()):
            if feature_id == EMPTY_ID:
                continue
            target = state.targets.get(int(feature_id))
            if target is None or target in seen:  # removed meanwhile, or already listed
                continue
            seen.add(target)
            matches.append(Match(target, float(score)))
            if len(matches) == k:
                break
        return matches

    # --- changing --------------------------------------------------------------------------------

    def _lock(self, collection_id: int) -> asyncio.Lock:
        return self._locks.setdefault(collection_id, asyncio.Lock())

    async def _notify(self) -> None:
        async with self._moved:
            self._moved.notify_all()

    async def apply(self, change: Change) -> None:
        """Apply a committed change: in place when it is the next version, else by reloading."""
        async with self._lock(change.collection_id):
            state = self._states.get(change.collection_id)
            if change.drop:
                self._states.pop(change.collection_id, None)
            elif state is not None and change.version <= state.version:
                self.counters.ignored += 1
                return
            elif (
                state is None
                or change.version != state.version + 1
                or (change.dim is not None and change.dim != state.dim)
            ):
                await self._reload_locked(change.collection_id)
            else:
                await asyncio.to_thread(self._apply_in_place, state, change)
                self.counters.applied += 1
        await self._notify()

    @staticmethod
    def _apply_in_place(state: CollectionIndex, change: Change) -> None:
        if change.clear:
            state.index = FaceIndex(state.dim, state.index.settings)
            state.targets = {}
        if change.removed:
            state.index.remove(change.removed)  # from search first, then from the id map
            for feature_id in change.removed:
                state.targets.pop(feature_id, None)
        if change.added:
            for feature_id, target, _ in change.added:
                state.targets[feature_id] = target
            state.index.add([i for i, _, _ in change.added], np.stack([v for _, _, v in change.added]))
        state.version = change.version

    async def reload(self, collection_id: int) -> CollectionIndex | None:
        async with self._lock(collection_id):
            state = await self._reload_locked(collection_id)
        await self._notify()
        return state

    async def _reload_locked(self, collection_id: int) -> CollectionIndex | None:
        async with self.sessionmaker() as session:
            snapshot = await FaceRepository(session).snapshot(collection_id)
        if snapshot is None:
            self._states.pop(collection_id, None)
            return None
        state = await asyncio.to_thread(self._build, snapshot)
        self._states[collection_id] = state
        self.counters.reloads += 1
        return state

    def _build(self, snapshot: Snapshot) -> CollectionIndex:
        dim = snapshot.collection.dim or 1  # no model yet: an empty placeholder
        index = FaceIndex(dim, self.settings)
        if snapshot.ids:
            index.build_from(np.asarray(snapshot.ids, dtype=np.int64), vectors_from(snapshot.blobs, dim))
        return CollectionIndex(
            snapshot.collection.id, dim, snapshot.collection.version, index, dict(zip(snapshot.ids, snapshot.targets))
        )

    async def reconcile(self) -> int:
        """Compare every collection's version with PostgreSQL; reload what differs, forget what is gone.
        Returns how many collections were reloaded or dropped."""
        async with self.sessionmaker() as session:
            versions = await FaceRepository(session).versions()
        touched = 0
        for collection_id in [cid for cid in self._states if cid not in versions]:
            async with self._lock(collection_id):
                if self._states.pop(collection_id, None) is not None:
                    touched += 1
        for collection_id, version in versions.items():
            state = self._states.get(collection_id)
            if state is None or state.version < version:
                await self.reload(collection_id)
                touched += 1
        if touched:
            await self._notify()
        return touched
