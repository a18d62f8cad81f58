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

from services.face.calibration import for_model
from services.face.errors import (
    CheckCollectionName,
    CollectionExists,
    CollectionMissing,
    CollectionQuotaExceeded,
    ModelMismatch,
    TargetNotFound,
    TargetQuotaExceeded,
)
from services.face.indexes import Change, CollectionIndex, IndexRegistry
from services.face.recognition import NO_FACE, ImageProblem, Recognizer
from services.face.repository import PUBLIC, CollectionRow, FaceRepository, NewFeature
from services.face.schemas import ctime
from services.face.settings import FaceSettings
from services.face.sync import ChangeBus
from shared.errors import InvalidRequest

log = logging.getLogger(__name__)

T = TypeVar("T")
AfterCommit = Callable[[Callable[[], Awaitable[object]]], None]


@dataclass
class FaceContext:
    """What the operations need; one per app (app.state.face)."""

    settings: FaceSettings
    recognizer: Recognizer
    registry: IndexRegistry
    bus: ChangeBus

    async def peek(self, kind: str, name: str) -> CollectionRow | None:
        """A read outside the request's transaction (it ends before any model runs)."""
        return await self.read(lambda repo: repo.collection(kind, name))

    async def read(self, query: Callable[[FaceRepository], Awaitable[T]]) -> T:
        """A short read-only transaction of its own, so that no connection is held while a model runs."""
        async with self.registry.sessionmaker() as session:
            return await query(FaceRepository(session))

    def publish_after(self, after_commit: AfterCommit, change: Change) -> None:
        async def publish() -> None:
            await self.bus.commit(change)

        after_commit(publish)


def check_model(collection: CollectionRow, model: str, has_vectors: bool) -> None:
    if has_vectors and collection.model is not None and collection.model != model:
        raise ModelMismatch(f"collection {collection.name!r} holds {collection.model} vectors and the engine runs "
                            f"{model}: they cannot be compared; use another collection or switch the model back")


# --- collections ---------------------------------------------------------------------------------


async def create(ctx: FaceContext, repo: FaceRepository, name: str, after_commit: AfterCommit) -> None:
    await repo.lock_creation()
    if await repo.collection(PUBLIC, name) is not None:
        raise CollectionExists(f"collection {name!r} already exists")
    limit = ctx.settings.face_max_collections
    if await repo.count_collections(PUBLIC) >= limit:
        raise CollectionQuotaExceeded(f"a deployment holds at most {limit} collections")
    engine = ctx.recognizer.engine
    try:
        row = await repo.create_collection(PUBLIC, name, engine.model_name if engine else None,
                                           engine.dim if engine else None)
    except IntegrityError:
        raise CollectionExists(f"collection {name!r} already exists") from None
    ctx.publish_after(after_commit, Change(row.id, row.version, row.dim))


async def _locked(repo: FaceRepository, name: str, missing: type[Exception]) -> CollectionRow:
    row = await repo.collection(PUBLIC, name, lock=True)
    if row is None:
        raise missing(f"collection {name!r} does not exist")  # type: ignore[call-arg]
    return row


async def clear(ctx: FaceContext, repo: FaceRepository, name: str, after_commit: AfterCommit) -> None:
    row = await _locked(repo, name, CheckCollectionName)
    await repo.clear(row.id)
    version = await repo.bump(row.id)
    ctx.publish_after(after_commit, Change(row.id, version, row.dim, clear=True))


async def drop(ctx: FaceContext, repo: FaceRepository, name: str, after_commit: AfterCommit) -> None:
    row = await _locked(repo, name, CheckCollectionName)
    await repo.delete_collection(row.id)
    ctx.publish_after(after_commit, Change(row.id, row.version + 1, row.dim, drop=True))


async def statuses(repo: FaceRepository, names: list[str]) -> list[dict[str, Any]]:
    found = await repo.statuses(PUBLIC, names or None)
    if names:
        missing = sorted(set(names) - {s.row.name for s in found})
        if missing:
            raise CheckCollectionName(f"no collection named {', '.join(map(repr, missing))}")
        order = {name: i for i, name in enumerate(names)}
        found.sort(key=lambda s: order[s.row.name])
    return [{"collection_name": s.row.name, "create_time": ctime(s.row.created_at),
             "update_time": ctime(s.row.updated_at), "feature_num": s.feature_num} for s in found]


# --- vectors -------------------------------------------------------------------------------------


@dataclass
class WriteResult:
    success_num: int
    problems: list[ImageProblem]
    quota_exceeded: list[str]
    target_invalid: list[str]


def _valid_by_target(targets: list[str], embedded: list[np.ndarray | ImageProblem],
                     skip: AbstractSet[str] = frozenset()) -> tuple[dict[str, list[np.ndarray]], list[ImageProblem]]:
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
    results = await ctx.recognizer.embed_images([images[i] for i in chosen], indices=chosen)
    out: list[np.ndarray | ImageProblem] = [ImageProblem(i, NO_FACE, "not processed") for i in range(len(images))]
    for position, result in zip(chosen, results):
        out[position] = result
    return out


