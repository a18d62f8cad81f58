"""Dependencies the tasks routers share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile as FormFile

from services.tasks.outbox import Outbox
from services.tasks.peers import AuthClient, DatasetClient
from services.tasks.repository import TasksRepository
from services.tasks.settings import TasksSettings
from shared.db import DbSession, after_commit
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.service_app import app_state

MAX_CSV_BYTES = 32 * 1024 * 1024


# Dependencies are coroutines: FastAPI runs a plain function in its thread pool, a thread hop per request.
async def _repo(request: Request, session: DbSession) -> TasksRepository:
    repo = TasksRepository(session)
    outbox: Outbox = request.app.state.outbox

    async def wake() -> None:  # ops this request wrote go out now, not at the next poll
        if repo.enqueued:
            outbox.poke()

    after_commit(request, wake)
    return repo


Repo = Annotated[TasksRepository, Depends(_repo)]
Auth = Annotated[AuthClient, app_state("auth")]
Dataset = Annotated[DatasetClient, app_state("dataset")]
Settings = Annotated[TasksSettings, app_state("settings")]


# A route that admits only some roles declares them with shared.identity.require_roles, a dependency, and
# reads its body after that check (CONTRACT.md: authorization before validation). FastAPI parses a declared
# body before any dependency runs, so such a route declares none: it reads it with
# shared.edge.read_json_body or `csv_file`, and documents it with shared.openapi.json_body or form_body.


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


async def read_csv(file: FormFile) -> bytes:
    raw = await file.read(MAX_CSV_BYTES + 1)
    if len(raw) > MAX_CSV_BYTES:
        raise PayloadTooLarge(f"the file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB")
    return raw


def attachment(content: bytes, media_type: str, filename: str) -> Response:
    """A download: `content` as the file `filename`."""
    return Response(
        content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
