"""Who gets a task (services/tasks/distribution.py): eligibility, order's round robin, smart's ranking,
accept limits, the toall pool's slots, the agent's picks, and that nobody is given a task twice."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.tasks import distribution
from services.tasks.errors import (
    AcceptLimit,
    DistributionCompleted,
    NoDistributePermission,
    NoPermissionToAccept,
    RepeatAccept,
    ScoreNotEnough,
    TagUserNotEnough,
    TaskDistributed,
)
from services.tasks.models import AnnotatorStats, AssignmentState, TaskStatus
from shared.errors import InvalidRequest, UserBanned
from shared.identity import Identity
from tests.tasks.conftest import World


def offered(assignments, state=AssignmentState.NOT_HANDLE) -> list[int]:
    return [a.user_id for a in assignments if a.current and a.state == state]


async def test_order_goes_round_robin_over_eligible_annotators(world: World):
    publisher = world.requester()
    a, b, c, d, e = (x.user_id for x in world.annotators(5))

    first_ids = [await world.distributed(publisher, strategy="order") for _ in range(3)]

    given = [offered(await world.repo.assignments(task_id)) for task_id in first_ids]
    assert given == [[a, b], [c, d], [e, a]]  # the cursor goes on after the last one served, then wraps
    assert (await world.repo.cursor("order")).position == a
    first = (await world.repo.assignments(first_ids[0]))[0]
    assert (first.via, first.deadline - first.distributed_at) == ("order", timedelta(seconds=3600))


async def test_only_eligible_annotators_are_offered_a_task(world: World):
    publisher = world.requester()
    fine = world.annotator()
    world.annotator(is_banned=True)
    world.annotator(credit_score=world.settings.min_credit_score - 1)
    at_the_bar = world.annotator(credit_score=world.settings.min_credit_score)
    world.auth.add(9_999, "agent")  # not a `tag` user: auth does not list it

    task_id = await world.checked(publisher, strategy="order", distribute_user_num=10)
    placed = await world.distribute(publisher, task_id)

    assert placed == {"distributed": 2, "vacancies": 8}
    assert offered(await world.repo.assignments(task_id)) == [fine.user_id, at_the_bar.user_id]
    assert world.auth.called("GET", "/internal/users")[0].params["role"] == "tag"


async def test_membership_level_sets_how_many_tasks_an_annotator_has_on_hand(world: World):
    publisher = world.requester()
    plain = world.annotator(membership_level=0)
    silver = world.annotator(membership_level=1)

    task_ids = [await world.distributed(publisher, strategy="order", distribute_user_num=1) for _ in range(9)]

    given = [offered(await world.repo.assignments(task_id)) for task_id in task_ids]
    assert [len(g) for g in given] == [1] * 8 + [0]  # 3 + 5 on hand: the ninth finds nobody
    counts = await world.repo.active_counts([plain.user_id, silver.user_id])
    assert counts == {plain.user_id: distribution.ACCEPT_LIMITS[0], silver.user_id: distribution.ACCEPT_LIMITS[1]}


async def test_smart_ranks_by_credit_accuracy_and_experience(world: World):
    publisher = world.requester()
    newcomer = world.annotator(credit_score=100)  # 0.5 + 0.35 x 50% = 0.675
    expert = world.annotator(credit_score=80)  # 0.4 + 0.35 x 101/102 + 0.15 = 0.897
    careless = world.annotator(credit_score=90)  # 0.45 + 0.35 x 1/12 = 0.479
    world.annotator(credit_score=70)  # 0.35 + 0.175 = 0.525
    await world.repo.add_stats(expert.user_id, std_total=100, std_correct=100, accepted_answers=1000)
    await world.repo.add_stats(careless.user_id, std_total=10, std_correct=0)

    task_id = await world.distributed(publisher, strategy="smart")

    # The best first (assignments are listed in the order they were made).
    assert offered(await world.repo.assignments(task_id)) == [expert.user_id, newcomer.user_id]
    stats = await world.repo.stats([expert.user_id])
    scores = [
        distribution.smart_score(world.auth.users[expert.user_id], stats[expert.user_id]),
        distribution.smart_score(world.auth.users[newcomer.user_id], None),
    ]
    assert scores == pytest.approx([0.4 + 0.35 * 101 / 102 + 0.15, 0.675])


async def test_smart_prefers_accuracy_on_standard_answers_at_equal_credit():
    profile = {"credit_score": 90}
    right = AnnotatorStats(user_id=1, std_total=20, std_correct=19, accepted_answers=10)
    wrong = AnnotatorStats(user_id=2, std_total=20, std_correct=1, accepted_answers=10)
    assert distribution.smart_score(profile, right) > distribution.smart_score(profile, wrong)


async def test_distribution_holds_the_reward_in_escrow_once(world: World):
    publisher = world.requester(score=1000)
    task_id = await world.distributed(publisher, reward_per_q=5, q_num=3, distribute_user_num=2)

    holds = world.auth.called("POST", "/internal/escrow/hold")
    key = distribution.hold_key(await world.task(task_id))
    assert [h.body for h in holds] == [
        {"escrow_id": f"task:{task_id}", "user_id": publisher.user_id, "amount": 30, "idempotency_key": key}
    ]
    reloaded = await world.task(task_id)
    assert (reloaded.status, reloaded.held_amount, reloaded.taken) == (TaskStatus.DISTRIBUTED, 30, 0)
    assert world.auth.scores[publisher.user_id] == 970
    assert [(op.kind, op.key) for op in await world.outbox()] == [("grow", f"task:{task_id}:grow:publish")]
    with pytest.raises(TaskDistributed):
        await world.distribute(publisher, task_id)
    assert len(world.auth.called("POST", "/internal/escrow/hold")) == 1


async def test_distribution_without_the_points_leaves_the_task_created(world: World):
    publisher = world.requester(score=29)
    world.annotators(2)
    task_id = await world.checked(publisher, strategy="order", reward_per_q=5, q_num=3, distribute_user_num=2)

    with pytest.raises(ScoreNotEnough):
        await world.distribute(publisher, task_id)

    reloaded = await world.task(task_id)
    assert (reloaded.status, reloaded.taken, reloaded.held_amount) == (TaskStatus.CREATED, 0, 0)
    assert await world.repo.assignments(task_id) == []  # the offers went with the rolled-back unit of work


async def test_toall_pool_takes_exactly_its_slots(world: World):
    publisher = world.requester()
    a, b, c = world.annotators(3)
    task_id = await world.checked(publisher, strategy="toall", distribute_user_num=2)
    assert await world.distribute(publisher, task_id) == {"distributed": 0, "vacancies": 2}

    mine = await world.accept(a, task_id)
    assert (mine.state, mine.via, mine.deadline - mine.accepted_at) == ("accepted", "toall", timedelta(seconds=3600))
    with pytest.raises(RepeatAccept):
        await world.accept(a, task_id)
    await world.accept(b, task_id)
    with pytest.raises(DistributionCompleted):
        await world.accept(c, task_id)

    assert (await world.task(task_id)).taken == 2
    assert offered(await world.repo.assignments(task_id), AssignmentState.ACCEPTED) == [a.user_id, b.user_id]
    assert await world.repo.free_tasks(c.user_id) == []


async def test_refusing_a_pool_task_hides_it_for_good(world: World):
    publisher = world.requester()
    picky = world.annotator()
    task_id = await world.distributed(publisher, strategy="toall")
    assert [t.id for t in await world.repo.free_tasks(picky.user_id)] == [task_id]

    assert await world.refuse(picky, task_id) == {"replaced_by": None}

    assert await world.repo.free_tasks(picky.user_id) == []
    with pytest.raises(NoPermissionToAccept):
        await world.accept(picky, task_id)
    assert (await world.task(task_id)).taken == 0


async def test_toall_accept_respects_the_accept_limit(world: World):
    publisher = world.requester()
    busy = world.annotator(membership_level=0)
    task_ids = [await world.distributed(publisher, strategy="toall") for _ in range(4)]
    for task_id in task_ids[:3]:
        await world.accept(busy, task_id)

    with pytest.raises(AcceptLimit):
        await world.accept(busy, task_ids[3])
    assert (await world.task(task_ids[3])).taken == 0


@pytest.mark.parametrize(
    ("profile", "error"),
    [({"is_banned": True}, UserBanned), ({"credit_score": 10}, NoPermissionToAccept)],
)
async def test_an_ineligible_annotator_cannot_accept(world: World, profile, error):
    publisher = world.requester()
    task_id = await world.distributed(publisher, strategy="toall")
    with pytest.raises(error):
        await world.accept(world.annotator(**profile), task_id)
    with pytest.raises(NoPermissionToAccept):  # not an annotator at all
        await world.accept(Identity(publisher.user_id, "x", "demand"), task_id)


async def test_an_offered_task_is_accepted_only_by_whom_it_was_offered_to(world: World):
    publisher = world.requester()
    chosen, other = world.annotators(2)
    task_id = await world.distributed(publisher, strategy="order", distribute_user_num=1)

    with pytest.raises(NoPermissionToAccept):
        await world.accept(other, task_id)
    mine = await world.accept(chosen, task_id)

    assert (mine.state, mine.current) == (AssignmentState.ACCEPTED, True)
    assert mine.deadline - mine.accepted_at == timedelta(seconds=3600)
    with pytest.raises(RepeatAccept):
        await world.accept(chosen, task_id)


async def test_refused_slots_go_to_the_next_annotator_and_never_back(world: World):
    publisher = world.requester()
    a, b, c = world.annotators(3)
    task_id = await world.distributed(publisher, strategy="order", distribute_user_num=1)
    assert offered(await world.repo.assignments(task_id)) == [a.user_id]

    assert await world.refuse(a, task_id) == {"replaced": 1}
    assert offered(await world.repo.assignments(task_id)) == [b.user_id]
    assert await world.refuse(b, task_id) == {"replaced": 1}
    assert await world.refuse(c, task_id) == {"replaced": 0}  # everyone had it once

    rows = await world.repo.assignments(task_id)
    assert [(r.user_id, r.state, r.current) for r in rows] == [
        (a.user_id, AssignmentState.REFUSED, False),
        (b.user_id, AssignmentState.REFUSED, False),
        (c.user_id, AssignmentState.REFUSED, False),
    ]
    with pytest.raises(TagUserNotEnough):
        await world.redistribute(publisher, task_id)
    with pytest.raises(NoPermissionToAccept):
        await world.accept(a, task_id)
    with pytest.raises(InvalidRequest, match="no longer yours"):
        await world.refuse(a, task_id)


async def test_the_agent_hands_out_slots_one_annotator_at_a_time(world: World):
    publisher = world.requester()
    agent = Identity(777, "agent_777", "agent")
    world.auth.add(agent.user_id, "agent")
    a, b, c = world.annotators(3)
    task_id = await world.checked(publisher, distribute_user_num=2)
    await world.call(distribution.to_agent(world.repo, world.auth_client, world.settings, publisher, task_id, 777))

    def give(who: Identity, user_id: int):
        work = distribution.distribute_to_user(world.repo, world.auth_client, world.settings, who, task_id, user_id)
        return world.call(work)

    with pytest.raises(NoDistributePermission):
        await give(publisher, a.user_id)
    given = await give(agent, a.user_id)
    assert (given.state, given.via) == (AssignmentState.NOT_HANDLE, "agent")
    with pytest.raises(InvalidRequest, match="already had"):
        await give(agent, a.user_id)
    await give(agent, b.user_id)
    with pytest.raises(DistributionCompleted):
        await give(agent, c.user_id)
    assert (await world.task(task_id)).taken == 2
    with pytest.raises(NoPermissionToAccept):  # the pool is not open to anyone else
        await world.accept(c, task_id)
