"""The tasks schema: 003's tasks (questions, annotators' assignments and answers, standard answers,
reports), 001's missions, and the outbox of calls to other services.

A task's life is `status` (created -> distributed -> finished, or deleted) crossed with the admin's
`check_result` (wait -> accept | refuse). An annotator's life on a task is `Assignment.state`; see
`services/tasks/lifecycle.py` for both diagrams.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
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
    metadata = schema_metadata("tasks")


class TaskStatus(StrEnum):
    """`Task.status`: a task's life (services/tasks/lifecycle.py)."""

    CREATED = "created"
    DISTRIBUTED = "distributed"
    FINISHED = "finished"
    DELETED = "deleted"  # a soft delete: the row stays, and the repository's reads leave it out


class CheckResult(StrEnum):
    """`Task.check_result`: the admin's check of a created task."""

    WAIT = "wait"
    ACCEPT = "accept"
    REFUSE = "refuse"


class AssignmentState(StrEnum):
    """`Assignment.state`: one annotator's life on one task (services/tasks/lifecycle.py)."""

    NOT_HANDLE = "not_handle"  # offered (order, smart, agent), not accepted yet
    ACCEPTED = "accepted"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    FINISHED = "finished"  # every question answered: awaiting review
    REVIEW_ACCEPTED = "review_accepted"
    REVIEW_REFUSED = "review_refused"


STRATEGIES = ("toall", "order", "smart")
# A task that went out to annotators: still running, or finished.
WAS_DISTRIBUTED = (TaskStatus.DISTRIBUTED, TaskStatus.FINISHED)
# States in which an annotator still works (or may start) and the time limit runs.
RUNNING_STATES = (AssignmentState.NOT_HANDLE, AssignmentState.ACCEPTED)
# Annotators who still have work before the publisher can settle the task.
IN_PROGRESS_STATES = (*RUNNING_STATES, AssignmentState.FINISHED)
# States of an annotator who answered every question (reviewed or not).
DONE_STATES = (AssignmentState.FINISHED, AssignmentState.REVIEW_ACCEPTED, AssignmentState.REVIEW_REFUSED)
MISSION_STATUSES = ("标注中", "已移交", "已完成")


def sql_in(values: Iterable[str]) -> str:
    """`('a', 'b')`: a list of constants for SQL text (constraints, partial indexes, hot-path statements)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint("taken >= 0 AND taken <= distribute_user_num", name="slots"),
        CheckConstraint(f"status IN {sql_in(TaskStatus)}", name="known_status"),
        CheckConstraint(f"check_result IN {sql_in(CheckResult)}", name="known_check_result"),
        Index("ix_tasks_free", "status", "strategy", postgresql_where=text(f"status = '{TaskStatus.DISTRIBUTED}'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    publisher_id: Mapped[int] = mapped_column(Integer, index=True)
    task_name: Mapped[str] = mapped_column(String(24))
    task_type: Mapped[str] = mapped_column(String(32))
    task_style: Mapped[str] = mapped_column(Text, default="")
    result_type: Mapped[str] = mapped_column(String(32), default="")
    reward_per_q: Mapped[int] = mapped_column(Integer)
    time_limit_per_q: Mapped[int] = mapped_column(Integer)
    total_time_limit: Mapped[int] = mapped_column(Integer)
    distribute_user_num: Mapped[int] = mapped_column(Integer)
    accept_method: Mapped[str] = mapped_column(String(8))
    strategy: Mapped[str] = mapped_column(String(8))
    tag_type: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    input_type: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    cut_num: Mapped[str] = mapped_column(String(16), default="")
    stdans_tag: Mapped[str] = mapped_column(String(64), default="")
    q_num: Mapped[int] = mapped_column(Integer, default=0)
    check_result: Mapped[str] = mapped_column(String(8), default=CheckResult.WAIT)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.CREATED)
    agent_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # Slots in use: assignments that are `current` (at most distribute_user_num, checked by the row).
    taken: Mapped[int] = mapped_column(Integer, default=0)
    # What distribution held in escrow `task:<id>` (reward_per_q * q_num * distribute_user_num).
    held_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    distributed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Question(Base):
    __tablename__ = "questions"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    q_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    # A text's id (`text`) or an image-bed URL (`image`), as 003's upload_data returned it.
    tag: Mapped[str] = mapped_column(String(1024))
    data_type: Mapped[str] = mapped_column(String(8))
    # The standard answer's canonical form, when the publisher uploaded one for this question.
    std_answer: Mapped[str | None] = mapped_column(Text)


class Assignment(Base):
    """One annotator on one task. `current` ones hold a slot; the others form the past list."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("task_id", "user_id"),
        CheckConstraint(f"state IN {sql_in(AssignmentState)}", name="known_state"),
        Index("ix_assignments_deadline", "deadline", postgresql_where=text(f"state IN {sql_in(RUNNING_STATES)}")),
        Index("ix_assignments_user_state", "user_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    via: Mapped[str] = mapped_column(String(8))  # toall | order | smart | agent
    distributed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the annotator times out: distribution (or acceptance) + total_time_limit.
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered: Mapped[int] = mapped_column(Integer, default=0)
    std_total: Mapped[int] = mapped_column(Integer, default=0)
    std_correct: Mapped[int] = mapped_column(Integer, default=0)
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0)


