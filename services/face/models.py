"""The face schema.

- `collections`: document 002's collections (`kind` "public"), the face-login users ("users", one per
  deployment) and the dataset service's face datasets ("dataset"). A collection belongs to `owner_id`
  (the user who made it, or the API key's creator; a face dataset's: the dataset's owner); null is no
  owner: the users collection, and public collections made before collections had owners, which only
  admins reach. Names are unique per kind and owner, and only the public ones are visible to 002.
  `model`/`dim` record which model made the vectors (a collection refuses another model's vectors);
  `version` counts the changes, so that every replica can tell whether its in-memory index is current
  (services/face/index_registry.py, keyed by collection id: two owners' `COL` are two indexes).
- `features`: one face vector per row (float32 bytes, `dim` of them) of a target id; its `id` is the
  vector's id in the faiss index. `enrolment_id` and `image_key` make the dataset service's deliveries
  idempotent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("face")


class Collection(Base):
    __tablename__ = "collections"
    __table_args__ = (
        UniqueConstraint(
            "kind", "owner_id", "name", name="uq_collections_kind_owner_name", postgresql_nulls_not_distinct=True
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    owner_id: Mapped[int | None] = mapped_column(BigInteger)
    model: Mapped[str | None] = mapped_column(String(128))
    dim: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Feature(Base):
    __tablename__ = "features"
    # Serves lookups by collection, by (collection, target) and by (collection, target, image).
    __table_args__ = (Index("ix_features_collection_target_image", "collection_id", "target_id", "image_key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    collection_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("collections.id", ondelete="CASCADE"))
    target_id: Mapped[str] = mapped_column(String(256))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    image_key: Mapped[str | None] = mapped_column(String(64))
    enrolment_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
