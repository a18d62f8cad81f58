"""A task's life and an annotator's on it (services/tasks/lifecycle.py's two diagrams): the transitions
each step allows and those it refuses, the admin's check, deletion, finishing, and the time-out worker
(services/tasks/timeouts.py) with the redistribution that follows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.tasks import lifecycle, review
from services.tasks.errors import (
    DeleteDistributed,
    NoAccessPermission,
    NoDistributePermission,
    NoPermissionToAccept,
    NoPermissionToDelete,
    NoPermissionToModify,
    Recheck,
    RefusedTask,
    RepeatAccept,
    ScoreNotEnough,
    TaskDistributed,
    TaskDoesNotExist,
    TaskNameFormat,
    TaskNotChecked,
    TimeOrRewardFormat,
    UserNotChecked,
)
from services.tasks.models import Assignment, AssignmentState, CheckResult, Task, TaskStatus
from services.tasks.schemas import TaskBody
from services.tasks.timeouts import TimeoutWorker
from shared.errors import InvalidRequest, NoPermission, UserBanned
from shared.identity import Identity
from shared.redis import Keys
from tests.conftest import unique
from tests.tasks.conftest import ADMIN, World


def check(world: World, who: Identity, task_id: int, result: str):
    return world.call(lifecycle.check(world.repo, who, task_id, result))


def delete(world: World, who: Identity, task_id: int):
    return world.call(lifecycle.delete(world.repo, who, task_id))


def modify(world: World, who: Identity, task_id: int, **fields):
    body = {
        "task_type": "text",
        "reward_per_q": 5,
        "time_limit_per_q": 60,
        "total_time_limit": 3600,
        "distribute_user_num": 2,
        "task_name": "renamed task",
        "accept_method": "manual",
        "strategy": "toall",
        "files": [{"filename": "1.txt", "tag": "101"}],
        **fields,
    }
    return world.call(lifecycle.modify(world.repo, world.auth_client, who, task_id, TaskBody(**body)))


async def run_out_of_time(world: World, task_id: int, *user_ids: int) -> None:
    async def past_deadline() -> None:
        for user_id in user_ids:
            (await world.assignment(task_id, user_id)).deadline = lifecycle.now() - timedelta(seconds=1)

    await world.call(past_deadline())


@pytest_asyncio.fixture
async def timeouts(world: World, backing) -> AsyncIterator[TimeoutWorker]:
    """The time-out worker on the test's connection (its scan commits: a savepoint here)."""
    redis = Redis.from_url(backing.redis_url)  # the lease is not taken: the tests call scan() themselves
    yield TimeoutWorker(world.sessionmaker, redis, Keys(unique("labelhive_unit_")), 1.0, 15.0)
    await redis.aclose()


# The task ----------------------------------------------------------------------------------------


async def test_a_created_task_waits_for_the_admins_check_once(world: World):
    publisher = world.requester()
    task = await world.created(publisher, q_num=2)
    assert (task.status, task.check_result, task.q_num, task.taken) == (TaskStatus.CREATED, CheckResult.WAIT, 2, 0)
    questions = await world.repo.questions(task.id)
    assert [(q.q_id, q.filename, q.data_type) for q in questions] == [(1, "1.txt", "text"), (2, "2.txt", "text")]
    task_id = task.id

    with pytest.raises(NoPermission):
        await check(world, publisher, task_id, "accept")
    with pytest.raises(InvalidRequest):
        await check(world, ADMIN, task_id, "maybe")
    assert (await check(world, ADMIN, task_id, "refuse")).check_result == CheckResult.REFUSE
    with pytest.raises(Recheck):
        await check(world, ADMIN, task_id, "accept")


async def test_distribution_needs_an_accepted_check_and_a_checked_requester(world: World):
    publisher = world.requester()
    world.annotators(2)
    task_id = (await world.created(publisher, strategy="order")).id

    with pytest.raises(TaskNotChecked):
        await world.distribute(publisher, task_id)
    await check(world, ADMIN, task_id, "refuse")
    with pytest.raises(RefusedTask):
        await world.distribute(publisher, task_id)

    accepted = await world.checked(publisher, strategy="order")
    with pytest.raises(NoDistributePermission):
        await world.distribute(world.requester(), accepted)
    world.auth.users[publisher.user_id]["is_banned"] = True
    with pytest.raises(UserBanned):
        await world.distribute(publisher, accepted)
    world.auth.users[publisher.user_id].update(is_banned=False, is_checked=False)
    with pytest.raises(UserNotChecked):
        await world.distribute(publisher, accepted)
    assert (await world.task(accepted)).status == TaskStatus.CREATED
    assert await world.repo.assignments(accepted) == []


