"""Document 001's Q&A datasets: upload, list, per-area report, download.

The dataset service owns the records; the tasks service owns who works on them. So:

- `GET /dataset/get` asks the tasks service which areas are assigned to whom
  (`GET /internal/datasets/{id}/assignments` -> `{"data": [{"area", "expert_name"}, ...]}`); when it cannot
  answer, neither can we (503), rather than reporting every area as unassigned.
- The tasks service reports a dataset's status and latest assignment (`PUT /internal/qa/{id}/status`) and
  writes experts' labels back (`PUT /internal/qa/records/{id}`), so `list` and `download` need no call.

Managers (001) are `demand` users: each sees their own datasets; an `admin` sees all of them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.errors import InvalidRequest, NotFound, ServiceUnavailable
from shared.http import ServiceClient
from shared.identity import Identity

from .models import Dataset
from .qa_records import QaError, parse_dataset_json
from .repository import DatasetRepository
from .schemas import QaUpload, record_entry_001

STATUSES = ("未分配", "已分配", "已完成", "已结束")
PAGE = 1000


async def upload(repo: DatasetRepository, owner: Identity, body: QaUpload, max_json_bytes: int) -> Dataset:
    try:
        records = parse_dataset_json(body.dataset_json, max_bytes=max_json_bytes)
    except QaError as exc:
        raise InvalidRequest(f"参数错误: {exc}") from None
    dataset = Dataset(
        owner_id=owner.user_id,
        kind="qa",
        document="001",
        name=body.dataset_name.strip(),
        task_type=(body.dataset_task_type or "").strip(),
        source=(body.dataset_source or "").strip(),
    )
    await repo.add(dataset)
    await repo.insert_qa_records(
        [
            {
                "dataset_id": dataset.id,
                "position": position,
                "area": record.data_area,
                "background": record.data_background,
                "question": record.data_question,
                "answer": record.to_dict()["data_answer"],
                "keyword": record.data_keyword,
                "other": record.other,
            }
            for position, record in enumerate(records)
        ]
    )
    return dataset


def parse_dataset_id(value: str | None) -> int:
    if value is None or not value.strip():
        raise InvalidRequest("参数错误: 缺少dataset_id")
    try:
        dataset_id = int(value.strip())
    except ValueError:
        raise InvalidRequest("参数错误: dataset_id必须是整数") from None
    if not 0 < dataset_id < 2**31:
        raise InvalidRequest("参数错误: dataset_id超出范围")
    return dataset_id


async def visible_dataset(repo: DatasetRepository, identity: Identity, dataset_id: int) -> Dataset:
    dataset = await repo.dataset(dataset_id)
    if (
        dataset is None
        or dataset.document != "001"
        or (identity.role != "admin" and dataset.owner_id != identity.user_id)
    ):
        raise NotFound("数据集不存在")
    return dataset


async def assignments(tasks: ServiceClient, dataset_id: int) -> dict[str, list[str]]:
    """Area -> expert names, from the tasks service (503 when it cannot tell)."""
    # No message of our own: 001's client gets its document's wording for "unavailable".
    try:
        response = await tasks.request("GET", f"/internal/datasets/{dataset_id}/assignments")
    except ServiceUnavailable as exc:
        raise ServiceUnavailable(details=f"tasks service: {exc.details}") from None
    if response.status_code != 200:
        raise ServiceUnavailable(details=f"tasks service answered {response.status_code}")
    try:
        entries = response.json()["data"]
        by_area: dict[str, list[str]] = {}
        for entry in entries:
            names = by_area.setdefault(str(entry["area"]), [])
            name = str(entry.get("expert_name") or "")
            if name and name not in names:
                names.append(name)
        return by_area
    except (ValueError, KeyError, TypeError):
        raise ServiceUnavailable(details="tasks service gave an unreadable answer") from None


async def area_report(repo: DatasetRepository, tasks: ServiceClient, dataset: Dataset) -> list[dict[str, Any]]:
    sizes = await repo.qa_area_sizes(dataset.id)
    assigned = await assignments(tasks, dataset.id)
    total = sum(size for _, size in sizes)
    return [
        {
            "area": area,
            "data_size": size,
            "dataset_size": total,
            "is_assigned": bool(assigned.get(area)),
            "expert_name": ",".join(assigned[area]) if assigned.get(area) else "-",
        }
        for area, size in sizes
    ]


async def download_body(sessionmaker: async_sessionmaker[AsyncSession], dataset_id: int) -> AsyncIterator[bytes]:
    """`{"response": [...]}` written record by record, a page of rows at a time."""
    yield b'{"response": ['
    after, first = 0, True
    while True:
        async with sessionmaker() as session:
            page = await DatasetRepository(session).qa_page(dataset_id, after, PAGE)
        if not page:
            break
        parts = []
        for record in page:
            parts.append(("" if first else ", ") + json.dumps(record_entry_001(record), ensure_ascii=False))
            first = False
        yield "".join(parts).encode()
        after = page[-1].id
    yield b"]}"
