"""The auth schema: users, bank cards, the points ledger and escrows, API keys, ads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("auth")


ROLES = ("admin", "demand", "tag", "agent")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("score >= 0", name="score_not_negative"),
        CheckConstraint(f"user_type IN {ROLES!r}", name="known_role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    user_type: Mapped[str] = mapped_column(String(16))
    # 001's experts have a domain ("area"); everyone else has none.
    area: Mapped[str | None] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    invite_code: Mapped[str] = mapped_column(String(16), unique=True)
    invited_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    bank_account: Mapped[str | None] = mapped_column(String(32))
    # The points balance. Only the ledger changes it, in the same transaction as its entry.
    score: Mapped[int] = mapped_column(BigInteger, default=0)
    tag_score: Mapped[int] = mapped_column(BigInteger, default=0)
    grow_value: Mapped[int] = mapped_column(BigInteger, default=0)
    vip_expire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    credit_score: Mapped[int] = mapped_column(Integer, default=100)
    is_checked: Mapped[bool] = mapped_column(Boolean, default=False)
    is_banned: Mapped[bool] = mapped_column(Boolean, default=False)
    face_bound: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BankCard(Base):
    __tablename__ = "bank_cards"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    account: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # In yuan; 1 yuan buys 10 points.
    balance: Mapped[int] = mapped_column(BigInteger)


class Escrow(Base):
    """Points a publisher has put aside for a task, paid out to annotators or refunded."""

    __tablename__ = "escrows"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LedgerEntry(Base):
    """One movement of points from `source` to `target` ("user:12", "escrow:<id>", "external:bank").

    The idempotency key is unique: a replayed request finds its entry and moves nothing.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(160), index=True)
    target: Mapped[str] = mapped_column(String(160), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Adjustment(Base):
    """A change of a user's grow value or credit score asked for by another service; its key makes
    a retried request change nothing (points go through the ledger instead)."""

    __tablename__ = "adjustments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # grow_value | credit
    delta: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters, shown in lists so an admin can tell keys apart; the key itself is only
    # ever stored as a SHA-256 digest (it is 256 random bits, so a slow KDF adds nothing).
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Ad(Base):
    __tablename__ = "ads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    ad_type: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(String(1024))
    publish_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expire_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
