"""All of the tasks service's SQL.

Most of it goes through the ORM. The hot paths (a toall accept, an answer) send a few plain statements
on an asyncpg connection instead: asyncpg prepares each once per connection, and no ORM state is built
for rows the request only reads or changes in SQL.

A toall slot is taken outside the unit of work (`take_toall_slot`): every annotator's accept of the
task writes its row, whose lock is held until commit, so the statement that takes it commits in the
same round trip instead of after the service's next turn to send COMMIT.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import count, repeat
from typing import Any

import asyncpg
from sqlalchemy import and_, delete, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.tasks.models import (
    IN_PROGRESS_STATES,
    RUNNING_STATES,
    AnnotatorStats,
    Answer,
    Assignment,
    AssignmentState,
    Cursor,
    Mission,
    MissionRecord,
    OutboxOp,
    Question,
    Report,
    StandardAnswerSet,
    Task,
    TaskStatus,
    sql_in,
)
from shared.db import autocommit

TASK_COLUMNS = tuple(column.name for column in Task.__table__.columns)
# The advisory lock that serialises one annotator's accepts (their accept limit is counted across tasks)
# is this key and the user's id.
_USER_LOCK_KEY = "hashtext('tasks:user')"
_RUNNING = sql_in(RUNNING_STATES)
# Every read of tasks starts here: a deleted task is a soft delete (its row stays, out of sight).
LIVE_TASKS = select(Task).where(Task.status != TaskStatus.DELETED)

# A toall accept's reads, in one statement: the task, the caller's assignment on it (if any) and how
# many other tasks the caller has on hand.
_ACCEPT_VIEW = f"""
SELECT {", ".join(f"t.{name}" for name in TASK_COLUMNS)},
       a.state AS mine_state, a.current AS mine_current,
       (SELECT count(*) FROM tasks.assignments o
         WHERE o.user_id = $2 AND o.current AND o.state IN {_RUNNING} AND o.task_id <> t.id) AS on_hand
FROM tasks.tasks t
LEFT JOIN tasks.assignments a ON a.task_id = t.id AND a.user_id = $2
WHERE t.id = $1 AND t.status <> '{TaskStatus.DELETED}'
"""

# A toall accept's write, sent as one simple query (so without parameters: every value below is an int
# or a time the service made) that is one transaction: the annotator's lock; then, on a snapshot taken
# after it, the task row's free slot (its row lock makes racing accepts take turns), if the annotator
# never had the task and has fewer than `limit` other tasks on hand, and their assignment on it. The
# implicit COMMIT ends the query, so the row lock is held only while PostgreSQL runs it. Its status is
# "INSERT 0 1" when the slot was taken.
_TAKE_TOALL_SLOT = f"""
SELECT pg_advisory_xact_lock({_USER_LOCK_KEY}, {{user_id:d}});
WITH slot AS (
    UPDATE tasks.tasks t SET taken = taken + 1
    WHERE id = {{task_id:d}} AND status = '{TaskStatus.DISTRIBUTED}' AND strategy = 'toall' AND agent_id IS NULL
      AND taken < distribute_user_num
      AND NOT EXISTS (SELECT FROM tasks.assignments a WHERE a.task_id = t.id AND a.user_id = {{user_id:d}})
      AND (SELECT count(*) FROM tasks.assignments o
            WHERE o.user_id = {{user_id:d}} AND o.current AND o.state IN {_RUNNING} AND o.task_id <> t.id) < {{limit:d}}
    RETURNING id
)
INSERT INTO tasks.assignments (task_id, user_id, state, current, via, distributed_at, accepted_at, deadline,
                               answered, std_total, std_correct, paid_amount)
