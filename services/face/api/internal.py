"""Internal endpoints (signed service calls only; the gateway never routes /internal).

POST /internal/face-login/enroll    {"user_id", "image"}  -> 200 {"user_id"}             (auth)
POST /internal/face-login/identify  {"image"}             -> 200 {"user_id"}             (auth)
POST /internal/datasets/enroll      {"collection", "owner_id", "target_id", "image_key", "image",
                                     "enrolment_id"}
                                    -> 200 {"collection", "target_id", "feature_id", "duplicate"} (dataset)
refusals: {"reason", "detail"} (and "check" for unusable_face) with 422, 413 or 409
          (services/face/face_login_and_datasets.py)
GET  /internal/face/indexes         this replica's indexes: version, size and kind per collection id
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.face import face_login_and_datasets
from services.face.api.deps import AfterCommitHook, Context, Repo
from services.face.face_login_and_datasets import Enrolment, Refusal
from services.face.schemas import MAX_OWNER_ID
from shared.edge import read_json_body
from shared.identity import InternalCaller

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


class EnrollUser(BaseModel):
    user_id: int
    image: str


class Identify(BaseModel):
    image: str


class DatasetEnrolment(BaseModel):
    collection: str = Field(min_length=1, max_length=128)
    owner_id: int = Field(ge=1, le=MAX_OWNER_ID)  # the dataset's owner, who owns its collection
    target_id: str = Field(min_length=1, max_length=256)
    image_key: str = Field(min_length=1, max_length=64)
    image: str
    enrolment_id: int


def refused(refusal: Refusal) -> JSONResponse:
    body = {"reason": refusal.reason, "detail": refusal.detail}
    if refusal.check is not None:
        body["check"] = refusal.check
    return JSONResponse(body, status_code=refusal.status)


@router.post("/face-login/enroll")
async def enroll_user(
    request: Request, caller: InternalCaller, ctx: Context, repo: Repo, hook: AfterCommitHook
) -> JSONResponse:
    body = await read_json_body(request, EnrollUser, ctx.settings.face_max_body_bytes)
    await face_login_and_datasets.enroll_user(ctx, repo, body.user_id, body.image, hook)
    return JSONResponse({"user_id": body.user_id})


@router.post("/face-login/identify")
async def identify_user(request: Request, caller: InternalCaller, ctx: Context) -> JSONResponse:
    body = await read_json_body(request, Identify, ctx.settings.face_max_body_bytes)
    return JSONResponse({"user_id": await face_login_and_datasets.identify_user(ctx, body.image)})


@router.post("/datasets/enroll")
async def enroll_dataset_image(
    request: Request, caller: InternalCaller, ctx: Context, repo: Repo, hook: AfterCommitHook
) -> JSONResponse:
    body = await read_json_body(request, DatasetEnrolment, ctx.settings.face_max_body_bytes)
    enrolment = Enrolment(body.collection, body.owner_id, body.target_id, body.image_key, body.image, body.enrolment_id)
    return JSONResponse(await face_login_and_datasets.enroll_image(ctx, repo, enrolment, hook))


@router.get("/face/indexes")
async def indexes(caller: InternalCaller, ctx: Context) -> JSONResponse:
    counters = ctx.registry.counters
    return JSONResponse(
        {
            "replica": ctx.bus.origin,
            "subscribed": ctx.bus.subscribed,
            "received": ctx.bus.received,
            "applied": counters.applied,
            "reloads": counters.reloads,
            "ignored": counters.ignored,
            "model": ctx.recognizer.engine.model_name if ctx.recognizer.engine else None,
            "collections": ctx.registry.describe(),
        }
    )
