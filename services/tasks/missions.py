"""Document 001's expert labelling: a manager splits one area of a Q&A dataset among chosen experts
(one mission each), hands a mission over, urges it; experts list their records and label them.

The dataset service keeps the records; a mission keeps which records are its own (`mission_records`,
a contiguous run of the area's records in id order, so listing reads one range of pages). Labels are
written back to the dataset service first (an idempotent PUT), then counted here: should the count
fail to commit, the expert's retry writes the same label again and counts it once.

Mission statuses: 标注中 (in progress) -> 已完成 (every record labelled) or 已移交 (handed over: its
unlabelled records went to new missions whose `original_id` is this one). Views add 超时 (past the due
time), and 001's manager list says 已分配 / expert list 未开始 for a mission with nothing labelled yet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic_core import PydanticCustomError

from services.tasks import outbox
from services.tasks.errors import NotAnExpert
from services.tasks.models import Mission
from services.tasks.peers import AuthClient, DatasetClient
from services.tasks.repository import TasksRepository
from services.tasks.schemas import AssignBody, LabelBody, ReassignBody, UrgeBody, mission_time, positive_id
from shared.errors import InvalidRequest, LabelhiveError, NoPermission, NotFound
from shared.identity import Identity

MANAGER_ROLES = ("demand", "admin")


def now() -> datetime:
    return datetime.now(UTC)


def ensure_manager(identity: Identity) -> None:
    if identity.role not in MANAGER_ROLES:
        raise NoPermission()


def ensure_expert(identity: Identity) -> None:
    if identity.role != "tag":
        raise NotAnExpert()


def parse_id(value: Any, name: str) -> int:
    """An id from a query string, by the rule of the bodies' ids."""
    try:
        return positive_id(value)
    except PydanticCustomError as exc:
        raise InvalidRequest(f"参数错误: {name}{exc.message()}") from None


def split(ids: list[int], parts: int) -> list[list[int]]:
    """Contiguous runs of nearly equal size (the first ones one longer)."""
    size, extra = divmod(len(ids), parts)
    runs, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        runs.append(ids[start:end])
        start = end
    return runs


async def _experts(auth: AuthClient, ids: list[int], action: str) -> dict[int, dict[str, Any]]:
    found = await auth.users(ids)
    for expert_id in ids:
        expert = found.get(expert_id)
        if expert is None or expert.get("user_type") != "tag" or expert.get("is_banned"):
            raise InvalidRequest(f"{action}失败,专家不存在: {expert_id}")
    return found


async def _missions(
    repo: TasksRepository,
    template: Mission,
    experts: dict[int, dict[str, Any]],
    expert_ids: list[int],
    record_ids: list[int],
    action: str,
) -> list[Mission]:
    if len(record_ids) < len(expert_ids):
        raise InvalidRequest(f"{action}失败,专家人数多于数据量({len(record_ids)}条)")
    created = []
    for expert_id, run in zip(expert_ids, split(record_ids, len(expert_ids)), strict=True):
        mission = Mission(
            dataset_id=template.dataset_id,
            dataset_name=template.dataset_name,
            dataset_task_type=template.dataset_task_type,
            dataset_source=template.dataset_source,
            manager_id=template.manager_id,
            area=template.area,
            expert_id=expert_id,
            expert_name=str(experts[expert_id]["user_name"]),
            notice=template.notice,
            due_at=template.due_at,
            status="标注中",
            original_id=template.original_id,
            is_highlight=False,
            total_count=len(run),
            finished_count=0,
            first_record_id=run[0],
            last_record_id=run[-1],
        )
        await repo.add(mission)
        await repo.insert_mission_records(mission.id, run)
        created.append(mission)
    return created


