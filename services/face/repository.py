"""All of the face service's SQL. Rows come back as plain dataclasses, never ORM instances, so a flow may
end a read-only transaction early (to hold no connection while a model runs) without expired objects.

Writers of one collection are serialised by locking its row (`lock`): the per-target quota is checked
and the version bumped under that lock, so two inserts can never both take a target's fifth slot, and
versions follow commit order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    CursorResult,
    Executable,
    Integer,
    String,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.face.models import Collection, Feature

PUBLIC, USERS, DATASET = "public", "users", "dataset"
USERS_COLLECTION = "_users"


@dataclass(frozen=True)
class CollectionRow:
    id: int
    kind: str
    name: str
    owner_id: int | None
    model: str | None
    dim: int | None
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewFeature:
    target_id: str
    vector: np.ndarray
    image_key: str | None = None
    enrolment_id: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """A collection's vectors as of one version, as stored (the caller turns them into arrays off the
    event loop: `vectors_from`)."""

    collection: CollectionRow
    ids: list[int]
    targets: list[str]
    blobs: list[bytes]


_COLUMNS = (Collection.id, Collection.kind, Collection.name, Collection.owner_id, Collection.model, Collection.dim,
            Collection.version, Collection.created_at, Collection.updated_at)  # fmt: skip


# The statements of the hot paths (a search's and a write's collection lookup, the write's lock, its
# quota read and its insert), built once: building a select() from ORM attributes costs more CPU than
# executing it (profiled: a third of a 1-face insert's database work), and a prebuilt statement with
# bound parameters also hits SQLAlchemy's compiled cache and asyncpg's prepared statements at once.
_BY_ID = select(*_COLUMNS).where(Collection.id == bindparam("collection_id"))
_BY_ID_LOCKED = _BY_ID.with_for_update()
_NAMED = Collection.name == any_(bindparam("names", type_=ARRAY(String)))
_OWNED = Collection.owner_id.is_not_distinct_from(bindparam("owner_id", type_=BigInteger))
_NAMED_COLLECTIONS = {
    every_owner: select(*_COLUMNS)
    .where(Collection.kind == bindparam("kind"), _NAMED, *([] if every_owner else [_OWNED]))
    .order_by(Collection.created_at, Collection.id)
    for every_owner in (False, True)
}
_FEATURES_OF_TARGETS = (
    select(Feature.target_id, Feature.id)
    .where(
        Feature.collection_id == bindparam("collection_id"),
        Feature.target_id == any_(bindparam("targets", type_=ARRAY(String))),
    )
    .order_by(Feature.id)
)
# Features stored and the version bumped (as `bump`) in one statement. The rows are inserted in the order
# given, so the sequence hands out their ids in that order.
_ADD_FEATURES = text("""
    WITH added AS (
        INSERT INTO face.features (collection_id, target_id, vector, image_key, enrolment_id)
        SELECT :collection_id, target_id, vector, image_key, enrolment_id
        FROM unnest(CAST(:target_ids AS text[]), CAST(:vectors AS bytea[]), CAST(:image_keys AS text[]),
                    CAST(:enrolment_ids AS bigint[])) WITH ORDINALITY AS new (target_id, vector, image_key, enrolment_id, n)
        ORDER BY n
        RETURNING id
    ), bumped AS (
        UPDATE face.collections
        SET version = version + 1, updated_at = now(), model = coalesce(:model, model), dim = coalesce(:dim, dim)
        WHERE id = :collection_id
        RETURNING version
    )
    SELECT added.id, bumped.version FROM added CROSS JOIN bumped ORDER BY added.id
