"""Dependencies the dataset routers share."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import Depends, Request

from services.dataset.enrolment import EnrolmentDrainer
from services.dataset.forms import limited_stream
from services.dataset.repository import DatasetRepository
from services.dataset.settings import DatasetSettings
from services.dataset.storage import ObjectStore
from shared.db import DbSession
from shared.errors import InvalidRequest
from shared.http import ServiceClient
from shared.identity import Identity, require_roles


def _repo(session: DbSession) -> DatasetRepository:
    return DatasetRepository(session)


def _state(name: str) -> Any:
    def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(dependency)


Repo = Annotated[DatasetRepository, Depends(_repo)]
Settings = Annotated[DatasetSettings, _state("settings")]
Store = Annotated[ObjectStore, _state("store")]
DecodeSlots = Annotated[asyncio.Semaphore, _state("decode_slots")]
Tasks = Annotated[ServiceClient, _state("tasks")]
Drainer = Annotated[EnrolmentDrainer, _state("enrolment")]

# 000's users and 001's managers are requesters (`demand`); an admin may do what they do.
MANAGER_ROLES = ("demand", "admin")
require_manager = require_roles(*MANAGER_ROLES)
Manager = Annotated[Identity, Depends(require_manager)]
# Any account, but not an API key: keys open the AI services only, and act for no user here.
User = Annotated[Identity, Depends(require_roles("admin", "demand", "tag", "agent"))]


async def json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """A JSON object body of at most `max_bytes`."""
    body = bytearray()
    async for chunk in limited_stream(request, max_bytes):
        body.extend(chunk)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidRequest("参数错误: 请求体不是合法的JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("参数错误: 请求体必须是JSON对象")
    return value


def form_doc(fields: dict[str, tuple[str, str]], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAPI for a form the route parses itself: {name: (kind, description)}, kind = text | file | files."""
    properties: dict[str, Any] = {}
    for name, (kind, description) in fields.items():
        if kind == "text":
            properties[name] = {"type": "string", "description": description}
        elif kind == "file":
            properties[name] = {"type": "string", "format": "binary", "description": description}
        else:
            properties[name] = {"type": "array", "items": {"type": "string", "format": "binary"},
                                "description": description}
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}
