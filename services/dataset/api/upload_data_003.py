"""Document 003's `POST /task/upload_data` (see `services/dataset/uploads.py`).

Besides the documented body, the answer carries the id of the dataset the upload became in the
`X-Labelhive-Dataset-Id` header, for `GET /dataset/export/{id}?format=jsonl` (texts) or any image format.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.dataset import uploads
from services.dataset.api.deps import DecodeSlots, Manager, Repo, Settings
from services.dataset.forms import Upload
from services.dataset.schemas import InterruptedUpload, UploadedFile
from shared.envelopes import ok_003
from shared.openapi import form_body
from shared.response_models import Envelope003

router = APIRouter(tags=["task data (003)"])

DATASET_HEADER = "X-Labelhive-Dataset-Id"


@router.post(
    "/task/upload_data",
    summary="Upload question data: a zip of 1.txt, 2.txt, ... or 1.jpg, ...",
    # Code 0 with every file, or code 20 (a gap in the numbers) with those kept: both are 200 OK.
    response_model=Envelope003[list[UploadedFile]] | Envelope003[InterruptedUpload],
    openapi_extra=form_body({"file": ("file", "a zip archive")}, ("file",)),
)
@router.post("/task/upload_data/", include_in_schema=False)
async def upload_data(
    requester: Manager,
    ticket: uploads.Throttled,
    upload: Upload,
    repo: Repo,
    settings: Settings,
    slots: DecodeSlots,
    data_type: Annotated[str | None, Query(max_length=16, description="text or image")] = None,
) -> JSONResponse:
    kind = uploads.parse_kind(data_type)
    outcome = await uploads.upload_data(upload, repo, requester, kind, ticket, settings, slots)
    headers = {DATASET_HEADER: str(outcome.dataset_id)}
    if outcome.check.interrupted:
        return JSONResponse(
            {
                "code": 20,
                "message": "file sequence interrupt",
                "data": {
                    "files": outcome.files,
                    "upload_num": outcome.check.upload_num,
                    "legal_num": outcome.check.legal_num,
                },
            },
            headers=headers,
        )
    response = ok_003(outcome.files)
    response.headers.update(headers)
    return response
