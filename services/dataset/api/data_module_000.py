"""Document 000's dataset module: `POST /data_module/create_dataset`, `upload_image/<name>` (classification
and face) and `upload_images/<name>` (detection and segmentation). See `services/dataset/datasets.py`."""

from __future__ import annotations

import unicodedata

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.dataset import datasets
from services.dataset.api.deps import (
    DecodeSlots,
    Drainer,
    Manager,
    Repo,
    Settings,
)
from services.dataset.forms import Upload, text_of
from services.dataset.repository import DatasetRepository
from services.dataset.schemas import DatasetAnswer000
from shared.db import after_commit
from shared.envelopes import envelope_000
from shared.errors import InvalidRequest
from shared.openapi import form_body

router = APIRouter(tags=["datasets (000)"])

MAX_DESC_CHARS = 2000
_UPLOAD_FIELDS = {
    "status": ("text", "add_label | appoint_table | default | 'N:label' (upload_images: no status with label_file)"),
    "new_label": ("text", "with add_label: 'N:label' (several: '1:cat,2:dog')"),
    "upload_image_site": ("files", "images (one or many)"),
    "table_site": ("file", "with appoint_table: lines 'image-name label' (upload_images: 'image-name xml-name')"),
}


def _ok(request: Request, dataset_id: int) -> JSONResponse:
    return JSONResponse(envelope_000(0, "OK", request.url.path, dataset_id=str(dataset_id)))


async def _dataset_id(request: Request, owner_id: int, collection_name: str) -> int:
    """Finds the dataset before the body is read, in a short read-only session of its own. Either upload
    route takes any dataset: `data_type` has no documented codes to refuse one on (CONTRACT.md)."""
    name = unicodedata.normalize("NFC", collection_name.strip())
    async with request.app.state.sessionmaker() as session:
        dataset = await datasets.find_dataset(DatasetRepository(session), owner_id, name)
    return dataset.id


@router.post(
    "/data_module/create_dataset",
    summary="Create an image dataset with its labels",
    response_model=DatasetAnswer000,
    openapi_extra=form_body(
        {
            "name": ("text", "dataset name (unique per user; the <collection_name> of the upload URLs)"),
            "data_type": (
                "text",
                "1 classification, 2 face (labelled images are enrolled), 3 detection, "
                "4 segmentation, or any other short code; no upload is refused for it",
            ),
            "desc": ("text", "description"),
            "label_type": ("text", "labels '1:cat,2:dog' (or upload_file, exactly one of the two)"),
            "upload_file": ("file", "label file: 'id:name' per line, or a Caffe labelmap prototxt"),
        },
        ("name", "data_type", "desc"),
    ),
)
async def create_dataset(
    request: Request, manager: Manager, upload: Upload, repo: Repo, settings: Settings
) -> JSONResponse:
    form = await upload.form(max_bytes=settings.max_label_file_bytes + 256 * 1024, max_files=1, max_fields=20)
    name = datasets.check_dataset_name(text_of(form, "name"))
    data_type = datasets.parse_data_type(text_of(form, "data_type"))
    description = text_of(form, "desc")
    if description is None:
        raise InvalidRequest("desc is required")
    if len(description) > MAX_DESC_CHARS:
        raise InvalidRequest(f"desc is longer than {MAX_DESC_CHARS} characters")
    labels = await datasets.labels_from_form(form, settings)
    dataset = await datasets.create_dataset(repo, manager.user_id, name, data_type, description.strip(), labels)
    return _ok(request, dataset.id)


@router.post(
    "/data_module/upload_image/{collection_name}",
    summary="Upload images (classification, face)",
    response_model=DatasetAnswer000,
    openapi_extra=form_body(_UPLOAD_FIELDS, ("status",)),
)
async def upload_image(
    collection_name: str,
    request: Request,
    manager: Manager,
    upload: Upload,
    repo: Repo,
    settings: Settings,
    slots: DecodeSlots,
    drainer: Drainer,
) -> JSONResponse:
    dataset_id = await _dataset_id(request, manager.user_id, collection_name)
    form = await upload.form(max_bytes=settings.max_upload_request_bytes, max_files=settings.max_files_per_request)
    plan = await datasets.plan_labelled_upload(form, settings, slots)
    if await datasets.apply_upload(repo, upload, dataset_id, plan, settings):
        after_commit(request, drainer.kick_async)
    return _ok(request, dataset_id)


@router.post(
    "/data_module/upload_images/{collection_name}",
    summary="Upload images (detection, segmentation)",
    response_model=DatasetAnswer000,
    openapi_extra=form_body({**_UPLOAD_FIELDS, "label_file": ("files", "Pascal VOC XML, one per image")}),
)
async def upload_images(
    collection_name: str,
    request: Request,
    manager: Manager,
    upload: Upload,
    repo: Repo,
    settings: Settings,
    slots: DecodeSlots,
) -> JSONResponse:
    dataset_id = await _dataset_id(request, manager.user_id, collection_name)
    form = await upload.form(max_bytes=settings.max_upload_request_bytes, max_files=settings.max_files_per_request)
    plan = await datasets.plan_boxed_upload(form, settings, slots)
    await datasets.apply_upload(repo, upload, dataset_id, plan, settings)
    return _ok(request, dataset_id)
