"""The dataset schema.

- `datasets`: every dataset, whatever document made it. `kind` says what it holds: `image` (000's image
  datasets and the image archives of 003's `upload_data`), `qa` (001's Q&A data) or `text` (the text
  archives of 003's `upload_data`); `document` says which endpoint made it. 000's names are unique per
  owner among 000's datasets (they are the `<collection_name>` of its upload URLs).
- `labels`: an image dataset's label vocabulary (`number:name`, as 000 writes them).
- `objects`: the bytes in the object store, by content key, with the number of rows that use them. A row of
  `images` or `media` is one reference; bytes go only when no reference is left (`objects.py`).
- `images`: one image of a dataset: its object, decoded size, classification label, and VOC boxes.
- `qa_records`: 001's records; the labelling fields (`labeled`, `reserve`, `expert_name`) are written by
  the tasks service through the internal API.
- `texts`: text files of 003's archives (their `id` is the documented `text_id`).
- `media`: the image bed's and media bed's URLs: one row per upload, owned by its uploader.
- `enrolment_outbox`: face enrolments waiting for the face service (written with the upload, drained by
  `enrolment.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("dataset")


KINDS = ("image", "qa", "text")
DOCUMENTS = ("000", "001", "003")
MEDIA_KINDS = ("picbed", "video")
ENROLMENT_STATES = ("queued", "done", "rejected")


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS!r}", name="known_kind"),
        # 000 addresses an image dataset by its name (the `<collection_name>` of the upload URLs).
        CheckConstraint(f"document IN {DOCUMENTS!r}", name="known_document"),
        Index("uq_datasets_owner_name_000", "owner_id", "name", unique=True, postgresql_where=text("document = '000'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(8))
    # The document whose endpoint made it: 000 (image datasets), 001 (Q&A), 003 (upload_data archives).
    document: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(128))
    # image: classification | face | detection | segmentation (000), image (003); text; qa: "".
    data_type: Mapped[str] = mapped_column(String(32), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # 001's dataset_task_type and dataset_source; 003's archives say "upload_data".
    task_type: Mapped[str] = mapped_column(String(128), default="")
    source: Mapped[str] = mapped_column(String(256), default="")
    # 001's status (未分配 / 已分配 / 已完成 / 已结束) and last assignment, kept by the tasks service.
    status: Mapped[str] = mapped_column(String(16), default="未分配")
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("dataset_id", "number", name="uq_labels_dataset_number"),
        UniqueConstraint("dataset_id", "name", name="uq_labels_dataset_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))


class StoredObject(Base):
    __tablename__ = "objects"
    __table_args__ = (CheckConstraint("refcount >= 0", name="refcount_not_negative"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    refcount: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("dataset_id", "file_name", name="uq_images_dataset_file_name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    object_key: Mapped[str] = mapped_column(ForeignKey("objects.key"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    label_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id"))
    # VOC boxes [{label, xmin, ymin, xmax, ymax, difficult, truncated, pose}]; NULL: not annotated.
    boxes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class QaRecord(Base):
    __tablename__ = "qa_records"
    __table_args__ = (Index("ix_qa_records_dataset_area", "dataset_id", "area"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    area: Mapped[str] = mapped_column(String(64))
    background: Mapped[str] = mapped_column(Text, default="")
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    keyword: Mapped[str] = mapped_column(Text, default="")
    other: Mapped[str] = mapped_column(Text, default="")
    labeled: Mapped[bool] = mapped_column(Boolean, default=False)
    reserve: Mapped[int] = mapped_column(Integer, default=1)
    expert_name: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TextItem(Base):
    __tablename__ = "texts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Media(Base):
    __tablename__ = "media"
    __table_args__ = (CheckConstraint(f"kind IN {MEDIA_KINDS!r}", name="known_kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The last segment of the URL: a random token and the real format's extension.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    object_key: Mapped[str] = mapped_column(ForeignKey("objects.key"), index=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    original_name: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Enrolment(Base):
    __tablename__ = "enrolment_outbox"
    __table_args__ = (
        CheckConstraint(f"status IN {ENROLMENT_STATES!r}", name="known_status"),
        Index("ix_enrolment_outbox_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    collection: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