async def assign(
    repo: TasksRepository, auth: AuthClient, dataset: DatasetClient, identity: Identity, body: AssignBody
) -> list[Mission]:
    ensure_manager(identity)
    dataset_id, area, expert_ids = body.dataset_id, body.area, body.expert_id_list
    info = await dataset.qa_dataset(dataset_id)
    if info is None or (identity.role != "admin" and int(info.get("owner_id", -1)) != identity.user_id):
        raise NotFound("数据集不存在")
    if area not in {a["area"] for a in info.get("areas", [])}:
        raise InvalidRequest("分配失败,数据集没有这个领域")
    experts = await _experts(auth, expert_ids, "分配")
    await repo.lock_dataset(dataset_id)
    if await repo.area_in_progress(dataset_id, area):
        raise LabelhiveError("分配失败,该领域已分配给专家,请使用移交")
    record_ids = [int(r["data_id"]) for r in await dataset.qa_records(dataset_id, area)]
    if not record_ids:
        raise InvalidRequest("分配失败,该领域没有数据")
    template = Mission(
        dataset_id=dataset_id,
        dataset_name=str(info.get("dataset_name", "")),
        dataset_task_type=str(info.get("dataset_task_type") or ""),
        dataset_source=str(info.get("dataset_source") or ""),
        manager_id=int(info.get("owner_id", identity.user_id)),
        area=area,
        notice=body.notice or "",
        due_at=body.due_time,
    )
    created = await _missions(repo, template, experts, expert_ids, record_ids, "分配")
    await outbox.dataset_status(repo, dataset_id, "已分配", now(), f"mission:{created[0].id}:dataset-status")
    return created


async def _managed(repo: TasksRepository, identity: Identity, mission_id: int) -> Mission:
    ensure_manager(identity)
    mission = await repo.mission(mission_id, lock=True)
    if mission is None or (identity.role != "admin" and mission.manager_id != identity.user_id):
        raise NotFound("任务不存在")
    return mission


async def reassign(repo: TasksRepository, auth: AuthClient, identity: Identity, body: ReassignBody) -> list[Mission]:
    """Hands a mission's unlabelled records over to other experts (001's 移交)."""
    mission = await _managed(repo, identity, body.mission_id)
    expert_ids, notice, due = body.expert_id_list, body.mission_notice, body.mission_due_time
    if mission.status != "标注中":
        raise LabelhiveError(f"移交失败,任务{mission.status}")
    experts = await _experts(auth, expert_ids, "移交")
    remaining = await repo.move_unlabeled(mission.id)
    if not remaining:
        raise LabelhiveError("移交失败,任务的数据已全部标注")
    template = Mission(
        dataset_id=mission.dataset_id,
        dataset_name=mission.dataset_name,
        dataset_task_type=mission.dataset_task_type,
        dataset_source=mission.dataset_source,
        manager_id=mission.manager_id,
        area=mission.area,
        notice=mission.notice if notice is None else notice,
        due_at=due if due is not None else mission.due_at,
        original_id=mission.id,
    )
    created = await _missions(repo, template, experts, expert_ids, remaining, "移交")
    mission.status, mission.ended_at = "已移交", now()
    mission.total_count = mission.finished_count  # what it keeps: the records labelled before the handover
    return created


async def urge(repo: TasksRepository, identity: Identity, body: UrgeBody) -> Mission:
    mission = await _managed(repo, identity, body.mission_id)
    mission.is_highlight = True
    return mission


def _overdue(mission: Mission, moment: datetime) -> bool:
    return mission.status == "标注中" and mission.due_at is not None and moment > mission.due_at


def expert_entry(m: Mission, moment: datetime) -> dict[str, Any]:
    status = m.status
    if status == "标注中":
        status = "超时" if _overdue(m, moment) else ("未开始" if m.finished_count == 0 else "未完成")
    return {
        "task_id": m.id,
        "task_type": m.dataset_task_type,
        "area": m.area or "-",
        "resource": m.dataset_source,
        "assign_time": mission_time(m.created_at),
        "due_time": mission_time(m.due_at),
        "status": status,
        "finished_count": m.finished_count,
        "total_count": m.total_count,
        "is_highlight": int(m.is_highlight),
        "dataset_name": m.dataset_name,
        "notice": m.notice,
    }


def manager_entry(m: Mission, moment: datetime) -> dict[str, Any]:
    status = m.status
    if status == "标注中":
        status = "超时" if _overdue(m, moment) else ("已分配" if m.finished_count == 0 else "标注中")
    return {
        "task_id": m.id,
        "task_type": m.dataset_task_type,
        "expert_name": m.expert_name,
        "dataset_name": m.dataset_name,
        "status": status,
        "assign_time": mission_time(m.created_at),
        "due_time": mission_time(m.due_at),
        "finished_count": m.finished_count,
        "total_count": m.total_count,
        "is_highlight": int(m.is_highlight),
        "area": m.area,
        "dataset_id": m.dataset_id,
    }


