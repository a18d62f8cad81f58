"""Who labels a task: distribution by strategy, the agent's hand-picking, accept, refuse and
redistribute.

- `toall`: distribution opens a pool of distribute_user_num slots; eligible annotators take one with
  accept until none is left. The slot count is one conditional UPDATE (`taken < distribute_user_num`)
  on the task row, so however many accept at once, exactly distribute_user_num get in.
- `order`: the next eligible annotators by user id after a deployment-wide cursor (round robin), so
  successive tasks go to successive annotators.
- `smart`: eligible annotators ranked by credit score, accuracy on standard answers (Laplace-smoothed:
  a newcomer counts as 50%) and experience (accepted answers, log-scaled).

Eligible (003's membership and credit rules): a `tag` user who is not banned, whose credit score is at
least `min_credit_score`, who never had this task (neither now nor in its past list), and who has fewer
tasks on hand (offered or accepted, not finished) than their membership level allows.

Distribution makes the task's escrow hold reward_per_q x q_num x distribute_user_num of the publisher's
points. The hold is the last step before the commit, and auth sets the escrow to that amount, moving only
the difference: should the commit fail after auth moved the points, the next distribute counts them,
even for a task edited in between (a new amount). Its key names the checked version of the task
(`task:<id>:hold:<updated_at in microseconds>`), so a replay of the same version moves nothing even once
payouts have drawn on the escrow. Should the publisher instead delete the task, its refund returns the
points.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.tasks import outbox
from services.tasks.errors import (
    AcceptLimit,
    DistributionCompleted,
    NoDistributePermission,
    NoPermissionToAccept,
    RefusedTask,
    RepeatAccept,
    TagUserNotEnough,
    TaskDistributed,
    TaskDoesNotExist,
    TaskNotChecked,
    TaskNotDistributed,
    not_created,
)
from services.tasks.lifecycle import ensure_checked_requester, now
from services.tasks.models import (
    RUNNING_STATES,
    AnnotatorStats,
    Assignment,
    AssignmentState,
    CheckResult,
    Task,
    TaskStatus,
)
from services.tasks.peers import AuthClient, Profile
from services.tasks.repository import AcceptView, TasksRepository
from services.tasks.settings import TasksSettings
from shared.errors import InvalidRequest, NoPermission, UserBanned
from shared.identity import Identity

# Tasks an annotator may have on hand at once, by membership level (0 none, 1 silver, 2 gold, 3 diamond).
ACCEPT_LIMITS = {0: 3, 1: 5, 2: 10, 3: 20}
# Smart ranking weights: credit score, accuracy on standard answers, experience.
SMART_WEIGHTS = (0.5, 0.35, 0.15)
EXPERIENCE_SCALE = 1000  # accepted answers at which experience counts in full
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def accept_limit(profile: Profile) -> int:
    return ACCEPT_LIMITS.get(int(profile.get("membership_level") or 0), ACCEPT_LIMITS[0])


def eligible(profile: Profile, settings: TasksSettings) -> bool:
    return (
        profile.get("user_type") == "tag"
        and not profile.get("is_banned")
        and int(profile.get("credit_score") or 0) >= settings.min_credit_score
    )


def smart_score(profile: Profile, stats: AnnotatorStats | None) -> float:
    credit = min(max(int(profile.get("credit_score") or 0), 0), 100) / 100
    total, correct = (stats.std_total, stats.std_correct) if stats else (0, 0)
    accuracy = (correct + 1) / (total + 2)
    answers = stats.accepted_answers if stats else 0
    experience = min(1.0, math.log1p(answers) / math.log1p(EXPERIENCE_SCALE))
    w_credit, w_accuracy, w_experience = SMART_WEIGHTS
    return w_credit * credit + w_accuracy * accuracy + w_experience * experience


async def candidates(repo: TasksRepository, auth: AuthClient, settings: TasksSettings, task: Task) -> list[Profile]:
    """Eligible annotators for `task`, in user id order."""
    had = await repo.users_who_had(task.id)
    pool = [
        p
        for p in await auth.annotators()
        if eligible(p, settings) and int(p["user_id"]) not in had and int(p["user_id"]) != task.publisher_id
    ]
    on_hand = await repo.active_counts([int(p["user_id"]) for p in pool])
    return [p for p in pool if on_hand.get(int(p["user_id"]), 0) < accept_limit(p)]


async def choose(repo: TasksRepository, task: Task, pool: list[Profile], count: int) -> list[int]:
    if count <= 0 or not pool:
        return []
    if task.strategy == "smart":
        stats = await repo.stats([int(p["user_id"]) for p in pool])
        ranked = sorted(pool, key=lambda p: (-smart_score(p, stats.get(int(p["user_id"]))), int(p["user_id"])))
        return [int(p["user_id"]) for p in ranked[:count]]
    # order: round robin over user ids, continuing after the last annotator served.
    cursor = await repo.cursor("order")
    ids = sorted(int(p["user_id"]) for p in pool)
    after = [i for i in ids if i > cursor.position]
    chosen = (after + [i for i in ids if i <= cursor.position])[:count]
    if chosen:
        cursor.position = chosen[-1]
    return chosen


async def fill(
    repo: TasksRepository, auth: AuthClient, settings: TasksSettings, task: Task, vacancies: int, moment: datetime
) -> int:
    """Offers up to `vacancies` slots of an `order`/`smart` task; returns how many found an annotator."""
    if vacancies <= 0:
        return 0
    chosen = await choose(repo, task, await candidates(repo, auth, settings, task), vacancies)
    deadline = moment + timedelta(seconds=task.total_time_limit)
    await repo.insert_assignments(
        [
            {
                "task_id": task.id,
                "user_id": user_id,
                "state": AssignmentState.NOT_HANDLE,
                "current": True,
                "via": task.strategy,
                "distributed_at": moment,
                "deadline": deadline,
                "answered": 0,
                "std_total": 0,
                "std_correct": 0,
                "paid_amount": 0,
            }
            for user_id in chosen
        ]
    )
    task.taken += len(chosen)
    return len(chosen)


async def _distributable(repo: TasksRepository, auth: AuthClient, identity: Identity, task_id: int) -> Task:
    task = await repo.task(task_id, lock=True)
    if task is None:
        raise not_created(400)
    if task.publisher_id != identity.user_id:
        raise NoDistributePermission()
    if task.status != TaskStatus.CREATED:
        raise TaskDistributed()
    if task.check_result == CheckResult.REFUSE:
        raise RefusedTask()
    if task.check_result != CheckResult.ACCEPT:
        raise TaskNotChecked()
    await ensure_checked_requester(auth, identity)
    return task


def hold_key(task: Task) -> str:
    """The idempotency key of the task's hold: its version (an edit and the admin's check each set
    updated_at, and only a checked version is distributed), never the amount."""
    version = (task.updated_at - EPOCH) // timedelta(microseconds=1)
    return f"task:{task.id}:hold:{version}"


async def _hold(repo: TasksRepository, auth: AuthClient, settings: TasksSettings, task: Task, moment: datetime) -> None:
    amount = task.reward_per_q * task.q_num * task.distribute_user_num
    await auth.hold(task.id, task.publisher_id, amount, hold_key(task))
    task.status = TaskStatus.DISTRIBUTED
    task.held_amount = amount
    task.distributed_at = moment
    await outbox.grow_value(repo, task.publisher_id, settings.grow_value_per_task, f"task:{task.id}:grow:publish")


async def distribute(
    repo: TasksRepository, auth: AuthClient, settings: TasksSettings, identity: Identity, task_id: int
) -> dict[str, Any]:
    task = await _distributable(repo, auth, identity, task_id)
    moment = now()
    placed = 0
    if task.strategy != "toall":
        placed = await fill(repo, auth, settings, task, task.distribute_user_num, moment)
    await _hold(repo, auth, settings, task, moment)  # last: see the module's docstring
    return {"distributed": placed, "vacancies": task.distribute_user_num - task.taken}


async def to_agent(
    repo: TasksRepository, auth: AuthClient, settings: TasksSettings, identity: Identity, task_id: int, agent_id: int
) -> Task:
    task = await _distributable(repo, auth, identity, task_id)
    agent = await auth.user(agent_id)
    if agent is None or agent.get("user_type") != "agent" or agent.get("is_banned"):
        raise InvalidRequest("invalid request: agent_id is not an agent's user id")
    task.agent_id = agent_id
    await _hold(repo, auth, settings, task, now())
    return task


async def distribute_to_user(
    repo: TasksRepository, auth: AuthClient, settings: TasksSettings, identity: Identity, task_id: int, user_id: int
) -> Assignment:
    task = await repo.task(task_id, lock=True)
    if task is None:
        raise not_created()
    if identity.role != "agent" or task.agent_id != identity.user_id:
        raise NoDistributePermission()
    if task.status != TaskStatus.DISTRIBUTED:
        raise TaskNotDistributed()
    annotator = await auth.user(user_id)
    if annotator is None or not eligible(annotator, settings):
        raise InvalidRequest("invalid request: the user is not an annotator who may take tasks")
    if user_id in await repo.users_who_had(task.id):
        raise InvalidRequest("invalid request: the user already had this task")
    if (await repo.active_counts([user_id])).get(user_id, 0) >= accept_limit(annotator):
        raise AcceptLimit()
    if task.taken >= task.distribute_user_num:
        raise DistributionCompleted()
    moment = now()
    task.taken += 1
    assignment = Assignment(
        task_id=task.id,
        user_id=user_id,
        state=AssignmentState.NOT_HANDLE,
        current=True,
        via="agent",
        distributed_at=moment,
        deadline=moment + timedelta(seconds=task.total_time_limit),
        answered=0,
        std_total=0,
        std_correct=0,
        paid_amount=0,
    )
    await repo.add(assignment)
    return assignment


def _check_task(view: AcceptView | None) -> AcceptView:
    if view is None:
        raise TaskDoesNotExist()
    if view.task.status == TaskStatus.FINISHED:
        raise DistributionCompleted()
    if view.task.status != TaskStatus.DISTRIBUTED:
        raise NoPermissionToAccept()
    return view


def _check_acceptor(me: Profile | None, settings: TasksSettings) -> Profile:
    if me is None:
        raise NoPermissionToAccept()
    if me.get("is_banned"):
        raise UserBanned()
    if not eligible(me, settings):
        raise NoPermissionToAccept()
    return me


def _check_toall(view: AcceptView, me: Profile) -> None:
    if view.task.strategy != "toall" or view.task.agent_id is not None:
        raise NoPermissionToAccept()  # not offered to this annotator
    if view.on_hand >= accept_limit(me):
        raise AcceptLimit()


async def accept(
    repo: TasksRepository, auth: AuthClient, settings: TasksSettings, identity: Identity, task_id: int
) -> tuple[Task, Assignment]:
    """The annotator accepts a task offered to them, or takes a free slot of a toall task. A toall accept
    is two statements outside the unit of work, each on a connection held just for it: one read, and
    one write that takes the annotator's lock and the task row's free slot and commits at once
    (services/tasks/repository.py)."""
    if identity.role != "tag":
        raise NoPermissionToAccept()
    # The caller's profile is fetched while the database answers; it is looked at in the same order as
    # ever (a task that does not exist is that error, whatever auth says).
    profile = asyncio.create_task(auth.user(identity.user_id))
    try:
        async with repo.own_connection() as connection:
            view = _check_task(await repo.accept_view(task_id, identity.user_id, connection))
        # Auth is awaited without a connection: 32 accepts at once would otherwise hold 32 of the pool.
        me = _check_acceptor(await profile, settings)
    finally:
        if not profile.done():
            profile.cancel()
        elif not profile.cancelled():
            profile.exception()  # retrieved: after the task's own error, auth's does not matter
    if view.mine_state is not None:
        return await _accept_offered(repo, view.task, me, identity.user_id)
    async with repo.own_connection() as connection:
        return await _take_toall_slot(repo, connection, view, me, identity.user_id)


async def _take_toall_slot(
    repo: TasksRepository, connection: asyncpg.Connection, view: AcceptView, me: Profile, user_id: int
) -> tuple[Task, Assignment]:
    _check_toall(view, me)
    task = view.task
    moment = now()
    deadline = moment + timedelta(seconds=task.total_time_limit)
    if not await repo.take_toall_slot(connection, task.id, user_id, accept_limit(me), moment, deadline):
        # Something changed since the read (the write checks it all again under the locks): what.
        view = _check_task(await repo.accept_view(task.id, user_id, connection))
        if view.mine_state is not None:
            raise RepeatAccept() if view.mine_current else NoPermissionToAccept()
        _check_toall(view, me)
        raise DistributionCompleted()
    return task, Assignment(
        task_id=task.id,
        user_id=user_id,
        state=AssignmentState.ACCEPTED,
        current=True,
        via="toall",
        distributed_at=moment,
        accepted_at=moment,
        deadline=deadline,
        answered=0,
        std_total=0,
        std_correct=0,
        paid_amount=0,
    )


async def _accept_offered(repo: TasksRepository, task: Task, me: Profile, user_id: int) -> tuple[Task, Assignment]:
    """The annotator accepts the assignment they were offered, in the unit of work."""
    await repo.lock_user(user_id)
    mine = await repo.assignment(task.id, user_id, lock=True)
    assert mine is not None  # assignments are never deleted
    if mine.current and mine.state == AssignmentState.NOT_HANDLE:
        on_hand = (await repo.active_counts([user_id], exclude_task=task.id)).get(user_id, 0)
        if on_hand >= accept_limit(me):
            raise AcceptLimit()
        moment = now()
        mine.state, mine.accepted_at, mine.deadline = (
            AssignmentState.ACCEPTED,
            moment,
            moment + timedelta(seconds=task.total_time_limit),
        )
        return task, mine
    if mine.current:
        raise RepeatAccept()
    raise NoPermissionToAccept()  # refused, timed out or replaced: the past list never comes back


async def refuse(
    repo: TasksRepository, auth: AuthClient, settings: TasksSettings, identity: Identity, task_id: int
) -> dict[str, Any]:
    """The annotator gives the task back: their slot goes to the next annotator (order, smart), back
    to the pool (toall) or to the agent. Refusing a pool task not taken hides it from them."""
    if identity.role != "tag":
        raise NoPermission()
    task = await repo.task(task_id, lock=True)
    if task is None:
        raise TaskDoesNotExist()
    moment = now()
    mine = await repo.assignment(task.id, identity.user_id, lock=True)
    if mine is None:
        if task.status == TaskStatus.DISTRIBUTED and task.strategy == "toall" and task.agent_id is None:
            await repo.add(
                Assignment(
                    task_id=task.id,
                    user_id=identity.user_id,
                    state=AssignmentState.REFUSED,
                    current=False,
                    via="toall",
                    distributed_at=moment,
                    refused_at=moment,
                    left_at=moment,
                    answered=0,
                    std_total=0,
                    std_correct=0,
                    paid_amount=0,
                )
            )
            return {"replaced_by": None}
        raise NoPermission("no permission: the task was not distributed to you")
    if not (mine.current and mine.state in RUNNING_STATES):
        raise InvalidRequest("invalid request: the task is no longer yours to refuse")
    mine.state, mine.current, mine.refused_at, mine.left_at = AssignmentState.REFUSED, False, moment, moment
    task.taken -= 1
    await repo.session.flush()
    replaced = 0
    if task.strategy != "toall" and task.agent_id is None and task.status == TaskStatus.DISTRIBUTED:
        replaced = await fill(repo, auth, settings, task, 1, moment)
    return {"replaced": replaced}


async def redistribute(
    repo: TasksRepository, auth: AuthClient, settings: TasksSettings, identity: Identity, task_id: int
) -> dict[str, Any]:
    """Replaces the timed-out and the review-refused annotators (they join the past list) and fills
    the free slots: by strategy, back into the pool (toall), or left to the agent."""
    task = await repo.task(task_id, lock=True)
    if task is None:
        raise not_created()
    if task.publisher_id != identity.user_id:
        raise NoDistributePermission()
    await ensure_checked_requester(auth, identity)
    if task.status != TaskStatus.DISTRIBUTED:
        raise TaskNotDistributed()
    moment = now()
    leaving = [
        a
        for a in await repo.assignments(task.id)
        if a.current and a.state in (AssignmentState.TIMEOUT, AssignmentState.REVIEW_REFUSED)
    ]
    for assignment in leaving:
        assignment.current, assignment.left_at = False, moment
    task.taken -= len(leaving)
    await repo.session.flush()
    vacancies = task.distribute_user_num - task.taken
    placed = 0
    if task.strategy != "toall" and task.agent_id is None and vacancies > 0:
        placed = await fill(repo, auth, settings, task, vacancies, moment)
        if placed == 0:
            raise TagUserNotEnough()
    return {"removed": len(leaving), "distributed": placed, "vacancies": task.distribute_user_num - task.taken}