async def test_a_task_is_modified_only_before_distribution_and_is_checked_again(world: World):
    publisher = world.requester(score=10)
    task_id = await world.checked(publisher, strategy="order")

    modified = await modify(world, publisher, task_id, reward_per_q=5, distribute_user_num=2)
    assert (modified.task_name, modified.q_num, modified.check_result) == ("renamed task", 1, CheckResult.WAIT)
    assert [q.filename for q in await world.repo.questions(task_id)] == ["1.txt"]
    with pytest.raises(ScoreNotEnough):  # 5 x 1 x 3 > 10 points
        await modify(world, publisher, task_id, distribute_user_num=3)
    with pytest.raises(NoPermissionToModify):
        await modify(world, world.requester(), task_id)

    await check(world, ADMIN, task_id, "accept")
    world.annotators(2)
    await world.distribute(publisher, task_id)
    with pytest.raises(NoPermissionToModify) as refused:
        await modify(world, publisher, task_id)
    assert refused.value.data == {"reason": "task has been distributed"}
    with pytest.raises(TaskDistributed):
        await world.distribute(publisher, task_id)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"task_name": "abc"}, TaskNameFormat),
        ({"task_name": "    "}, TaskNameFormat),
        ({"total_time_limit": 30}, TimeOrRewardFormat),  # shorter than one question's limit
        ({"reward_per_q": 0}, TimeOrRewardFormat),
        ({"reward_per_q": True}, TimeOrRewardFormat),
        ({"strategy": "random"}, InvalidRequest),
        ({"files": [{"filename": "1.txt", "tag": "101"}, {"filename": "1.txt", "tag": "102"}]}, InvalidRequest),
        ({"files": [{"filename": "1.txt", "tag": "http://elsewhere/x.jpg"}]}, InvalidRequest),
        ({"accept_method": "auto"}, InvalidRequest),  # without standard answers
    ],
)
async def test_a_task_body_is_checked_before_anything_is_stored(world: World, fields, error):
    publisher = world.requester()
    with pytest.raises(error):
        await world.created(publisher, **fields)
    assert await world.repo.tasks_of_publisher(publisher.user_id) == []


async def test_the_publisher_deletes_a_task_only_once_nobody_works_on_it(world: World):
    publisher = world.requester()
    worker = world.annotator()
    task_id = await world.distributed(publisher, strategy="toall", distribute_user_num=1, q_num=1)
    await world.accept(worker, task_id)

    with pytest.raises(NoPermissionToDelete):
        await delete(world, world.requester(), task_id)
    with pytest.raises(DeleteDistributed):
        await delete(world, publisher, task_id)
    await world.answer(worker, task_id, {1: "cat"})
    with pytest.raises(DeleteDistributed):  # finished work still waits for its review
        await delete(world, publisher, task_id)
    await world.call(review.review(world.repo, world.settings, publisher, task_id, worker.user_id, "accept"))
    assert (await world.task(task_id)).status == TaskStatus.FINISHED

    await delete(world, publisher, task_id)

    assert await world.repo.task(task_id) is None  # a soft delete: out of sight, the row stays
    row = (await world.session.execute(select(Task).where(Task.id == task_id))).scalar_one()
    assert (row.status, row.deleted_at is not None) == (TaskStatus.DELETED, True)
    kinds = [(op.kind, op.key) for op in await world.outbox(task_id)]
    assert kinds[-2:] == [("refund", f"task:{task_id}:refund:finish"), ("refund", f"task:{task_id}:refund:delete")]


async def test_an_admin_deletes_a_running_task_and_its_annotators_leave(world: World):
    publisher = world.requester()
    offered_to = world.annotators(2)
    task_id = await world.distributed(publisher, strategy="order", distribute_user_num=2)
    await world.accept(offered_to[0], task_id)

    await delete(world, ADMIN, task_id)

    rows = (
        await world.session.execute(select(Assignment).where(Assignment.task_id == task_id).order_by(Assignment.id))
    ).scalars()
    assert [(a.state, a.current, a.left_at is not None) for a in rows] == [
        (AssignmentState.ACCEPTED, False, True),
        (AssignmentState.NOT_HANDLE, False, True),
    ]
    deleted = (await world.session.execute(select(Task).where(Task.id == task_id))).scalar_one()
    assert (deleted.status, deleted.taken) == (TaskStatus.DELETED, 0)
    assert [op.key for op in await world.outbox(task_id)] == [f"task:{task_id}:refund:delete"]
    assert await world.repo.active_counts([a.user_id for a in offered_to]) == {}
    with pytest.raises(TaskDoesNotExist):  # a deleted task is out of sight
        await world.accept(offered_to[1], task_id)


