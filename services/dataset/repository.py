"""All of the dataset service's SQL."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from .models import (
    Dataset,
    Enrolment,
    Image,
    Label,
    Media,
    QaRecord,
    StoredObject,
    TextItem,
)

# Advisory locks on object keys (objects.py): one 64-bit lock id per key, in a namespace of their own.
_OBJECT_LOCK = "dataset-object:"


class DatasetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *objects: object) -> None:
        self.session.add_all(objects)
        await self.session.flush()

    # datasets ------------------------------------------------------------------------------------

    async def dataset(self, dataset_id: int, *, lock: bool = False) -> Dataset | None:
        query = select(Dataset).where(Dataset.id == dataset_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def image_dataset_by_name(self, owner_id: int, name: str, *, lock: bool = False) -> Dataset | None:
        query = select(Dataset).where(Dataset.owner_id == owner_id, Dataset.document == "000", Dataset.name == name)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def datasets(self, document: str, owner_id: int | None) -> Sequence[Dataset]:
        query = select(Dataset).where(Dataset.document == document).order_by(Dataset.id)
        if owner_id is not None:
            query = query.where(Dataset.owner_id == owner_id)
        return (await self.session.execute(query)).scalars().all()

    async def set_status(self, dataset_id: int, status: str, assigned_at: datetime | None) -> bool:
        values: dict[str, Any] = {"status": status}
        if assigned_at is not None:
            values["assigned_at"] = assigned_at
        result = await self.session.execute(
            update(Dataset).where(Dataset.id == dataset_id, Dataset.document == "001").values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # labels --------------------------------------------------------------------------------------

    async def labels(self, dataset_id: int) -> Sequence[Label]:
        query = select(Label).where(Label.dataset_id == dataset_id).order_by(Label.number)
        return (await self.session.execute(query)).scalars().all()

    async def add_labels(self, dataset_id: int, labels: Iterable[tuple[int, str]]) -> None:
        rows = [{"dataset_id": dataset_id, "number": number, "name": name} for number, name in labels]
        if rows:
            await self.session.execute(insert(Label), rows)

    # images --------------------------------------------------------------------------------------

    async def existing_file_names(self, dataset_id: int, names: Sequence[str]) -> set[str]:
        if not names:
            return set()
        query = select(Image.file_name).where(Image.dataset_id == dataset_id, Image.file_name.in_(names))
        return set((await self.session.execute(query)).scalars())

    async def insert_images(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Inserts image rows; returns their ids by file name."""
        if not rows:
            return {}
        result = await self.session.execute(insert(Image).returning(Image.id, Image.file_name), list(rows))
        return {name: image_id for image_id, name in result.all()}

    async def image_page(self, dataset_id: int, after_id: int, limit: int) -> Sequence[tuple[Image, str | None]]:
        """Images in id order after `after_id`, each with its classification label's name."""
        query = (
            select(Image, Label.name)
            .outerjoin(Label, Label.id == Image.label_id)
            .where(Image.dataset_id == dataset_id, Image.id > after_id)
            .order_by(Image.id)
            .limit(limit)
        )
        return [(image, label) for image, label in (await self.session.execute(query)).all()]

    # stored objects ------------------------------------------------------------------------------

    async def lock_object_keys(self, keys: Iterable[str]) -> None:
        """Transaction-scoped advisory locks on object keys, taken in key order (no deadlocks)."""
        ordered = sorted(set(keys))
        if ordered:
            await self.session.execute(
                text(
                    "SELECT pg_advisory_xact_lock(hashtextextended(:prefix || k, 0)) "
                    "FROM (SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS ordered"
                ),
                {"prefix": _OBJECT_LOCK, "keys": ordered},
            )

    async def add_object_refs(self, refs: Mapping[str, tuple[int, int]]) -> None:
        """`refs`: key -> (size, references to add). Creates the rows that do not exist yet."""
        if not refs:
            return
        rows = [{"key": key, "size": size, "refcount": count} for key, (size, count) in sorted(refs.items())]
        statement = text(
            "INSERT INTO dataset.objects (key, size, refcount) "
            "SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:sizes AS bigint[]), CAST(:counts AS int[])) "
            "ON CONFLICT (key) DO UPDATE SET refcount = objects.refcount + excluded.refcount"
        )
        await self.session.execute(
            statement,
            {
                "keys": [r["key"] for r in rows],
                "sizes": [r["size"] for r in rows],
                "counts": [r["refcount"] for r in rows],
            },
        )

    async def release_object(self, key: str) -> int:
        """Drops one reference; returns how many are left."""
        result = await self.session.execute(
            update(StoredObject)
            .where(StoredObject.key == key)
            .values(refcount=StoredObject.refcount - 1)
            .returning(StoredObject.refcount)
        )
        left = result.scalar_one_or_none()
        return 0 if left is None else int(left)

    async def object_refcount(self, key: str) -> int | None:
        query = select(StoredObject.refcount).where(StoredObject.key == key).with_for_update()
        value = (await self.session.execute(query)).scalar_one_or_none()
        return None if value is None else int(value)

    async def delete_object_row(self, key: str) -> None:
        await self.session.execute(delete(StoredObject).where(StoredObject.key == key, StoredObject.refcount == 0))

    async def referenced_keys(self, keys: Sequence[str]) -> set[str]:
        query = select(StoredObject.key).where(StoredObject.key.in_(keys), StoredObject.refcount > 0)
        return set((await self.session.execute(query)).scalars())

    # media ---------------------------------------------------------------------------------------

    async def media(self, name: str, kind: str, *, lock: bool = False) -> Media | None:
        query = select(Media).where(Media.name == name, Media.kind == kind)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def insert_media(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(Media), list(rows))

    async def delete_media(self, media: Media) -> None:
        await self.session.delete(media)
        await self.session.flush()

    # Q&A -----------------------------------------------------------------------------------------

    async def insert_qa_records(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(QaRecord), list(rows))

    async def qa_area_sizes(self, dataset_id: int) -> list[tuple[str, int]]:
        query = (
            select(QaRecord.area, func.count())
            .where(QaRecord.dataset_id == dataset_id)
            .group_by(QaRecord.area)
            .order_by(func.min(QaRecord.position))
        )
        return [(area, int(count)) for area, count in (await self.session.execute(query)).all()]

    async def qa_page(self, dataset_id: int, after_id: int, limit: int, area: str | None = None) -> Sequence[QaRecord]:
        conditions = [QaRecord.dataset_id == dataset_id, QaRecord.id > after_id]
        if area is not None:
            conditions.append(QaRecord.area == area)
        query = select(QaRecord).where(and_(*conditions)).order_by(QaRecord.id).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def qa_record(self, record_id: int, *, lock: bool = False) -> QaRecord | None:
        query = select(QaRecord).where(QaRecord.id == record_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    # texts ---------------------------------------------------------------------------------------

    async def insert_texts(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        if not rows:
            return {}
        result = await self.session.execute(insert(TextItem).returning(TextItem.id, TextItem.file_name), list(rows))
        return {name: text_id for text_id, name in result.all()}

    async def text_with_owner(self, text_id: int) -> tuple[TextItem, int] | None:
        query = (
            select(TextItem, Dataset.owner_id)
            .join(Dataset, Dataset.id == TextItem.dataset_id)
            .where(TextItem.id == text_id)
        )
        row = (await self.session.execute(query)).one_or_none()
        return (row[0], row[1]) if row else None

    async def text_page(self, dataset_id: int, after_id: int, limit: int) -> Sequence[TextItem]:
        query = (
            select(TextItem)
            .where(TextItem.dataset_id == dataset_id, TextItem.id > after_id)
            .order_by(TextItem.id)
            .limit(limit)
        )
        return (await self.session.execute(query)).scalars().all()

    # face enrolment outbox -----------------------------------------------------------------------

    async def insert_enrolments(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(Enrolment), list(rows))

    async def due_enrolments(self, now: datetime, limit: int) -> list[tuple[Enrolment, int]]:
        """Queued enrolments whose time has come, locked, each with its dataset's owner (who owns the face
        collection); rows another drainer holds are skipped."""
        query = (
            select(Enrolment, Dataset.owner_id)
            .join(Dataset, Dataset.id == Enrolment.dataset_id)
            .where(Enrolment.status == "queued", Enrolment.next_attempt_at <= now)
            .order_by(Enrolment.id)
            .limit(limit)
            .with_for_update(of=Enrolment, skip_locked=True)
        )
        return [(row, int(owner_id)) for row, owner_id in (await self.session.execute(query)).all()]
