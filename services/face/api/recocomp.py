"""Document 002, the face recognition engine, under /api/v1/engine/recocomp/.

Every endpoint answers GET and POST (002 documents GET, its client examples POST a JSON body), with the
body as JSON or, for a GET without one, as query parameters; with or without a trailing slash. A session
or an `X-API-Key` is required (CONTRACT.md); without one the answer is 401 in 002's envelope.

Collections belong to whoever made them; who reaches which is `collection_operations.Scope`. Admins may add
`owner_id` to any request that names a collection (not in 002).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.face import collection_operations as ops
from services.face.api.deps import AfterCommitHook, Context, Repo
from services.face.collection_operations import Scope, WriteResult
from services.face.errors import FaceApiError, TargetQuotaExceeded, UpdateFailed, is_database_error
from services.face.schemas import (
    ERROR_RESPONSES,
    CollectionBody,
    CollectionStatusAnswer,
    CompareAnswer,
    CompareBody,
    DeleteIdBody,
    FacesBody,
    Fields,
    SearchAnswer,
    SearchBody,
    StatusAnswer,
    StatusBody,
    UpdateAnswer,
    VersionAnswer,
    WriteAnswer,
    collection_name,
    collection_names,
    documented,
    image,
    images_and_targets,
    invalid_block,
    owner_id,
    read_fields,
    targets_to_delete,
    top_k,
)
from shared.errors import LabelhiveError
from shared.identity import CurrentIdentity, Identity
from shared.response_models import Envelope002

log = logging.getLogger(__name__)

PREFIX = "/api/v1/engine/recocomp"
router = APIRouter(tags=["face recognition (002)"])


def _version() -> str:
    try:
        return "V" + metadata.version("labelhive")
    except metadata.PackageNotFoundError:
        return "V0.0.0"


VERSION = _version()


Route = Callable[..., Awaitable[JSONResponse]]


def endpoint(
    path: str, summary: str, answer: type[Envelope002], body: type[BaseModel] | None = None
) -> Callable[[Route], Route]:
    """Registers `function` for GET and POST: one operation each (ids `<function>_get`, `<function>_post`),
    with the request that method takes and the answer it gives."""

    def register(function: Route) -> Route:
        for method in ("GET", "POST"):
            router.add_api_route(
                PREFIX + path,
                function,
                methods=[method],
                summary=summary,
                operation_id=f"{function.__name__}_{method.lower()}",
                response_model=answer,
                openapi_extra=documented(body, method) if body is not None else None,
                responses=ERROR_RESPONSES,
                response_class=JSONResponse,
            )
        router.add_api_route(PREFIX + path + "/", function, methods=["GET", "POST"], include_in_schema=False)
        return function

    return register


def ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"err_code": 0, **fields})


async def _fields(request: Request, ctx: ops.FaceContext) -> Fields:
    return await read_fields(request, ctx.settings.face_max_body_bytes)


def _scope(identity: Identity, fields: Fields) -> Scope:
    return Scope.of(identity, owner_id(fields))


# --- system --------------------------------------------------------------------------------------


@endpoint("/version", "The engine's version", VersionAnswer)
async def version(identity: CurrentIdentity) -> JSONResponse:
    return ok(version=VERSION)


@endpoint("/license", "License activation status", StatusAnswer)
async def license_status(identity: CurrentIdentity) -> JSONResponse:
    # Self-hosted, with openly licensed models (YuNet: MIT, SFace: Apache-2.0): nothing to activate.
    return ok(status="Authorized")


# --- collections ---------------------------------------------------------------------------------


@endpoint("/create/collection", "Create a collection (at most 30 per owner)", StatusAnswer, CollectionBody)
async def create_collection(
    request: Request, identity: CurrentIdentity, ctx: Context, repo: Repo, hook: AfterCommitHook
) -> JSONResponse:
    fields = await _fields(request, ctx)
    await ops.create(ctx, repo, _scope(identity, fields), collection_name(fields), hook)
    return ok(status="Create collection successfully!")


@endpoint("/clear/collection", "Remove every face of a collection", StatusAnswer, CollectionBody)
async def clear_collection(
    request: Request, identity: CurrentIdentity, ctx: Context, repo: Repo, hook: AfterCommitHook
) -> JSONResponse:
    fields = await _fields(request, ctx)
    await ops.clear(ctx, repo, _scope(identity, fields), collection_name(fields), hook)
    return ok(status="Clear collection successfully!")


@endpoint("/delete/collection", "Delete a collection and its faces", StatusAnswer, CollectionBody)
async def delete_collection(
    request: Request, identity: CurrentIdentity, ctx: Context, repo: Repo, hook: AfterCommitHook
) -> JSONResponse:
    fields = await _fields(request, ctx)
    await ops.drop(ctx, repo, _scope(identity, fields), collection_name(fields), hook)
    return ok(status="Delete collection successfully!")


@endpoint(
    "/collection/status",
    "Faces stored, creation and last update of collections ([]: all)",
    CollectionStatusAnswer,
    StatusBody,
)
async def collection_status(request: Request, identity: CurrentIdentity, ctx: Context, repo: Repo) -> JSONResponse:
    fields = await _fields(request, ctx)
    return ok(status=await ops.statuses(repo, _scope(identity, fields), collection_names(fields)))


# --- faces ---------------------------------------------------------------------------------------


def _write_answer(
    result: WriteResult, targets: list[str], status: str, update: bool, error: FaceApiError | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"err_code": 0}
    if error is not None:
        body = {"err_code": error.code, "err_msg": error.message, "detail": error.details}
    body |= {
        "invalid": invalid_block(result.problems, targets),
        "quota_exceeded_target_id": result.quota_exceeded,
        "status": status,
        "success_num": result.success_num,
    }
    if update:
        body["target_invalid"] = result.target_invalid
    return JSONResponse(body, status_code=error.status_code if error is not None else 200)


async def _write(
    request: Request, identity: Identity, ctx: ops.FaceContext, repo: Any, hook: Any, update: bool
) -> JSONResponse:
    fields = await _fields(request, ctx)
    scope, name = _scope(identity, fields), collection_name(fields)
    images, targets = images_and_targets(fields, ctx.settings.face_max_images_per_request)
    operation = ops.update if update else ops.insert
    try:
        result = await operation(ctx, repo, scope, name, images, targets, hook)
    except TargetQuotaExceeded as exc:
        return _write_answer(exc.data, targets, exc.message, update, exc)
    except LabelhiveError:
        raise
    except Exception as exc:
        if is_database_error(exc):
            raise
        log.exception("face %s failed", "update" if update else "insert")
        raise UpdateFailed(f"{type(exc).__name__}: the vectors were not stored") from exc
    status = "Update vectors successfully!" if update else "Add vectors successfully!"
    return _write_answer(result, targets, status, update)


@endpoint("/face/insert", "Add faces to target ids (at most 5 per target id)", WriteAnswer, FacesBody)
async def face_insert(
    request: Request, identity: CurrentIdentity, ctx: Context, repo: Repo, hook: AfterCommitHook
) -> JSONResponse:
    return await _write(request, identity, ctx, repo, hook, update=False)


@endpoint("/face/update", "Replace the faces of target ids", UpdateAnswer, FacesBody)
async def face_update(
    request: Request, identity: CurrentIdentity, ctx: Context, repo: Repo, hook: AfterCommitHook
) -> JSONResponse:
    return await _write(request, identity, ctx, repo, hook, update=True)


@endpoint("/delete/id", "Delete a target id and all its faces", StatusAnswer, DeleteIdBody)
async def delete_id(
    request: Request, identity: CurrentIdentity, ctx: Context, repo: Repo, hook: AfterCommitHook
) -> JSONResponse:
    fields = await _fields(request, ctx)
    scope, name = _scope(identity, fields), collection_name(fields)
    await ops.delete_targets(ctx, repo, scope, name, targets_to_delete(fields), hook)
    return ok(status="Delete target_id successfully!")


# --- search and compare --------------------------------------------------------------------------


@endpoint("/face/search", "1:N search: the target ids most like the image's face, best first", SearchAnswer, SearchBody)
async def face_search(request: Request, identity: CurrentIdentity, ctx: Context) -> JSONResponse:
    fields = await _fields(request, ctx)
    scope, name = _scope(identity, fields), collection_name(fields)
    k = top_k(fields, ctx.settings.face_max_top_k)
    return ok(status=await ops.search(ctx, scope, name, image(fields, "face_image"), k))


@endpoint("/face/compare", "1:1 verification: how likely two faces are one person (0-1)", CompareAnswer, CompareBody)
async def face_compare(request: Request, identity: CurrentIdentity, ctx: Context) -> JSONResponse:
    fields = await _fields(request, ctx)
    first, second = image(fields, "face_image1"), image(fields, "face_image2")
    return ok(score=await ops.compare(ctx, first, second))