async def test_a_task_finishes_only_when_every_slot_is_review_accepted(world: World):
    publisher = world.requester()
    a, b = world.annotators(2)
    task_id = await world.distributed(publisher, strategy="toall", distribute_user_num=2, q_num=1)
    for annotator in (a, b):
        await world.accept(annotator, task_id)
        await world.answer(annotator, task_id, {1: "cat"})
    await world.call(review.review(world.repo, world.settings, publisher, task_id, a.user_id, "accept"))
    await world.call(review.review(world.repo, world.settings, publisher, task_id, b.user_id, "refuse"))

    assert await world.call(lifecycle.finish_if_complete(world.repo, await world.task(task_id))) is False
    assert (await world.task(task_id)).status == TaskStatus.DISTRIBUTED
    assert [op.kind for op in await world.outbox(task_id)] == ["payout"]


async def test_the_database_refuses_a_state_the_enum_does_not_name(world: World):
    publisher = world.requester()
    task_id = await world.distributed(publisher, strategy="toall")
    world.session.add(Assignment(task_id=task_id, user_id=5, state="paused", current=True, via="toall"))
    with pytest.raises(IntegrityError, match="ck_assignments_known_state"):
        await world.session.flush()
    await world.session.rollback()
    assert {str(s) for s in AssignmentState} >= {"not_handle", "accepted", "timeout", "review_accepted"}


# The annotator on it -----------------------------------------------------------------------------


async def test_an_annotators_finished_work_can_no_longer_be_refused_or_redone(world: World):
    publisher = world.requester()
    worker = world.annotator()
    task_id = await world.distributed(publisher, strategy="toall", distribute_user_num=1, q_num=2)
    await world.accept(worker, task_id)
    assert (await world.answer(worker, task_id, {1: "cat"}))["state"] == AssignmentState.ACCEPTED
    assert (await world.answer(worker, task_id, {2: "dog"}))["state"] == AssignmentState.FINISHED

    with pytest.raises(InvalidRequest, match="no longer yours"):
        await world.refuse(worker, task_id)
    with pytest.raises(RepeatAccept):
        await world.accept(worker, task_id)
    mine = await world.assignment(task_id, worker.user_id)
    assert (mine.state, mine.answered, mine.finished_at is not None) == (AssignmentState.FINISHED, 2, True)


async def test_the_time_out_worker_marks_running_annotators_past_their_deadline(world: World, timeouts):
    publisher = world.requester()
    offered, accepted, done, in_time = world.annotators(4)
    task_id = await world.distributed(publisher, strategy="order", distribute_user_num=4, q_num=1)
    for annotator in (accepted, done, in_time):
        await world.accept(annotator, task_id)
    await world.answer(done, task_id, {1: "cat"})
    await run_out_of_time(world, task_id, offered.user_id, accepted.user_id, done.user_id)

    marked = await timeouts.scan()

    assert sorted(marked) == sorted([(task_id, offered.user_id), (task_id, accepted.user_id)])
    world.session.expire_all()  # the worker's session changed the rows under this one
    states = {a.user_id: a.state for a in await world.repo.assignments(task_id)}
    assert states == {
        offered.user_id: AssignmentState.TIMEOUT,
        accepted.user_id: AssignmentState.TIMEOUT,
        done.user_id: AssignmentState.FINISHED,
        in_time.user_id: AssignmentState.ACCEPTED,
    }
    assert await timeouts.scan() == []  # marked once
    with pytest.raises(NoAccessPermission):  # a timed-out annotator answers no more
        await world.answer(accepted, task_id, {1: "cat"})


async def test_redistribution_replaces_timed_out_and_refused_annotators(world: World, timeouts):
    publisher = world.requester()
    late, refused, good = world.annotators(3)
    task_id = await world.distributed(publisher, strategy="order", distribute_user_num=3, q_num=1)
    for annotator in (late, refused, good):
        await world.accept(annotator, task_id)
    for annotator in (refused, good):
        await world.answer(annotator, task_id, {1: "cat"})
    await world.call(review.review(world.repo, world.settings, publisher, task_id, refused.user_id, "refuse"))
    await run_out_of_time(world, task_id, late.user_id)
    await timeouts.scan()
    world.session.expire_all()
    newcomers = world.annotators(2)

    assert await world.redistribute(publisher, task_id) == {"removed": 2, "distributed": 2, "vacancies": 0}

    rows = {a.user_id: (a.state, a.current) for a in await world.repo.assignments(task_id)}
    assert rows == {
        late.user_id: (AssignmentState.TIMEOUT, False),
        refused.user_id: (AssignmentState.REVIEW_REFUSED, False),
        good.user_id: (AssignmentState.FINISHED, True),
        newcomers[0].user_id: (AssignmentState.NOT_HANDLE, True),
        newcomers[1].user_id: (AssignmentState.NOT_HANDLE, True),
    }
    for past in (late, refused):  # the past list never comes back
        with pytest.raises(NoPermissionToAccept):
            await world.accept(past, task_id)
    with pytest.raises(NoDistributePermission):
        await world.redistribute(world.requester(), task_id)