def history_entry(m: Mission) -> dict[str, Any]:
    # 001: every field but the two counts is a string.
    return {
        "mission_id": str(m.id),
        "expert_name": m.expert_name,
        "area": m.area,
        "dataset_name": m.dataset_name,
        "status": m.status,
        "original_id": str(m.original_id) if m.original_id else "-",
        "assign_time": mission_time(m.created_at),
        "finished_count": m.finished_count,
        "total_count": m.total_count,
    }


async def task_list(repo: TasksRepository, identity: Identity) -> list[dict[str, Any]]:
    moment = now()
    if identity.role == "tag":
        return [
            expert_entry(m, moment) for m in await repo.missions(expert_id=identity.user_id) if m.status != "已移交"
        ]
    ensure_manager(identity)
    manager = None if identity.role == "admin" else identity.user_id
    return [manager_entry(m, moment) for m in await repo.missions(manager_id=manager)]


async def dataset_history(repo: TasksRepository, identity: Identity, dataset_id: Any) -> list[dict[str, Any]]:
    ensure_manager(identity)
    dataset_id = parse_id(dataset_id, "dataset_id")
    manager = None if identity.role == "admin" else identity.user_id
    return [history_entry(m) for m in await repo.missions(dataset_id=dataset_id, manager_id=manager)]


async def data_list(
    repo: TasksRepository, dataset: DatasetClient, identity: Identity, mission_id: Any
) -> tuple[list[dict[str, Any]], str]:
    ensure_expert(identity)
    mission = await repo.mission(parse_id(mission_id, "mission_id"))
    if mission is None or mission.expert_id != identity.user_id:
        raise NotFound("任务不存在")
    mine = {r.record_id: r for r in await repo.mission_records(mission.id)}
    if not mine:
        return [], mission.notice
    records = await dataset.qa_records(mission.dataset_id, mission.area, after_id=min(mine) - 1, until_id=max(mine))
    entries = []
    for record in records:
        own = mine.get(int(record["data_id"]))
        if own is None:
            continue
        updated = record.get("updated_at")
        entries.append(
            {
                "data_id": int(record["data_id"]),
                "background": record.get("data_background", ""),
                "task_type": mission.dataset_task_type,
                "data_source": mission.dataset_source,
                "is_labeled": int(own.labeled),
                "question": record.get("data_question", ""),
                "answer": record.get("data_answer", []),
                "keywords": record.get("data_keyword", ""),
                "lastest_time": mission_time(datetime.fromtimestamp(updated, UTC)) if updated else "-",
                "reserve": record.get("data_reserve", 1),
            }
        )
    return entries, mission.notice


async def label(repo: TasksRepository, dataset: DatasetClient, identity: Identity, body: LabelBody) -> None:
    ensure_expert(identity)
    record_id = body.data_id
    found = await repo.active_record(record_id, identity.user_id)
    if found is None:
        raise NotFound("数据不存在或不在你进行中的任务里")
    mission, record = found
    status, answer = await dataset.label_record(
        record_id,
        {
            "expert_name": identity.user_name,
            "data_answer": body.data_answer,
            "data_reserve": body.data_reserve,
            "data_question": body.data_question or None,
        },
    )
    if status == 404:
        raise NotFound("数据不存在")
    if status != 200:
        raise InvalidRequest(str(answer.get("message") or "参数错误"))
    if record.labeled:
        return  # labelled again: the dataset has the new label, the count stays
    record.labeled, record.labeled_at = True, now()
    mission.finished_count += 1
    if mission.finished_count >= mission.total_count:
        mission.status, mission.ended_at = "已完成", now()
        await repo.session.flush()
        await _maybe_dataset_complete(repo, dataset, mission)


async def _maybe_dataset_complete(repo: TasksRepository, dataset: DatasetClient, mission: Mission) -> None:
    """001's dataset status 已完成 once every area was assigned and no mission of it is in progress."""
    if not await repo.dataset_complete(mission.dataset_id):
        return
    info = await dataset.qa_dataset(mission.dataset_id)
    areas = {a["area"] for a in (info or {}).get("areas", [])}
    if not areas <= await repo.missions_of_dataset_areas(mission.dataset_id):
        return
    await outbox.dataset_status(repo, mission.dataset_id, "已完成", None, f"mission:{mission.id}:dataset-complete")


async def dataset_assignments(repo: TasksRepository, dataset_id: int) -> list[dict[str, str]]:
    return [{"area": area, "expert_name": name} for area, name in await repo.assignments_of_dataset(dataset_id)]
