"""Exports of any dataset (new endpoints: 003's envelope, under the service's `/dataset/` prefix).

    GET /dataset/export/{dataset_id}?format=coco|voc|yolo|csv|jsonl[&images=0]

Image datasets: all five formats (VOC and YOLO zips carry the images unless `images=0`); Q&A and text
datasets: jsonl. The owner or an admin may export; anyone else is told the dataset does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from services.dataset import export_files
from services.dataset.api.deps import Repo, Settings, Store, User
from services.dataset.export_formats import EXPORT_FORMATS
from services.dataset.labels import LabelType
from services.dataset.schemas import CocoFile
from shared.errors import NotFound

# /dataset/* is 001's path space; these new endpoints answer in 003's envelope (shared/contract.py).
router = APIRouter(tags=["exports"])

# What the route really answers: the export file under its format's type (errors stay 003's JSON).
# COCO's is a JSON document: that one is the response model.
_EXPORT_FILES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the export file, as an attachment",
        "content": {
            spec.media_type.split(";")[0]: {}
            for spec in EXPORT_FORMATS.values()
            if spec.media_type != "application/json"
        },
    }
}


@router.get(
    "/dataset/export/{dataset_id}",
    summary="Export a dataset (COCO, VOC, YOLO, CSV, JSON Lines)",
    response_model=CocoFile,
    responses=_EXPORT_FILES,
)
async def export(
    request: Request,
    identity: User,
    repo: Repo,
    settings: Settings,
    store: Store,
    dataset_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    format: Annotated[str, Query(max_length=8, description="coco, voc, yolo, csv or jsonl")] = "coco",
    images: Annotated[bool, Query(description="VOC/YOLO: include the images")] = True,
) -> StreamingResponse:
    dataset = await repo.dataset(dataset_id)
    if dataset is None or (dataset.owner_id != identity.user_id and identity.role != "admin"):
        raise NotFound("dataset not found")
    fmt = export_files.check_format(dataset, format)
    categories = [LabelType(label.number, label.name) for label in await repo.labels(dataset.id)]
    built = await export_files.build(
        dataset, fmt, images, categories, request.app.state.sessionmaker, store, settings.scratch_dir
    )
    body, size = built.open_stream()
    return StreamingResponse(
        body,
        media_type=built.media_type,
        headers={"Content-Length": str(size), "Content-Disposition": built.content_disposition},
    )
