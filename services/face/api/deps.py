"""Dependencies the face routers share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from services.face.collection_operations import AfterCommit, FaceContext
from services.face.repository import FaceRepository
from shared.db import DbSession, after_commit


# Dependencies are coroutines: FastAPI runs a plain function in its thread pool, a thread hop per request.
async def _context(request: Request) -> FaceContext:
    context: FaceContext = request.app.state.face  # set by the lifespan (app.py)
    return context


async def _repo(session: DbSession) -> FaceRepository:
    return FaceRepository(session)


async def _after_commit(request: Request) -> AfterCommit:
    def register(action: Callable[[], Awaitable[object]]) -> None:
        after_commit(request, action)

    return register


Context = Annotated[FaceContext, Depends(_context)]
Repo = Annotated[FaceRepository, Depends(_repo)]
AfterCommitHook = Annotated[AfterCommit, Depends(_after_commit)]