async def insert(ctx: FaceContext, repo: FaceRepository, name: str, images: list[Any], targets: list[str],
                 after_commit: AfterCommit) -> WriteResult:
    engine = ctx.recognizer.require()
    if await ctx.peek(PUBLIC, name) is None:
        raise CollectionMissing(f"collection {name!r} does not exist: create it first")
    embedded = await ctx.recognizer.embed_images(images)
    grouped, problems = _valid_by_target(targets, embedded)

    row = await _locked(repo, name, CollectionMissing)
    has_vectors = await repo.feature_count(row.id) > 0
    check_model(row, engine.model_name, has_vectors)
    existing = await repo.feature_ids_by_target(row.id, grouped)
    limit = ctx.settings.face_max_features_per_target
    exceeded = [t for t, vectors in grouped.items() if len(existing.get(t, [])) + len(vectors) > limit]
    accepted = [NewFeature(t, v) for t, vectors in grouped.items() if t not in exceeded for v in vectors]
    if exceeded and not accepted:
        raise TargetQuotaExceeded(f"target ids that would hold more than {limit} faces: {', '.join(exceeded)}",
                                  data=WriteResult(0, problems, exceeded, []))
    if accepted:
        ids = await repo.insert_features(row.id, accepted)
        retag = row.model != engine.model_name
        version = await repo.bump(row.id, model=engine.model_name if retag else None,
                                  dim=engine.dim if retag else None)
        change = Change(row.id, version, engine.dim, added=[(i, f.target_id, f.vector) for i, f in zip(ids, accepted)])
        ctx.publish_after(after_commit, change)
    return WriteResult(len(accepted), problems, exceeded, [])


async def update(ctx: FaceContext, repo: FaceRepository, name: str, images: list[Any], targets: list[str],
                 after_commit: AfterCommit) -> WriteResult:
    engine = ctx.recognizer.require()
    row = await ctx.peek(PUBLIC, name)
    if row is None:
        raise CollectionMissing(f"collection {name!r} does not exist: create it first")
    collection_id = row.id
    present = await ctx.read(lambda repo: repo.targets_present(collection_id, targets))
    embedded = await _embed_subset(ctx, images, [t in present for t in targets])

    row = await _locked(repo, name, CollectionMissing)
    existing = await repo.feature_ids_by_target(row.id, targets)  # again, under the lock
    # Held now and when the images were chosen (a target made meanwhile had its images skipped).
    invalid_targets = list(dict.fromkeys(t for t in targets if t not in existing or t not in present))
    grouped, problems = _valid_by_target(targets, embedded, skip=set(invalid_targets))
    check_model(row, engine.model_name, await repo.feature_count(row.id) > 0)
    limit = ctx.settings.face_max_features_per_target
    exceeded = [t for t, vectors in grouped.items() if len(vectors) > limit]
    replaced = {t: vectors for t, vectors in grouped.items() if t not in exceeded}
    if exceeded and not replaced:
        raise TargetQuotaExceeded(f"at most {limit} faces per target id: {', '.join(exceeded)}",
                                  data=WriteResult(0, problems, exceeded, invalid_targets))
    if replaced:
        removed = [i for t in replaced for i in existing[t]]
        await repo.delete_features(removed)
        accepted = [NewFeature(t, v) for t, vectors in replaced.items() for v in vectors]
        ids = await repo.insert_features(row.id, accepted)
        retag = row.model != engine.model_name
        version = await repo.bump(row.id, model=engine.model_name if retag else None,
                                  dim=engine.dim if retag else None)
        change = Change(row.id, version, engine.dim, removed=removed,
                        added=[(i, f.target_id, f.vector) for i, f in zip(ids, accepted)])
        ctx.publish_after(after_commit, change)
        return WriteResult(len(accepted), problems, exceeded, invalid_targets)
    return WriteResult(0, problems, exceeded, invalid_targets)


async def delete_targets(ctx: FaceContext, repo: FaceRepository, name: str, targets: list[str],
                         after_commit: AfterCommit) -> None:
    row = await _locked(repo, name, CheckCollectionName)
    existing = await repo.feature_ids_by_target(row.id, targets)
    missing = [t for t in targets if t not in existing]
    if missing:
        raise TargetNotFound(f"collection {name!r} holds no target_id {', '.join(map(repr, missing))}")
    removed = [i for ids in existing.values() for i in ids]
    await repo.delete_features(removed)
    version = await repo.bump(row.id)
    ctx.publish_after(after_commit, Change(row.id, version, row.dim, removed=removed))


# --- search and compare --------------------------------------------------------------------------


async def search(ctx: FaceContext, name: str, image: Any, k: int) -> list[dict[str, Any]]:
    engine = ctx.recognizer.require()
    row = await ctx.peek(PUBLIC, name)
    if row is None:
        raise CheckCollectionName(f"collection {name!r} does not exist")
    vector = await _query_vector(ctx, image, "face_image")
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
