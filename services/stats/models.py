"""The stats schema: one row per detection record, written once whatever the redeliveries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("stats")


class Record(Base):
    __tablename__ = "records"

    # 004's figId.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(512), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    label: Mapped[str] = mapped_column(String(256))
    num: Mapped[int] = mapped_column(Integer, index=True)
    dice: Mapped[float] = mapped_column(Float)
    processing_time: Mapped[float] = mapped_column(Float)
    result_image: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
