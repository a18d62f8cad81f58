"""Review (services/tasks/review.py): accepting work pays its answers through the outbox and finishes
the task with its last slot; refusing pays nothing; work is reviewed once; auto acceptance against
standard answers; reports and the credit deduction they queue."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.tasks import lifecycle, review
from services.tasks.errors import NoPermissions, NotThisTasksTagger, ReportRecordNotFound, TaskNotDistributed
from services.tasks.models import AssignmentState, TaskStatus
from shared.errors import InvalidRequest
from shared.identity import Identity
from tests.tasks.conftest import ADMIN, World

ANSWERS = {1: "cat", 2: "dog", 3: "cat"}


async def finished_task(world: World, annotators: int = 2) -> tuple[Identity, int, list[Identity]]:
    """A toall task of 3 questions at 5 points each whose `annotators` slots all finished their work."""
    publisher = world.requester()
    workers = world.annotators(annotators)
    task_id = await world.distributed(publisher, strategy="toall", distribute_user_num=annotators, reward_per_q=5)
    for worker in workers:
        await world.accept(worker, task_id)
        assert (await world.answer(worker, task_id, ANSWERS))["state"] == AssignmentState.FINISHED
    return publisher, task_id, workers


def verdict(world: World, who: Identity, task_id: int, user_id: int, decision: str):
    return world.call(review.review(world.repo, world.settings, who, task_id, user_id, decision))


async def ops(world: World) -> list[tuple[str, str, dict]]:
    return [(op.kind, op.key, op.body) for op in await world.outbox() if op.kind != "grow" or ":user:" in op.key]


async def test_accepting_work_pays_each_answer_and_the_last_slot_finishes_the_task(world: World):
    publisher, task_id, (a, b) = await finished_task(world)

    assert await verdict(world, publisher, task_id, a.user_id, "accept") == {"paid": 15, "task_state": "distributed"}
    mine = await world.assignment(task_id, a.user_id)
    assert (mine.state, mine.paid_amount, mine.reviewed_at is not None) == (AssignmentState.REVIEW_ACCEPTED, 15, True)
    assert await verdict(world, publisher, task_id, b.user_id, "accept") == {"paid": 15, "task_state": "finished"}

    escrow = f"task:{task_id}"
    assert await ops(world) == [
        (
            "payout",
            f"{escrow}:user:{a.user_id}:pay",
            {
                "escrow_id": escrow,
                "user_id": a.user_id,
                "amount": 15,
                "idempotency_key": f"{escrow}:user:{a.user_id}:pay",
            },
        ),
        (
            "grow",
            f"{escrow}:user:{a.user_id}:grow",
            {"amount": 10, "idempotency_key": f"{escrow}:user:{a.user_id}:grow"},
        ),
        (
            "payout",
            f"{escrow}:user:{b.user_id}:pay",
            {
                "escrow_id": escrow,
                "user_id": b.user_id,
                "amount": 15,
                "idempotency_key": f"{escrow}:user:{b.user_id}:pay",
            },
        ),
        (
            "grow",
            f"{escrow}:user:{b.user_id}:grow",
            {"amount": 10, "idempotency_key": f"{escrow}:user:{b.user_id}:grow"},
        ),
        (
            "refund",
            f"{escrow}:refund:finish",
            {"escrow_id": escrow, "amount": None, "idempotency_key": f"{escrow}:refund:finish"},
        ),
    ]
    task = await world.task(task_id)
    assert (task.status, task.finished_at is not None) == (TaskStatus.FINISHED, True)
    stats = await world.repo.stats([a.user_id])
    assert (stats[a.user_id].accepted_answers, stats[a.user_id].accepted_tasks) == (3, 1)


async def test_refusing_work_pays_nothing_and_keeps_the_task_open(world: World):
    publisher, task_id, (a, _) = await finished_task(world)

    assert await verdict(world, publisher, task_id, a.user_id, "refuse") == {"paid": 0, "task_state": "distributed"}

    mine = await world.assignment(task_id, a.user_id)
    assert (mine.state, mine.paid_amount, mine.current) == (AssignmentState.REVIEW_REFUSED, 0, True)
    assert await ops(world) == []
    assert (await world.task(task_id)).status == TaskStatus.DISTRIBUTED
    stats = await world.repo.stats([a.user_id])
    assert (stats[a.user_id].accepted_answers, stats[a.user_id].accepted_tasks) == (0, 0)


@pytest.mark.parametrize("first", ["accept", "refuse"])
@pytest.mark.parametrize("second", ["accept", "refuse"])
async def test_work_is_reviewed_once(world: World, first: str, second: str):
    publisher, task_id, (a, _) = await finished_task(world)
    await verdict(world, publisher, task_id, a.user_id, first)
    queued = await ops(world)

    with pytest.raises(InvalidRequest, match="already reviewed"):
        await verdict(world, publisher, task_id, a.user_id, second)

    assert await ops(world) == queued  # no second payout, whatever the verdicts
    expected = AssignmentState.REVIEW_ACCEPTED if first == "accept" else AssignmentState.REVIEW_REFUSED
    assert (await world.assignment(task_id, a.user_id)).state == expected


async def test_only_finished_or_timed_out_work_is_reviewable(world: World):
    publisher = world.requester()
    working, late, idle = world.annotators(3)
    task_id = await world.distributed(publisher, strategy="toall", distribute_user_num=3, reward_per_q=5)
    for annotator in (working, late, idle):
        await world.accept(annotator, task_id)
    await world.answer(working, task_id, {1: "cat"})
    await world.answer(late, task_id, {1: "cat", 2: "dog"})

    with pytest.raises(InvalidRequest, match="is accepted"):
        await verdict(world, publisher, task_id, working.user_id, "accept")
    for annotator in (late, idle):  # both run out of time
        (await world.assignment(task_id, annotator.user_id)).deadline = lifecycle.now() - timedelta(seconds=1)
    timed_out = await world.call(world.repo.mark_timeouts(lifecycle.now()))
    assert sorted(timed_out) == sorted([(task_id, late.user_id), (task_id, idle.user_id)])

    with pytest.raises(InvalidRequest, match="answered nothing"):
        await verdict(world, publisher, task_id, idle.user_id, "accept")
    assert await verdict(world, publisher, task_id, late.user_id, "accept") == {
        "paid": 10,  # the answers given before the time ran out
        "task_state": "distributed",
    }


async def test_only_the_publisher_reviews_a_distributed_task_of_its_annotators(world: World):
    publisher, task_id, (a, _) = await finished_task(world)
    stranger = world.requester()

    with pytest.raises(NoPermissions):
        await verdict(world, stranger, task_id, a.user_id, "accept")
    with pytest.raises(NoPermissions):
        await verdict(world, ADMIN, task_id, a.user_id, "accept")
    with pytest.raises(NotThisTasksTagger):
        await verdict(world, publisher, task_id, stranger.user_id, "accept")
    undistributed = await world.checked(publisher)
    with pytest.raises(TaskNotDistributed):
        await verdict(world, publisher, undistributed, a.user_id, "accept")
    assert (await world.assignment(task_id, a.user_id)).state == AssignmentState.FINISHED


async def auto_task(world: World) -> tuple[Identity, int]:
    """An auto-accepted task of 3 questions, 2 of which have a standard answer (cat, dog)."""
    publisher = world.requester()
    csv = b"filename,tag\n1.txt,cat\n2.txt,dog\n3.txt,\n"
    tag = await world.call(review.upload_standard_answers(world.repo, publisher, csv))
    task_id = await world.distributed(publisher, accept_method="auto", stdans_tag=tag, distribute_user_num=2)
    return publisher, task_id


async def test_auto_acceptance_pays_work_that_matches_the_standard_answers(world: World):
    _, task_id = await auto_task(world)
    right = world.annotator()
    await world.accept(right, task_id)

    last = await world.answer(right, task_id, {1: "cat", 2: "dog", 3: "bird"})

    assert last == {"answered": 3, "q_num": 3, "state": AssignmentState.REVIEW_ACCEPTED}
    mine = await world.assignment(task_id, right.user_id)
    assert (mine.std_total, mine.std_correct, mine.paid_amount) == (2, 2, 15)
    assert [op.kind for op in await world.outbox(task_id)] == ["payout"]


async def test_auto_acceptance_refuses_work_below_the_threshold(world: World):
    _, task_id = await auto_task(world)
    wrong = world.annotator()
    await world.accept(wrong, task_id)

    last = await world.answer(wrong, task_id, {1: "cat", 2: "cat", 3: "cat"})

    assert last["state"] == AssignmentState.REVIEW_REFUSED  # 1 of 2 right: 50% < 80%
    mine = await world.assignment(task_id, wrong.user_id)
    assert (mine.std_total, mine.std_correct, mine.paid_amount) == (2, 1, 0)
    assert await world.outbox(task_id) == []
    stats = await world.repo.stats([wrong.user_id])
    assert (stats[wrong.user_id].std_total, stats[wrong.user_id].std_correct) == (2, 1)


async def test_an_accepted_report_queues_one_credit_deduction(world: World):
    publisher, task_id, (a, b) = await finished_task(world)
    await world.call(review.report(world.repo, publisher, task_id, a.user_id, "copied answers"))
    await world.call(review.report(world.repo, b, task_id, publisher.user_id, "unfair"))
    with pytest.raises(NotThisTasksTagger):  # an annotator reports the publisher only
        await world.call(review.report(world.repo, a, task_id, b.user_id, "x"))

    def decide(user_id: int, accept: bool):
        work = review.decide_report(world.repo, world.settings, ADMIN, task_id, user_id, None, accept)
        return world.call(work)

    assert await decide(publisher.user_id, True) == 1
    credit = [op for op in await world.outbox() if op.kind == "credit"]
    assert [(op.path, op.body["delta"]) for op in credit] == [(f"/internal/users/{a.user_id}/credit", -10)]
    assert await decide(b.user_id, False) == 1
    with pytest.raises(ReportRecordNotFound):
        await decide(b.user_id, False)
    assert await world.repo.pending_reports() == []
