"""Dependencies the tasks routers share."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, UploadFile
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile as FormFile

from services.tasks.outbox import Outbox
from services.tasks.peers import AuthClient, DatasetClient
from services.tasks.repository import TasksRepository
from services.tasks.settings import TasksSettings
from shared.db import DbSession, after_commit
from shared.errors import InvalidRequest, LabelhiveError, NoPermission, PayloadTooLarge
from shared.identity import Identity

MAX_CSV_BYTES = 32 * 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024
M = TypeVar("M", bound=BaseModel)


def _repo(request: Request, session: DbSession) -> TasksRepository:
    repo = TasksRepository(session)
    outbox: Outbox = request.app.state.outbox

    async def wake() -> None:  # ops this request wrote go out now, not at the next poll
        if repo.enqueued:
            outbox.poke()

    after_commit(request, wake)
    return repo


def _state(name: str) -> Any:
    def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(dependency)


Repo = Annotated[TasksRepository, Depends(_repo)]
Auth = Annotated[AuthClient, _state("auth")]
Dataset = Annotated[DatasetClient, _state("dataset")]
Settings = Annotated[TasksSettings, _state("settings")]


# A route that admits only some roles reads its body after checking the role (CONTRACT.md: authorization
# before validation). FastAPI reads and validates a declared body before any dependency runs, so such a
# route declares none: it calls `ensure_role`, then `parse_body` or `csv_file`, and documents its body
# with `json_body_doc` or `csv_form_doc`.


def ensure_role(identity: Identity, *roles: str, error: type[LabelhiveError] = NoPermission) -> Identity:
    if identity.role not in roles:
        raise error()
    return identity


async def json_object(request: Request, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """001's bodies: a JSON object (its clients' wording for the errors)."""
    body = await request.body()
    if len(body) > max_bytes:
        raise PayloadTooLarge()
    try:
        value = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise InvalidRequest("参数错误: 请求体不是合法的JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("参数错误: 请求体必须是JSON对象")
    return value


async def parse_body(request: Request, model: type[M], max_bytes: int = MAX_JSON_BYTES) -> M:
    """003's bodies: the JSON object validated as `model` (1005 with what is wrong)."""
    body = await request.body()
    if len(body) > max_bytes:
        raise PayloadTooLarge()
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidRequest("invalid request: body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("invalid request: body must be a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidRequest(f"invalid request: {problems}") from None


def _inline_refs(schema: Any, definitions: dict[str, Any]) -> Any:
    """The schema with every `#/$defs/...` reference replaced by its definition (no recursive models here)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline_refs(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {k: _inline_refs(v, definitions) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(v, definitions) for v in schema]
    return schema


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring the JSON body a route reads with `parse_body`."""
    schema = model.model_json_schema()
    schema = _inline_refs(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def csv_form_doc(field: str, description: str) -> dict[str, Any]:
    """`openapi_extra` declaring the multipart form a route reads with `csv_file`."""
    schema = {"type": "object", "required": [field],
              "properties": {field: {"type": "string", "format": "binary", "description": description}}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


async def csv_file(request: Request, field: str) -> bytes:
    """The file in the multipart form's `field`, at most MAX_CSV_BYTES (a malformed form is starlette's 400)."""
    form = await request.form(max_files=1, max_fields=10)
    try:
        file = form.get(field)
        if not isinstance(file, FormFile):
            raise InvalidRequest(f"invalid request: {field} is required (a file)")
        return await read_csv(file)
    finally:
        await form.close()


async def read_csv(file: UploadFile) -> bytes:
    raw = await file.read(MAX_CSV_BYTES + 1)
    if len(raw) > MAX_CSV_BYTES:
        raise PayloadTooLarge(f"the file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB")
    return raw
