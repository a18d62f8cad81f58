"""Admin management of API keys for the AI services (new endpoints: 003 envelope, auth's prefix)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.auth import api_keys
from services.auth.api.deps import Repo, Sessions
from services.auth.schemas import ApiKeyEntry, NewApiKey, NewApiKeyEntry, api_key_entry
from shared.db import after_commit
from shared.envelopes import ok_003
from shared.identity import Identity, require_roles
from shared.params import Id
from shared.response_models import Envelope003

router = APIRouter(tags=["API keys"])
Admin = Annotated[Identity, Depends(require_roles("admin"))]


@router.post("/user/api_keys", summary="Create an API key (shown once)", response_model=Envelope003[NewApiKeyEntry])
async def create_key(body: NewApiKey, admin: Admin, repo: Repo, sessions: Sessions, request: Request) -> JSONResponse:
    key, raw = await api_keys.create(repo, body.name, admin.user_id)
    after_commit(request, lambda: sessions.publish_api_key(key.key_hash, api_keys.key_identity(key)))
    return ok_003({**api_key_entry(key), "key": raw}, message="created: store the key now, it is not shown again")


@router.get("/user/api_keys", summary="List API keys", response_model=Envelope003[list[ApiKeyEntry]])
async def list_keys(admin: Admin, repo: Repo) -> JSONResponse:
    return ok_003([api_key_entry(k) for k in await repo.api_keys()])


@router.delete("/user/api_keys/{key_id}", summary="Revoke an API key", response_model=Envelope003[ApiKeyEntry])
async def revoke_key(key_id: Id, admin: Admin, repo: Repo, sessions: Sessions, request: Request) -> JSONResponse:
    key = await api_keys.revoke(repo, key_id, datetime.now(UTC))
    after_commit(request, lambda: sessions.withdraw_api_key(key.key_hash))
    return ok_003(api_key_entry(key), message="revoked")