""").bindparams(bindparam("model", type_=String), bindparam("dim", type_=Integer))


def _row(values: Sequence[object] | None) -> CollectionRow | None:
    return None if values is None else CollectionRow(*values)  # type: ignore[arg-type]


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vectors_from(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.empty((0, dim), np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)


class FaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _execute(
        self, statement: Executable, parameters: dict[str, Any] | None = None
    ) -> CursorResult[*tuple[Any, ...]]:
        """Core statements on the session's connection: the ORM session's execute adds its own work (ORM
        compile state, result wrapping) to every statement, and none of these needs it."""
        connection = await self.session.connection()
        return await connection.execute(statement, parameters)

    # collections -------------------------------------------------------------------------------

    async def collection(
        self, kind: str, owner_id: int | None, name: str, *, lock: bool = False
    ) -> CollectionRow | None:
        """The collection `name` of `owner_id` (None: the one with no owner)."""
        query = select(*_COLUMNS).where(
            Collection.kind == kind, Collection.owner_id.is_not_distinct_from(owner_id), Collection.name == name
        )
        if lock:
            query = query.with_for_update()
        return _row((await self._execute(query)).first())

    async def collections(
        self, kind: str, owner_id: int | None, *, every_owner: bool = False, names: Sequence[str] | None = None
    ) -> list[CollectionRow]:
        """The collections of `owner_id` (or of every owner), those named `names` only when given; oldest first."""
        if names is not None:
            parameters = {"kind": kind, "owner_id": owner_id, "names": list(names)}
            return [CollectionRow(*r) for r in (await self._execute(_NAMED_COLLECTIONS[every_owner], parameters))]
        query = select(*_COLUMNS).where(Collection.kind == kind).order_by(Collection.created_at, Collection.id)
        if not every_owner:
            query = query.where(Collection.owner_id.is_not_distinct_from(owner_id))
        return [CollectionRow(*r) for r in (await self._execute(query)).all()]

    async def collection_by_id(self, collection_id: int, *, lock: bool = False) -> CollectionRow | None:
        query = _BY_ID_LOCKED if lock else _BY_ID
        return _row((await self._execute(query, {"collection_id": collection_id})).first())

    async def lock_creation(self) -> None:
        """Serialises collection creation for the whole deployment (the quota count)."""
        await self._execute(text("SELECT pg_advisory_xact_lock(hashtext('labelhive:face:create'))"))

    async def count_collections(self, kind: str, owner_id: int | None) -> int:
        query = (
            select(func.count())
            .select_from(Collection)
            .where(Collection.kind == kind, Collection.owner_id.is_not_distinct_from(owner_id))
        )
        return int((await self._execute(query)).scalar_one())

    async def create_collection(
        self, kind: str, owner_id: int | None, name: str, model: str | None, dim: int | None
    ) -> CollectionRow:
        statement = (
            insert(Collection)
            .values(kind=kind, owner_id=owner_id, name=name, model=model, dim=dim)
            .returning(*_COLUMNS)
        )
        row = _row((await self._execute(statement)).first())
        assert row is not None
        return row

    async def ensure_collection(
        self, kind: str, owner_id: int | None, name: str, model: str | None, dim: int | None
    ) -> CollectionRow:
        """The collection, created if missing (concurrent callers end with the same row)."""
        statement = (
            pg_insert(Collection)
            .values(kind=kind, owner_id=owner_id, name=name, model=model, dim=dim)
            .on_conflict_do_nothing(constraint="uq_collections_kind_owner_name")
        )
        await self._execute(statement)
        row = await self.collection(kind, owner_id, name)
        assert row is not None
        return row

    async def claim_ownerless(self, kind: str, name: str, owner_id: int) -> None:
        """Give `owner_id` the collection `name` made before collections had owners, if there is one."""
        await self._execute(
            update(Collection)
            .where(Collection.kind == kind, Collection.name == name, Collection.owner_id.is_(None))
            .values(owner_id=owner_id)
        )

    async def delete_collection(self, collection_id: int) -> None:
        await self._execute(delete(Collection).where(Collection.id == collection_id))

    async def bump(self, collection_id: int, *, model: str | None = None, dim: int | None = None) -> int:
        """A committed change: the next version (and the collection's model when it takes a new one)."""
        values: dict[str, object] = {"version": Collection.version + 1, "updated_at": func.now()}
        if model is not None:
            values |= {"model": model, "dim": dim}
        statement = update(Collection).where(Collection.id == collection_id).values(**values)
        return int((await self._execute(statement.returning(Collection.version))).scalar_one())

    async def feature_counts(self, collection_ids: Sequence[int]) -> dict[int, int]:
        """Vectors stored per collection (those holding none are absent)."""
        if not collection_ids:
            return {}
        query = (
            select(Feature.collection_id, func.count())
            .where(Feature.collection_id.in_(list(collection_ids)))
            .group_by(Feature.collection_id)
        )
        return {int(i): int(n) for i, n in (await self._execute(query)).all()}

    async def versions(self) -> dict[int, int]:
        rows = (await self._execute(select(Collection.id, Collection.version))).all()
        return {int(i): int(v) for i, v in rows}

    # features ----------------------------------------------------------------------------------

    async def feature_count(self, collection_id: int) -> int:
        query = select(func.count()).select_from(Feature).where(Feature.collection_id == collection_id)
        return int((await self._execute(query)).scalar_one())

    async def feature_ids_by_target(self, collection_id: int, targets: Iterable[str]) -> dict[str, list[int]]:
        wanted = sorted(set(targets))
        if not wanted:
            return {}
        found: dict[str, list[int]] = {}
        parameters = {"collection_id": collection_id, "targets": wanted}
        for target, feature_id in (await self._execute(_FEATURES_OF_TARGETS, parameters)).all():
            found.setdefault(target, []).append(int(feature_id))
        return found

    async def targets_present(self, collection_id: int, targets: Iterable[str]) -> set[str]:
        return set(await self.feature_ids_by_target(collection_id, targets))

    async def add_features(
        self, collection_id: int, features: Sequence[NewFeature], *, model: str | None = None, dim: int | None = None
    ) -> tuple[list[int], int]:
        """Stores the features and bumps the collection's version (as `bump`) in one statement: their ids
        in the order given, and the new version."""
        parameters = {
            "collection_id": collection_id,
            "target_ids": [f.target_id for f in features],
            "vectors": [vector_bytes(f.vector) for f in features],
            "image_keys": [f.image_key for f in features],
            "enrolment_ids": [f.enrolment_id for f in features],
            "model": model,
            "dim": dim if model is not None else None,
        }
        rows = (await self._execute(_ADD_FEATURES, parameters)).all()
        return [int(r[0]) for r in rows], int(rows[0][1])

    async def delete_features(self, feature_ids: Sequence[int]) -> None:
        if feature_ids:
            await self._execute(delete(Feature).where(Feature.id.in_(list(feature_ids))))

    async def clear(self, collection_id: int) -> int:
        result = await self._execute(delete(Feature).where(Feature.collection_id == collection_id))
        return int(result.rowcount or 0)

    async def feature_by_enrolment(self, enrolment_id: int) -> tuple[int, int, str] | None:
        """(feature id, collection id, target id) of an enrolment already stored."""
        query = select(Feature.id, Feature.collection_id, Feature.target_id).where(Feature.enrolment_id == enrolment_id)
        row = (await self._execute(query)).first()
        return None if row is None else (int(row[0]), int(row[1]), str(row[2]))

    async def feature_by_image(self, collection_id: int, target_id: str, image_key: str) -> int | None:
        query = (
            select(Feature.id)
            .where(
                Feature.collection_id == collection_id, Feature.target_id == target_id, Feature.image_key == image_key
            )
            .limit(1)
        )
        found = (await self._execute(query)).scalar_one_or_none()
        return None if found is None else int(found)

    async def snapshot(self, collection_id: int, chunk: int = 10_000) -> Snapshot | None:
        """The collection and all its vectors, read in one REPEATABLE READ transaction (call it first in a
        fresh session) so that the vectors are exactly those of the version returned. Rows arrive in chunks
        through a server-side cursor, so that a large collection does not hold the event loop."""
        await self.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        collection = await self.collection_by_id(collection_id)
        if collection is None:
            return None
        query = (
            select(Feature.id, Feature.target_id, Feature.vector)
            .where(Feature.collection_id == collection_id)
            .order_by(Feature.id)
        )
        size = (collection.dim or 0) * 4
        ids: list[int] = []
        targets: list[str] = []
        blobs: list[bytes] = []
        result = await self.session.stream(query.execution_options(yield_per=chunk))
        async for rows in result.partitions(chunk):
            for feature_id, target, blob in rows:
                if size and len(blob) == size:  # a vector of another size cannot be in this index
                    ids.append(int(feature_id))
                    targets.append(str(target))
                    blobs.append(bytes(blob))
        return Snapshot(collection, ids, targets, blobs)
