"""Dependencies the tasks routers share."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request, UploadFile

from services.tasks.outbox import Outbox
from services.tasks.peers import AuthClient, DatasetClient
from services.tasks.repository import TasksRepository
from services.tasks.settings import TasksSettings
from shared.db import DbSession, after_commit
from shared.errors import InvalidRequest, PayloadTooLarge

MAX_CSV_BYTES = 32 * 1024 * 1024


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


async def json_object(request: Request, max_bytes: int = 1024 * 1024) -> dict[str, Any]:
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


async def read_csv(file: UploadFile) -> bytes:
    raw = await file.read(MAX_CSV_BYTES + 1)
    if len(raw) > MAX_CSV_BYTES:
        raise PayloadTooLarge(f"the file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB")
    return raw