SELECT id, {{user_id:d}}, '{AssignmentState.ACCEPTED}', true, 'toall', {{moment}}, {{moment}}, {{deadline}}, 0, 0, 0, 0
FROM slot
"""


def _timestamp(moment: datetime) -> str:
    """A literal of an aware time the service made (never a client's text)."""
    assert moment.tzinfo is not None
    return f"'{moment.isoformat()}'::timestamptz"


# An answer's reads: the task, the question and the caller's assignment.
_ANSWER_VIEW = text(f"""
SELECT t.q_num, t.accept_method, q.q_id IS NOT NULL AS has_question, q.std_answer,
       a.id AS assignment_id, a.current, a.answered
FROM tasks.tasks t
LEFT JOIN tasks.questions q ON q.task_id = t.id AND q.q_id = :q_id
LEFT JOIN tasks.assignments a ON a.task_id = t.id AND a.user_id = :user_id
WHERE t.id = :task_id AND t.status <> '{TaskStatus.DELETED}'
""")

# An answer's writes: stored unless the question has a submission already (one row per question and
# annotator, so racing submissions store one), and counted on the assignment when it was stored.
_STORE_ANSWER = """
WITH stored AS (
    INSERT INTO tasks.answers AS s (task_id, user_id, q_id, started_at, submitted_at, result, input_result, answer_key)
    VALUES ($1, $2, $3, $4, $4, $5::jsonb, $6::jsonb, $7)
    ON CONFLICT (task_id, user_id, q_id) DO UPDATE
        SET submitted_at = excluded.submitted_at, result = excluded.result, input_result = excluded.input_result,
            answer_key = excluded.answer_key
        WHERE s.submitted_at IS NULL
    RETURNING q_id
)
UPDATE tasks.assignments SET answered = answered + 1, std_total = std_total + $9, std_correct = std_correct + $10
WHERE id = $8 AND EXISTS (SELECT FROM stored)
RETURNING answered
"""


@dataclass(frozen=True)
class AnswerView:
    q_num: int
    accept_method: str
    has_question: bool
    std_answer: str | None
    assignment_id: int | None  # the caller's assignment on the task, if any
    current: bool | None
    answered: int | None


@dataclass(frozen=True)
class AcceptView:
    task: Task  # not in the session: read only
    mine_state: str | None  # the caller's assignment on the task, if any
    mine_current: bool | None
    on_hand: int  # the caller's other tasks offered or accepted, not finished


class TasksRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.enqueued = False  # whether this unit of work wrote outbox ops

    async def add(self, *objects: object) -> None:
        self.session.add_all(objects)
        await self.session.flush()

    async def _fetchrow(
        self, statement: str, *args: Any, connection: asyncpg.Connection | None = None
    ) -> asyncpg.Record | None:
        """One row of `statement` on `connection` (see `own_connection`), else on this unit of work's
        asyncpg connection, inside its transaction. SQLAlchemy begins the transaction with its first
        statement, so a hot path sends that one through the session. Errors are SQLAlchemy's, as the
        service's error handler expects."""
        if connection is None:
            raw = await (await self.session.connection()).get_raw_connection()
            connection = raw.driver_connection
            assert connection is not None and connection.is_in_transaction(), "no statement through the session yet"
        try:
            return await connection.fetchrow(statement, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DBAPIError(statement, args, exc) from exc

    @contextlib.asynccontextmanager
    async def own_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool outside the unit of work, in autocommit: each statement on it is a
        transaction of its own."""
        engine = self.session.bind
        assert isinstance(engine, AsyncEngine)
        async with autocommit(engine).connect() as connection:
            raw = await connection.get_raw_connection()
            assert raw.driver_connection is not None
            yield raw.driver_connection

    async def lock_user(self, user_id: int) -> None:
        """Serialises one annotator's accepts (their accept limit is counted across tasks)."""
        connection = await self.session.connection()
        await connection.execute(text(f"SELECT pg_advisory_xact_lock({_USER_LOCK_KEY}, :id)"), {"id": user_id})

    async def accept_view(
        self, task_id: int, user_id: int, connection: asyncpg.Connection | None = None
    ) -> AcceptView | None:
        """What an accept decides on (None when the task does not exist or was deleted)."""
        row = await self._fetchrow(_ACCEPT_VIEW, task_id, user_id, connection=connection)
        if row is None:
            return None
        return AcceptView(
            Task(**{name: row[name] for name in TASK_COLUMNS}),
            row["mine_state"],
            row["mine_current"],
            int(row["on_hand"]),
        )

    async def take_toall_slot(
        self,
        connection: asyncpg.Connection,
        task_id: int,
        user_id: int,
        limit: int,
        moment: datetime,
        deadline: datetime,
    ) -> bool:
        """Takes a free slot of a distributed toall task for an annotator who never had it and has fewer
        than `limit` other tasks on hand, and records them on it, committed at once on `connection`
        (from `own_connection`). False when it did not: the caller reads why."""
        statement = _TAKE_TOALL_SLOT.format(
            task_id=task_id,
            user_id=user_id,
            limit=limit,
            moment=_timestamp(moment),
            deadline=_timestamp(deadline),
        )
        try:
            status = await connection.execute(statement)
        except asyncpg.UniqueViolationError:
            return False  # another request recorded them on the task meanwhile: nothing was written
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DBAPIError(statement, (), exc) from exc
        return bool(status == "INSERT 0 1")

    # tasks ---------------------------------------------------------------------------------------

    async def task(self, task_id: int, *, lock: bool = False) -> Task | None:
        """A task that was not deleted."""
        query = LIVE_TASKS.where(Task.id == task_id)
        if lock:  # and reload it: an unlocked read earlier in the request may be stale
            query = query.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def tasks_by_ids(self, task_ids: Iterable[int]) -> list[Task]:
        query = LIVE_TASKS.where(Task.id.in_(list(task_ids))).order_by(Task.id)
        return list((await self.session.execute(query)).scalars())

    async def tasks_of_publisher(self, user_id: int) -> list[Task]:
        query = LIVE_TASKS.where(Task.publisher_id == user_id).order_by(Task.id)
        return list((await self.session.execute(query)).scalars())

    async def tasks_of_agent(self, user_id: int) -> list[Task]:
        query = LIVE_TASKS.where(Task.agent_id == user_id).order_by(Task.id)
        return list((await self.session.execute(query)).scalars())

    async def tasks_of_annotator(self, user_id: int) -> list[Task]:
        query = (
            LIVE_TASKS.join(Assignment, Assignment.task_id == Task.id)
            .where(Assignment.user_id == user_id, Assignment.current)
            .order_by(Task.id)
        )
        return list((await self.session.execute(query)).scalars())

    async def all_tasks(self) -> list[Task]:
        query = LIVE_TASKS.order_by(Task.id)
        return list((await self.session.execute(query)).scalars())

    async def free_tasks(self, user_id: int) -> list[Task]:
        """`toall` pools with a free slot that this annotator never had."""
        had = exists().where(Assignment.task_id == Task.id, Assignment.user_id == user_id)
        query = (
            select(Task)
            .where(
                Task.status == TaskStatus.DISTRIBUTED,
                Task.strategy == "toall",
                Task.agent_id.is_(None),
                Task.taken < Task.distribute_user_num,
                ~had,
            )
            .order_by(Task.id)
        )
        return list((await self.session.execute(query)).scalars())

    async def refresh(self, obj: object) -> None:
        await self.session.refresh(obj)

    # questions -----------------------------------------------------------------------------------

    async def insert_questions(
        self,
        task_id: int,
        filenames: list[str],
        tags: list[str],
        data_types: list[str],
        standard_answers: dict[str, str],
    ) -> None:
        """One question per filename (with its tag and data type), numbered from 1, written with COPY;
        std_answer (by filename) only when the task has standard answers (otherwise the column's NULL
        default: a column less to encode and send)."""
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        columns = ["task_id", "q_id", "filename", "tag", "data_type"]
        records: Iterable[tuple[Any, ...]] = zip(repeat(task_id), count(1), filenames, tags, data_types)
        if standard_answers:
            columns.append("std_answer")
            records = zip(repeat(task_id), count(1), filenames, tags, data_types, map(standard_answers.get, filenames))
        await driver.copy_records_to_table("questions", schema_name="tasks", columns=columns, records=records)

    async def delete_questions(self, task_id: int) -> None:
        await self.session.execute(delete(Question).where(Question.task_id == task_id))

    async def question(self, task_id: int, q_id: int) -> Question | None:
        return await self.session.get(Question, (task_id, q_id))

    async def questions(self, task_id: int, offset: int = 0, limit: int | None = None) -> list[Question]:
        query = select(Question).where(Question.task_id == task_id).order_by(Question.q_id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def questions_by_ids(self, task_id: int, q_ids: Iterable[int]) -> list[Question]:
        query = (
            select(Question).where(Question.task_id == task_id, Question.q_id.in_(list(q_ids))).order_by(Question.q_id)
        )
        return list((await self.session.execute(query)).scalars())

    async def question_ids_by_filename(self, task_id: int) -> dict[str, int]:
        rows = await self.session.execute(select(Question.filename, Question.q_id).where(Question.task_id == task_id))
        return {name: q_id for name, q_id in rows.all()}

    # assignments ---------------------------------------------------------------------------------

    async def assignments(self, task_id: int) -> list[Assignment]:
        query = select(Assignment).where(Assignment.task_id == task_id).order_by(Assignment.id)
        return list((await self.session.execute(query)).scalars())

    async def assignments_of_tasks(self, task_ids: Sequence[int]) -> dict[int, list[Assignment]]:
        by_task: dict[int, list[Assignment]] = {task_id: [] for task_id in task_ids}
        if not task_ids:
            return by_task
        query = select(Assignment).where(Assignment.task_id.in_(list(task_ids))).order_by(Assignment.id)
        for assignment in (await self.session.execute(query)).scalars():
            by_task[assignment.task_id].append(assignment)
        return by_task

    async def assignment(self, task_id: int, user_id: int, *, lock: bool = False) -> Assignment | None:
        query = select(Assignment).where(Assignment.task_id == task_id, Assignment.user_id == user_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def insert_assignments(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(Assignment), rows)

    async def users_who_had(self, task_id: int) -> set[int]:
        rows = await self.session.execute(select(Assignment.user_id).where(Assignment.task_id == task_id))
        return set(rows.scalars())

    async def active_counts(self, user_ids: Sequence[int], exclude_task: int | None = None) -> dict[int, int]:
        """How many tasks each annotator has on hand (offered or accepted, not yet finished)."""
        if not user_ids:
            return {}
        conditions = [Assignment.user_id.in_(list(user_ids)), Assignment.current, Assignment.state.in_(RUNNING_STATES)]
        if exclude_task is not None:
            conditions.append(Assignment.task_id != exclude_task)
        query = select(Assignment.user_id, func.count()).where(and_(*conditions)).group_by(Assignment.user_id)
        return {user_id: int(count) for user_id, count in (await self.session.execute(query)).all()}

    async def count_reviewed(self, task_id: int, state: str) -> int:
        query = select(func.count()).where(Assignment.task_id == task_id, Assignment.current, Assignment.state == state)
        return int((await self.session.execute(query)).scalar_one())

    async def any_in_progress(self, task_id: int) -> bool:
        query = select(
            exists().where(Assignment.task_id == task_id, Assignment.current, Assignment.state.in_(IN_PROGRESS_STATES))
        )
        return bool((await self.session.execute(query)).scalar_one())

    async def mark_timeouts(self, now: datetime, limit: int = 1000) -> list[tuple[int, int]]:
        """Annotators past their deadline become `timeout`; returns (task_id, user_id) of each."""
        due = (
            select(Assignment.id)
            .where(Assignment.state.in_(RUNNING_STATES), Assignment.current, Assignment.deadline <= now)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        result = await self.session.execute(
            update(Assignment)
            .where(
                Assignment.id.in_(due),
                Assignment.state.in_(RUNNING_STATES),
                Assignment.current,
                Assignment.deadline <= now,
            )
            .values(state=AssignmentState.TIMEOUT)
            .returning(Assignment.task_id, Assignment.user_id)
            .execution_options(synchronize_session=False)
        )
        return [(task_id, user_id) for task_id, user_id in result.all()]

    # annotators' statistics ----------------------------------------------------------------------

    async def stats(self, user_ids: Sequence[int]) -> dict[int, AnnotatorStats]:
        if not user_ids:
            return {}
        query = select(AnnotatorStats).where(AnnotatorStats.user_id.in_(list(user_ids)))
        return {s.user_id: s for s in (await self.session.execute(query)).scalars()}

    async def add_stats(
        self,
        user_id: int,
        *,
        std_total: int = 0,
        std_correct: int = 0,
        accepted_answers: int = 0,
        accepted_tasks: int = 0,
    ) -> None:
        values = {
            "std_total": std_total,
            "std_correct": std_correct,
            "accepted_answers": accepted_answers,
            "accepted_tasks": accepted_tasks,
        }
        statement = insert(AnnotatorStats).values(user_id=user_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=["user_id"],
            set_={name: getattr(AnnotatorStats, name) + getattr(statement.excluded, name) for name in values},
        )
        await self.session.execute(statement)

    async def cursor(self, name: str) -> Cursor:
        await self.session.execute(insert(Cursor).values(name=name, position=0).on_conflict_do_nothing())
        query = select(Cursor).where(Cursor.name == name).with_for_update()
        return (await self.session.execute(query)).scalar_one()

    # answers -------------------------------------------------------------------------------------

    async def start_question(self, task_id: int, user_id: int, q_id: int, now: datetime) -> bool:
        """False when the question was already started (or answered) by this annotator."""
        result = await self.session.execute(
            insert(Answer)
            .values(task_id=task_id, user_id=user_id, q_id=q_id, started_at=now)
            .on_conflict_do_nothing()
            .returning(Answer.q_id)
        )
        return result.scalar_one_or_none() is not None

    async def answer_view(self, task_id: int, q_id: int, user_id: int) -> AnswerView | None:
        """What an answer is checked against (None when the task does not exist or was deleted)."""
        connection = await self.session.connection()
        row = (await connection.execute(_ANSWER_VIEW, {"task_id": task_id, "q_id": q_id, "user_id": user_id})).first()
        return None if row is None else AnswerView(*row)

    async def lock_assignment_state(self, assignment_id: int) -> str:
        """The assignment's state, its row locked (one annotator's submissions in turn)."""
        row = await self._fetchrow("SELECT state FROM tasks.assignments WHERE id = $1 FOR UPDATE", assignment_id)
        assert row is not None  # assignments are never deleted
        return str(row["state"])

    async def store_answer(
        self,
        assignment_id: int,
        task_id: int,
        user_id: int,
        q_id: int,
        result: Any,
        input_result: Any,
        answer_key: str,
        now: datetime,
        std_answer: str | None,
    ) -> int | None:
        """Stores and counts an answer; returns the assignment's answers so far, or None when the
        question was answered already."""
        std_total, std_correct = (0, 0) if std_answer is None else (1, int(std_answer == answer_key))
        row = await self._fetchrow(
            _STORE_ANSWER,
            task_id,
            user_id,
            q_id,
            now,
            json.dumps(result),
            json.dumps(input_result),
            answer_key,
            assignment_id,
            std_total,
            std_correct,
        )
        return None if row is None else int(row["answered"])

    async def submit_answer(
        self, task_id: int, user_id: int, q_id: int, result: Any, input_result: Any, answer_key: str, now: datetime
    ) -> bool:
        """Stores the answer unless one is stored already (then False): one row per question and
        annotator, so two submissions racing each other store one."""
        statement = insert(Answer).values(
            task_id=task_id,
            user_id=user_id,
            q_id=q_id,
            started_at=now,
            submitted_at=now,
            result=result,
            input_result=input_result,
            answer_key=answer_key,
        )
        upsert = statement.on_conflict_do_update(
            index_elements=["task_id", "user_id", "q_id"],
            set_={
                "submitted_at": statement.excluded.submitted_at,
                "result": statement.excluded.result,
                "input_result": statement.excluded.input_result,
                "answer_key": statement.excluded.answer_key,
            },
            where=Answer.submitted_at.is_(None),
        ).returning(Answer.q_id)
        return (await self.session.execute(upsert)).scalar_one_or_none() is not None

    async def answer(self, task_id: int, user_id: int, q_id: int) -> Answer | None:
        return await self.session.get(Answer, (task_id, user_id, q_id))

    async def answers_of(self, task_id: int, user_id: int, q_ids: Sequence[int] | None = None) -> list[Answer]:
        query = select(Answer).where(Answer.task_id == task_id, Answer.user_id == user_id)
        if q_ids is not None:
            query = query.where(Answer.q_id.in_(list(q_ids)))
        return list((await self.session.execute(query.order_by(Answer.q_id))).scalars())

    async def answers_to(self, task_id: int, q_id: int) -> list[Answer]:
        query = (
            select(Answer)
            .where(Answer.task_id == task_id, Answer.q_id == q_id, Answer.submitted_at.is_not(None))
            .order_by(Answer.user_id)
        )
        return list((await self.session.execute(query)).scalars())

    async def submitted_answers(self, task_id: int, user_ids: Sequence[int]) -> list[tuple[int, int, str, Any, Any]]:
        """(q_id, user_id, answer_key, result, input_result) of the given annotators, by question."""
        if not user_ids:
            return []
        query = (
            select(Answer.q_id, Answer.user_id, Answer.answer_key, Answer.result, Answer.input_result)
            .where(Answer.task_id == task_id, Answer.user_id.in_(list(user_ids)), Answer.submitted_at.is_not(None))
            .order_by(Answer.q_id, Answer.user_id)
        )
        return [tuple(row) for row in (await self.session.execute(query)).all()]

    # standard answers ----------------------------------------------------------------------------

    async def standard_answers(self, tag: str) -> StandardAnswerSet | None:
        return await self.session.get(StandardAnswerSet, tag)

    # reports -------------------------------------------------------------------------------------

    async def upsert_report(
        self, task_id: int, reporter_id: int, reportee_id: int, tagger_id: int, reason: str
    ) -> None:
        statement = insert(Report).values(
            task_id=task_id,
            reporter_id=reporter_id,
            reportee_id=reportee_id,
            tagger_id=tagger_id,
            reason=reason,
            status="pending",
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["task_id", "reporter_id", "reportee_id"],
                set_={
                    "reason": statement.excluded.reason,
                    "status": "pending",
                    "decided_at": None,
                    "created_at": func.now(),
                },
            )
        )

    async def pending_reports(self) -> list[Report]:
        query = select(Report).where(Report.status == "pending").order_by(Report.id)
        return list((await self.session.execute(query)).scalars())

    async def reports_for(self, task_id: int, user_id: int, reportee_id: int | None) -> list[Report]:
        """Pending reports of a task that `user_id` made (or, failing that, that name them as the tagger)."""
        for column in (Report.reporter_id, Report.tagger_id):
            query = select(Report).where(Report.task_id == task_id, Report.status == "pending", column == user_id)
            if reportee_id is not None:
                query = query.where(Report.reportee_id == reportee_id)
            found = list((await self.session.execute(query.order_by(Report.id).with_for_update())).scalars())
            if found:
                return found
        return []

    async def delete_reports(self, report_ids: Sequence[int]) -> None:
        await self.session.execute(delete(Report).where(Report.id.in_(list(report_ids))))

    # outbox --------------------------------------------------------------------------------------

    async def enqueue(self, **values: Any) -> None:
        """An op to send after commit; an op with the same key is already there (a retry): nothing."""
        self.enqueued = True
        await self.session.execute(insert(OutboxOp).values(**values).on_conflict_do_nothing(index_elements=["key"]))

    async def due_ops(self, now: datetime, limit: int) -> list[OutboxOp]:
        """The first pending op of each group, when due, locked (other replicas skip it)."""
        earlier = OutboxOp.__table__.alias("earlier")
        blocked = exists().where(
            earlier.c.grp == OutboxOp.grp, earlier.c.status == "pending", earlier.c.id < OutboxOp.id
        )
        query = (
            select(OutboxOp)
            .where(OutboxOp.status == "pending", OutboxOp.next_attempt_at <= now, ~blocked)
            .order_by(OutboxOp.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.execute(query)).scalars())

    # missions (001) ------------------------------------------------------------------------------

    async def mission(self, mission_id: int, *, lock: bool = False) -> Mission | None:
        query = select(Mission).where(Mission.id == mission_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def missions(
        self, *, expert_id: int | None = None, manager_id: int | None = None, dataset_id: int | None = None
    ) -> list[Mission]:
        conditions = []
        if expert_id is not None:
            conditions.append(Mission.expert_id == expert_id)
        if manager_id is not None:
            conditions.append(Mission.manager_id == manager_id)
        if dataset_id is not None:
            conditions.append(Mission.dataset_id == dataset_id)
        query = select(Mission).where(and_(*conditions)).order_by(Mission.id)
        return list((await self.session.execute(query)).scalars())

    async def area_in_progress(self, dataset_id: int, area: str) -> bool:
        query = select(
            exists().where(Mission.dataset_id == dataset_id, Mission.area == area, Mission.status == "标注中")
        )
        return bool((await self.session.execute(query)).scalar_one())

    async def lock_dataset(self, dataset_id: int) -> None:
        """Serialises assignments of one dataset (two managers splitting one area at once)."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('tasks:dataset'), :id)"), {"id": dataset_id}
        )

    async def insert_mission_records(self, mission_id: int, record_ids: Sequence[int]) -> None:
        if record_ids:
            await self.session.execute(
                insert(MissionRecord), [{"mission_id": mission_id, "record_id": r} for r in record_ids]
            )

    async def mission_records(self, mission_id: int, *, labeled: bool | None = None) -> list[MissionRecord]:
        query = select(MissionRecord).where(MissionRecord.mission_id == mission_id)
        if labeled is not None:
            query = query.where(MissionRecord.labeled == labeled)
        return list((await self.session.execute(query.order_by(MissionRecord.record_id))).scalars())

    async def move_unlabeled(self, mission_id: int) -> list[int]:
        """Takes the unlabelled records off a mission (handed over); returns their ids in order."""
        result = await self.session.execute(
            delete(MissionRecord)
            .where(MissionRecord.mission_id == mission_id, ~MissionRecord.labeled)
            .returning(MissionRecord.record_id)
        )
        return sorted(result.scalars())

    async def active_record(self, record_id: int, expert_id: int) -> tuple[Mission, MissionRecord] | None:
        """The record in one of this expert's missions in progress, locked."""
        query = (
            select(Mission, MissionRecord)
            .join(MissionRecord, MissionRecord.mission_id == Mission.id)
            .where(MissionRecord.record_id == record_id, Mission.expert_id == expert_id, Mission.status == "标注中")
            .with_for_update()
        )
        row = (await self.session.execute(query)).first()
        return None if row is None else (row[0], row[1])

    async def assignments_of_dataset(self, dataset_id: int) -> list[tuple[str, str]]:
        """(area, expert_name) of the missions that own their records (not handed over)."""
        query = (
            select(Mission.area, Mission.expert_name)
            .where(Mission.dataset_id == dataset_id, Mission.status != "已移交")
            .order_by(Mission.id)
        )
        return [(area, name) for area, name in (await self.session.execute(query)).all()]

    async def dataset_complete(self, dataset_id: int) -> bool:
        query = select(exists().where(Mission.dataset_id == dataset_id, Mission.status == "标注中"))
        return not bool((await self.session.execute(query)).scalar_one())

    async def missions_of_dataset_areas(self, dataset_id: int) -> set[str]:
        query = select(Mission.area).where(Mission.dataset_id == dataset_id, Mission.status != "已移交")
        return set((await self.session.execute(query)).scalars())
