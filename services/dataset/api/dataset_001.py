"""Document 001's `/dataset/*`: Q&A datasets for expert labelling. Its clients compare the `response`
text, so errors use its wording (`未登录` 401, `非管理员用户` 403). See `services/dataset/qa_datasets.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from services.dataset import qa_datasets
from services.dataset.api.deps import Manager, Repo, Settings, Tasks
from services.dataset.schemas import (
    AreaEntry001,
    DatasetEntry001,
    QaRecordEntry001,
    QaUpload,
    QaUploaded,
    dataset_entry_001,
)
from shared.edge import read_json_body
from shared.openapi import json_body
from shared.response_models import Envelope001

router = APIRouter(tags=["Q&A datasets (001)"])

DatasetId = Annotated[str | None, Query(max_length=20, description="数据集id")]


@router.post(
    "/dataset/upload",
    summary="Upload a Q&A dataset",
    response_model=QaUploaded,
    openapi_extra=json_body(QaUpload),
)
async def upload(request: Request, manager: Manager, repo: Repo, settings: Settings) -> JSONResponse:
    # Read by hand: only a manager's body is read (CONTRACT.md, authorization before validation).
    body = await read_json_body(request, QaUpload, settings.max_qa_body_bytes)
    dataset = await qa_datasets.upload(repo, manager, body, settings.max_qa_body_bytes)
    return JSONResponse({"response": "success", "dataset_id": dataset.id})


@router.get("/dataset/list", summary="List Q&A datasets", response_model=Envelope001[list[DatasetEntry001]])
async def list_datasets(manager: Manager, repo: Repo) -> JSONResponse:
    owner = None if manager.role == "admin" else manager.user_id
    return JSONResponse({"response": [dataset_entry_001(d) for d in await repo.datasets("001", owner)]})


@router.get(
    "/dataset/get",
    summary="Areas of a Q&A dataset: sizes and assignment",
    response_model=Envelope001[list[AreaEntry001]],
)
async def get_dataset(manager: Manager, repo: Repo, tasks: Tasks, dataset_id: DatasetId = None) -> JSONResponse:
    dataset = await qa_datasets.visible_dataset(repo, manager, qa_datasets.parse_dataset_id(dataset_id))
    return JSONResponse({"response": await qa_datasets.area_report(repo, tasks, dataset)})


@router.get(
    "/dataset/download",
    summary="All records of a Q&A dataset",
    response_model=Envelope001[list[QaRecordEntry001]],
)
async def download(request: Request, manager: Manager, repo: Repo, dataset_id: DatasetId = None) -> StreamingResponse:
    dataset = await qa_datasets.visible_dataset(repo, manager, qa_datasets.parse_dataset_id(dataset_id))
    # Streamed record by record: one JSON document of the declared shape, however large the dataset.
    body = qa_datasets.download_body(request.app.state.sessionmaker, dataset.id)
    return StreamingResponse(body, media_type="application/json")