class Answer(Base):
    """One annotator's work on one question: started, then submitted once (the primary key makes
    a second submission impossible)."""

    __tablename__ = "answers"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    q_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[Any] = mapped_column(JSONB, nullable=True)
    input_result: Mapped[Any] = mapped_column(JSONB, nullable=True)
    # The canonical form of the result, compared with standard answers and voted on.
    answer_key: Mapped[str | None] = mapped_column(Text)


class StandardAnswerSet(Base):
    """A CSV of standard answers (003's upload_stdans): filename -> canonical answer."""

    __tablename__ = "standard_answer_sets"

    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    answers: Mapped[dict[str, str]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AnnotatorStats(Base):
    """What smart distribution ranks by, besides the credit score auth keeps."""

    __tablename__ = "annotator_stats"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    std_total: Mapped[int] = mapped_column(Integer, default=0)
    std_correct: Mapped[int] = mapped_column(Integer, default=0)
    accepted_answers: Mapped[int] = mapped_column(BigInteger, default=0)
    accepted_tasks: Mapped[int] = mapped_column(Integer, default=0)


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("task_id", "reporter_id", "reportee_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    reporter_id: Mapped[int] = mapped_column(Integer)
    reportee_id: Mapped[int] = mapped_column(Integer)
    # The annotator involved: the reportee when the publisher reports, the reporter otherwise.
    tagger_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending | accepted
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Cursor(Base):
    """Where `order` distribution goes on from (the last annotator it gave a task to)."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class OutboxOp(Base):
    """A call to another service that must happen once the transaction that wanted it commits.

    Written in the same transaction as the change that causes it; the drainer sends it (with its
    idempotency key, so a resend after a crash moves nothing twice) and marks it done. Ops of one
    `grp` run in id order: a task's final refund never overtakes its payouts.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "grp", "id", postgresql_where=text("status = 'pending'")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    grp: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # payout | refund | grow | credit | dataset_status
    service: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(255))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    task_id: Mapped[int | None] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Mission(Base):
    """001's task: one expert's share of one area of a Q&A dataset."""

    __tablename__ = "missions"
    __table_args__ = (CheckConstraint(f"status IN {sql_in(MISSION_STATUSES)}", name="known_status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(Integer, index=True)
    dataset_name: Mapped[str] = mapped_column(String(128))
    dataset_task_type: Mapped[str] = mapped_column(String(128), default="")
    dataset_source: Mapped[str] = mapped_column(String(256), default="")
    manager_id: Mapped[int] = mapped_column(Integer, index=True)
    area: Mapped[str] = mapped_column(String(64))
    expert_id: Mapped[int] = mapped_column(Integer, index=True)
    expert_name: Mapped[str] = mapped_column(String(64))
    notice: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(8), default="标注中")
    original_id: Mapped[int | None] = mapped_column(Integer)
    is_highlight: Mapped[bool] = mapped_column(Boolean, default=False)
    total_count: Mapped[int] = mapped_column(Integer, default=0)
    finished_count: Mapped[int] = mapped_column(Integer, default=0)
    first_record_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_record_id: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MissionRecord(Base):
    __tablename__ = "mission_records"

    mission_id: Mapped[int] = mapped_column(ForeignKey("missions.id", ondelete="CASCADE"), primary_key=True)
    record_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    labeled: Mapped[bool] = mapped_column(Boolean, default=False)
    labeled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
