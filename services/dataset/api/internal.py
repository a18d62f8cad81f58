"""Internal endpoints for the tasks service (signed calls only; the gateway never routes /internal).

GET /internal/qa/{dataset_id}                 name, type, source, owner, areas with their sizes
GET /internal/qa/{dataset_id}/records         ?area=&after_id=&limit= records in id order
PUT /internal/qa/{dataset_id}/status          {"status": 未分配|已分配|已完成|已结束, "assigned_at": iso|null}
PUT /internal/qa/records/{record_id}          an expert's labels: {"expert_name", "data_answer",
                                              "data_reserve", "data_question"?}
GET /internal/texts/{text_id}                 a text of 003's upload_data
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.dataset import qa_datasets
from services.dataset.api.deps import Repo
from services.dataset.models import Dataset
from services.dataset.qa_records import QaError, parse_dataset_json
from services.dataset.repository import DatasetRepository
from services.dataset.schemas import (
    DatasetStatus,
    ExpertLabel,
    dataset_entry_001,
    record_line,
)
from shared.envelopes import ok_003
from shared.errors import InvalidRequest, NotFound
from shared.identity import InternalCaller

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


async def _qa_dataset(repo: DatasetRepository, dataset_id: int) -> Dataset:
    dataset = await repo.dataset(dataset_id)
    if dataset is None or dataset.document != "001":
        raise NotFound("dataset not found")
    return dataset


@router.get("/qa/{dataset_id}")
async def qa_dataset(dataset_id: int, caller: InternalCaller, repo: Repo) -> JSONResponse:
    dataset = await _qa_dataset(repo, dataset_id)
    areas = await repo.qa_area_sizes(dataset.id)
    return ok_003(
        {
            **dataset_entry_001(dataset),
            "owner_id": dataset.owner_id,
            "dataset_size": sum(size for _, size in areas),
            "areas": [{"area": area, "data_size": size} for area, size in areas],
        }
    )


@router.get("/qa/{dataset_id}/records")
async def qa_records(
    dataset_id: int,
    caller: InternalCaller,
    repo: Repo,
    area: str | None = None,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> JSONResponse:
    dataset = await _qa_dataset(repo, dataset_id)
    records = await repo.qa_page(dataset.id, after_id, limit, area)
    return ok_003([{**record_line(r), "updated_at": r.updated_at.timestamp()} for r in records])


@router.put("/qa/{dataset_id}/status")
async def qa_status(dataset_id: int, body: DatasetStatus, caller: InternalCaller, repo: Repo) -> JSONResponse:
    if body.status not in qa_datasets.STATUSES:
        raise InvalidRequest(f"invalid request: status must be one of {', '.join(qa_datasets.STATUSES)}")
    if not await repo.set_status(dataset_id, body.status, body.assigned_at):
        raise NotFound("dataset not found")
    return ok_003()


@router.put("/qa/records/{record_id}")
async def qa_label(record_id: int, body: ExpertLabel, caller: InternalCaller, repo: Repo) -> JSONResponse:
    record = await repo.qa_record(record_id, lock=True)
    if record is None:
        raise NotFound("record not found")
    # The answer has the upload's shape: validate it the same way.
    try:
        checked = parse_dataset_json(
            [
                {
                    "data_question": body.data_question or record.question,
                    "data_area": record.area,
                    "data_answer": body.data_answer,
                }
            ]
        )[0]
    except QaError as exc:
        raise InvalidRequest(f"invalid request: {exc.reason}") from None
    record.question = checked.data_question
    record.answer = checked.to_dict()["data_answer"]
    record.reserve = body.data_reserve
    record.expert_name = body.expert_name
    record.labeled = True
    record.updated_at = datetime.now(UTC)
    return ok_003(record_line(record))


@router.get("/texts/{text_id}")
async def text(text_id: int, caller: InternalCaller, repo: Repo) -> JSONResponse:
    found = await repo.text_with_owner(text_id)
    if found is None:
        raise NotFound("text not found")
    item, owner_id = found
    # The owner lets the tasks service refuse a task built from someone else's texts.
    return ok_003(
        {
            "text_id": item.id,
            "filename": item.file_name,
            "text": item.content,
            "dataset_id": item.dataset_id,
            "owner_id": owner_id,
        }
    )
