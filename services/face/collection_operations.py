"""Document 002's operations on collections and their target ids.

Writes follow one pattern: checks and embedding first, outside any transaction (the model runs for
seconds on a CPU, and no database connection waits for it); then, in the request's transaction, the
collection row is locked, the quota checked, the rows written and the version bumped; after the commit
the change reaches this replica's index (before the answer) and the other replicas (services/face/sync.py).

Choices where 002 is silent:
* A target id's quota (5) counts the vectors it already has plus the valid images of this request; a
  target that would exceed it stores none of this request's images and is listed in
  `quota_exceeded_target_id`. When that leaves nothing to store, the answer is 1007.
* `face/update` replaces a target's vectors only when at least one of its new images is usable: a
  target is never emptied by a bad photo. Target ids the collection does not hold are `target_invalid`
  and their images are not processed.
* 1005 ("please check collection name") answers a query, search, clear or delete of a collection that
  does not exist; 1006 ("create it first") answers an insert or update into one.
* Collections have owners (CONTRACT.md): see `Scope` for who reaches which. Another owner's collection
  answers exactly as a missing one, so nobody learns the names others use. The quota of 30 collections
  is per owner.
* Insert and update apply the face-quality gate (services/face/quality.py): an image whose face is no
  plausible face in any orientation, or too small, blurred, turned, tilted or unclear, is listed in
  `invalid` with that reason and never stored. Search and compare take any plausible face.
* Search returns distinct target ids, each with the score of its closest vector, best first; scores
  are calibrated (services/face/calibration.py), not raw cosines, and none is filtered out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.face.calibration import for_model
from services.face.engine import FaceEngine
from services.face.errors import (
    CheckCollectionName,
    CollectionExists,
    CollectionMissing,
    CollectionQuotaExceeded,
    FaceApiError,
    ModelMismatch,
    TargetNotFound,
    TargetQuotaExceeded,
)
from services.face.image_embedding import NO_FACE, ImageProblem, Recognizer
from services.face.index_registry import Change, CollectionIndex, IndexRegistry
from services.face.repository import PUBLIC, CollectionRow, FaceRepository, NewFeature
from services.face.schemas import ctime
from services.face.settings import FaceSettings
from services.face.sync import ChangeBus
from shared.errors import InvalidRequest
from shared.identity import Identity

log = logging.getLogger(__name__)

T = TypeVar("T")
U = TypeVar("U")
AfterCommit = Callable[[Callable[[], Awaitable[object]]], None]
# The `owner_id` an admin gives for the collections made before collections had owners (stored: null).
NO_OWNER = 0


@dataclass(frozen=True)
class Scope:
    """Whose collections a 002 request reaches.

    Everyone works in their own namespace: their user id, or for an API key its creator's (a key acts in
    that namespace only, with none of an admin's reach). Admins reach every owner's collections: with
    `owner_id` that owner's (0: the ones made before collections had owners), and without it their own
    collection of the name, else the one collection of that name of any owner, if only one owner has it
    (several: they are told to add `owner_id`). Listing everything, an admin sees every owner's
    collections, each with its `owner_id`. Creating, an admin makes the collection for `owner_id` if given.
    """

    caller_id: int
    admin: bool
    owner_id: int | None = None  # the request's `owner_id`, if it gave one

    @classmethod
    def of(cls, identity: Identity, owner_id: int | None) -> Scope:
        admin = identity.role == "admin"
        if owner_id is not None and owner_id != identity.user_id and not admin:
            raise InvalidRequest("owner_id: only an admin may name another owner")
        return cls(identity.user_id, admin, owner_id)

    @property
    def namespace(self) -> int | None:
        """The owner whose collections the request lists and creates (None: no owner)."""
        owner = self.caller_id if self.owner_id is None else self.owner_id
        return None if owner == NO_OWNER else owner

    @property
    def every_owner(self) -> bool:
        return self.admin and self.owner_id is None

    def pick(self, name: str, rows: list[CollectionRow], missing: type[FaceApiError]) -> CollectionRow | None:
        """The collection `name` among the rows of that name this scope reaches."""
        own = [row for row in rows if row.owner_id == self.namespace]
        if own:
            return own[0]
        if len(rows) <= 1:
            return rows[0] if rows else None
        owners = ", ".join(str(NO_OWNER if row.owner_id is None else row.owner_id) for row in rows)
        raise missing(f"collection {name!r} exists for several owners ({owners}): add owner_id")

    async def find(self, repo: FaceRepository, name: str, missing: type[FaceApiError]) -> CollectionRow:
        rows = await repo.collections(PUBLIC, self.namespace, every_owner=self.every_owner, names=[name])
        row = self.pick(name, rows, missing)
        if row is None:
            raise missing(f"collection {name!r} does not exist")
        return row


@dataclass
class FaceContext:
    """What the operations need; one per app (app.state.face)."""

    settings: FaceSettings
    recognizer: Recognizer
    registry: IndexRegistry
    bus: ChangeBus
    # Autocommit sessions (shared.db.create_read_sessionmaker) for the one-statement reads made outside
    # the request's transaction: no BEGIN and ROLLBACK round trips around each.
    reader: async_sessionmaker[AsyncSession]

    async def peek(self, scope: Scope, name: str, missing: type[FaceApiError]) -> CollectionRow:
        """The 002 collection `name` that `scope` reaches (else `missing`), read outside the request's
        transaction (it ends before any model runs)."""
        return await self.read(lambda repo: scope.find(repo, name, missing))

    async def read(self, query: Callable[[FaceRepository], Awaitable[T]]) -> T:
        """A read outside the request's transaction, so that no connection is held while a model runs;
        each statement is its own transaction (a read of several statements sees no single snapshot)."""
        async with self.reader() as session:
            return await query(FaceRepository(session))

    def publish_after(self, after_commit: AfterCommit, change: Change) -> None:
        async def publish() -> None:
            await self.bus.commit(change)

        after_commit(publish)


async def _meanwhile(lookup: Awaitable[T], inference: Awaitable[U]) -> tuple[T, U]:
    """The collection's lookup and the model's work at once, so that the model never waits on PostgreSQL.
    A lookup that fails (a collection missing or not the caller's) cancels the model's work, and its error
    comes before any image's. Cancelling drops the pool work not yet started (and the embedding stage),
    not a decode or detection already running in a pool thread: such a name still costs that much."""
    work = asyncio.ensure_future(inference)
    try:
        found = await lookup
    except BaseException:
        work.cancel()
        raise
    return found, await work


async def _check_model_locked(repo: FaceRepository, collection: CollectionRow, model: str) -> None:
    """`check_model` on the locked row; whether it holds vectors is asked only when its model is another."""
    if collection.model is not None and collection.model != model:
        check_model(collection, model, await repo.feature_count(collection.id) > 0)


async def store_features(
    repo: FaceRepository, row: CollectionRow, engine: FaceEngine, accepted: list[NewFeature]
) -> Change:
    """Writes the features and bumps the version in one statement; the change to publish."""
    retag = row.model != engine.model_name
    ids, version = await repo.add_features(
        row.id, accepted, model=engine.model_name if retag else None, dim=engine.dim if retag else None
    )
    return Change(row.id, version, engine.dim, added=[(i, f.target_id, f.vector) for i, f in zip(ids, accepted)])


def check_model(collection: CollectionRow, model: str, has_vectors: bool) -> None:
    if has_vectors and collection.model is not None and collection.model != model:
        raise ModelMismatch(
            f"collection {collection.name!r} holds {collection.model} vectors and the engine runs "
            f"{model}: they cannot be compared; use another collection or switch the model back"
        )


# --- collections ---------------------------------------------------------------------------------


async def create(ctx: FaceContext, repo: FaceRepository, scope: Scope, name: str, after_commit: AfterCommit) -> None:
    owner = scope.namespace
    if owner is None:
        raise InvalidRequest(f"owner_id: {NO_OWNER} names the collections made before owners; a new one needs an owner")
    await repo.lock_creation()
    if await repo.collection(PUBLIC, owner, name) is not None:
        raise CollectionExists(f"collection {name!r} already exists")
    limit = ctx.settings.face_max_collections
    if await repo.count_collections(PUBLIC, owner) >= limit:
        raise CollectionQuotaExceeded(f"an owner holds at most {limit} collections")
    engine = ctx.recognizer.engine
    try:
        row = await repo.create_collection(
            PUBLIC, owner, name, engine.model_name if engine else None, engine.dim if engine else None
        )
    except IntegrityError:
        raise CollectionExists(f"collection {name!r} already exists") from None
    ctx.publish_after(after_commit, Change(row.id, row.version, row.dim))


async def _locked(repo: FaceRepository, found: CollectionRow, missing: type[FaceApiError]) -> CollectionRow:
    """The collection found earlier, locked (`missing` if it was deleted meanwhile)."""
    row = await repo.collection_by_id(found.id, lock=True)
    if row is None:
        raise missing(f"collection {found.name!r} does not exist")
    return row


async def _find_locked(repo: FaceRepository, scope: Scope, name: str, missing: type[FaceApiError]) -> CollectionRow:
    return await _locked(repo, await scope.find(repo, name, missing), missing)


async def clear(ctx: FaceContext, repo: FaceRepository, scope: Scope, name: str, after_commit: AfterCommit) -> None:
    row = await _find_locked(repo, scope, name, CheckCollectionName)
    await repo.clear(row.id)
    version = await repo.bump(row.id)
    ctx.publish_after(after_commit, Change(row.id, version, row.dim, clear=True))


async def drop(ctx: FaceContext, repo: FaceRepository, scope: Scope, name: str, after_commit: AfterCommit) -> None:
    row = await _find_locked(repo, scope, name, CheckCollectionName)
    await repo.delete_collection(row.id)
    ctx.publish_after(after_commit, Change(row.id, row.version + 1, row.dim, drop=True))


async def statuses(repo: FaceRepository, scope: Scope, names: list[str]) -> list[dict[str, Any]]:
    rows = await repo.collections(PUBLIC, scope.namespace, every_owner=scope.every_owner, names=names or None)
    if names:
        picked = {
            name: scope.pick(name, [row for row in rows if row.name == name], CheckCollectionName) for name in names
        }
        missing = [name for name, row in picked.items() if row is None]
        if missing:
            raise CheckCollectionName(f"no collection named {', '.join(map(repr, missing))}")
        rows = [row for row in picked.values() if row is not None]
    counts = await repo.feature_counts([row.id for row in rows])
    answer = []
    for row in rows:
        entry: dict[str, Any] = {
            "collection_name": row.name,
            "create_time": ctime(row.created_at),
            "update_time": ctime(row.updated_at),
            "feature_num": counts.get(row.id, 0),
        }
        if scope.admin:  # admins reach every owner's collections: say whose each one is
            entry["owner_id"] = NO_OWNER if row.owner_id is None else row.owner_id
        answer.append(entry)
    return answer


# --- vectors -------------------------------------------------------------------------------------


@dataclass
class WriteResult:
    success_num: int
    problems: list[ImageProblem]
    quota_exceeded: list[str]
    target_invalid: list[str]


def _valid_by_target(
    targets: list[str], embedded: list[np.ndarray | ImageProblem], skip: AbstractSet[str] = frozenset()
) -> tuple[dict[str, list[np.ndarray]], list[ImageProblem]]:
    grouped: dict[str, list[np.ndarray]] = {}
    problems: list[ImageProblem] = []
    for target, result in zip(targets, embedded):
        if target in skip:
            continue
        if isinstance(result, ImageProblem):
            problems.append(result)
        else:
            grouped.setdefault(target, []).append(result)
    return grouped, problems


async def _embed_subset(ctx: FaceContext, images: list[Any], wanted: list[bool]) -> list[np.ndarray | ImageProblem]:
    """The chosen images embedded; the others stand as 'not processed' (never reported)."""
    chosen = [i for i, keep in enumerate(wanted) if keep]
    results = await ctx.recognizer.embed_images([images[i] for i in chosen], indices=chosen, gate=True)
    out: list[np.ndarray | ImageProblem] = [ImageProblem(i, NO_FACE, "not processed") for i in range(len(images))]
    for position, result in zip(chosen, results):
        out[position] = result
    return out


async def insert(
    ctx: FaceContext,
    repo: FaceRepository,
    scope: Scope,
    name: str,
    images: list[Any],
    targets: list[str],
    after_commit: AfterCommit,
) -> WriteResult:
    engine = ctx.recognizer.require()
    found, embedded = await _meanwhile(
        ctx.peek(scope, name, CollectionMissing), ctx.recognizer.embed_images(images, gate=True)
    )
    grouped, problems = _valid_by_target(targets, embedded)

    row = await _locked(repo, found, CollectionMissing)
    await _check_model_locked(repo, row, engine.model_name)
    existing = await repo.feature_ids_by_target(row.id, grouped)
    limit = ctx.settings.face_max_features_per_target
    exceeded = [t for t, vectors in grouped.items() if len(existing.get(t, [])) + len(vectors) > limit]
    accepted = [NewFeature(t, v) for t, vectors in grouped.items() if t not in exceeded for v in vectors]
    if exceeded and not accepted:
        raise TargetQuotaExceeded(
            f"target ids that would hold more than {limit} faces: {', '.join(exceeded)}",
            data=WriteResult(0, problems, exceeded, []),
        )
    if accepted:
        ctx.publish_after(after_commit, await store_features(repo, row, engine, accepted))
    return WriteResult(len(accepted), problems, exceeded, [])


async def update(
    ctx: FaceContext,
    repo: FaceRepository,
    scope: Scope,
    name: str,
    images: list[Any],
    targets: list[str],
    after_commit: AfterCommit,
) -> WriteResult:
    engine = ctx.recognizer.require()
    found = await ctx.peek(scope, name, CollectionMissing)
    present = await ctx.read(lambda repo: repo.targets_present(found.id, targets))
    embedded = await _embed_subset(ctx, images, [t in present for t in targets])

    row = await _locked(repo, found, CollectionMissing)
    existing = await repo.feature_ids_by_target(row.id, targets)  # again, under the lock
    # Held now and when the images were chosen (a target made meanwhile had its images skipped).
    invalid_targets = list(dict.fromkeys(t for t in targets if t not in existing or t not in present))
    grouped, problems = _valid_by_target(targets, embedded, skip=set(invalid_targets))
    await _check_model_locked(repo, row, engine.model_name)
    limit = ctx.settings.face_max_features_per_target
    exceeded = [t for t, vectors in grouped.items() if len(vectors) > limit]
    replaced = {t: vectors for t, vectors in grouped.items() if t not in exceeded}
    if exceeded and not replaced:
        raise TargetQuotaExceeded(
            f"at most {limit} faces per target id: {', '.join(exceeded)}",
            data=WriteResult(0, problems, exceeded, invalid_targets),
        )
    if replaced:
        removed = [i for t in replaced for i in existing[t]]
        await repo.delete_features(removed)
        accepted = [NewFeature(t, v) for t, vectors in replaced.items() for v in vectors]
        change = await store_features(repo, row, engine, accepted)
        change.removed = removed
        ctx.publish_after(after_commit, change)
        return WriteResult(len(accepted), problems, exceeded, invalid_targets)
    return WriteResult(0, problems, exceeded, invalid_targets)


async def delete_targets(
    ctx: FaceContext, repo: FaceRepository, scope: Scope, name: str, targets: list[str], after_commit: AfterCommit
) -> None:
    row = await _find_locked(repo, scope, name, CheckCollectionName)
    existing = await repo.feature_ids_by_target(row.id, targets)
    missing = [t for t in targets if t not in existing]
    if missing:
        raise TargetNotFound(f"collection {name!r} holds no target_id {', '.join(map(repr, missing))}")
    removed = [i for ids in existing.values() for i in ids]
    await repo.delete_features(removed)
    version = await repo.bump(row.id)
    ctx.publish_after(after_commit, Change(row.id, version, row.dim, removed=removed))


# --- search and compare --------------------------------------------------------------------------


async def search(ctx: FaceContext, scope: Scope, name: str, image: Any, k: int) -> list[dict[str, Any]]:
    engine = ctx.recognizer.require()
    row, vector = await _meanwhile(ctx.peek(scope, name, CheckCollectionName), _query_vector(ctx, image, "face_image"))
    state: CollectionIndex | None = await ctx.registry.current(row.id, row.version)
    if state is None:  # dropped meanwhile
        raise CheckCollectionName(f"collection {name!r} does not exist")
    if state.size == 0:
        return []
    check_model(row, engine.model_name, True)
    if state.dim != engine.dim:
        raise ModelMismatch(f"collection {name!r} holds {state.dim}-d vectors; the engine makes {engine.dim}-d ones")
    matches = await ctx.registry.search(state, vector, k, ctx.settings.face_max_features_per_target)
    calibration = for_model(row.model or engine.model_name)
    return [{"result": m.target_id, "score": calibration.score(m.cosine)} for m in matches]


async def _query_vector(ctx: FaceContext, image: Any, field: str) -> np.ndarray:
    try:
        return await ctx.recognizer.embed_one(image)
    except ImageProblem as problem:
        detail = problem.detail.replace("image 0: ", "").replace("image 0 ", "")
        raise InvalidRequest(f"{field}: {detail}") from None


async def compare(ctx: FaceContext, first: Any, second: Any) -> float:
    engine = ctx.recognizer.require()
    one, two = await asyncio.gather(_query_vector(ctx, first, "face_image1"), _query_vector(ctx, second, "face_image2"))
    return for_model(engine.model_name).score(float(np.dot(one, two)))
