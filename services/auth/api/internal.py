"""Internal endpoints for other services (signed calls only; the gateway never routes /internal)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.auth import accounts, adjustments, escrow
from services.auth.api.deps import ReadRepo, Repo
from services.auth.models import Escrow
from services.auth.schemas import EscrowMove, EscrowRefund, public_profile
from shared.envelopes import ok_003
from shared.identity import InternalCaller
from shared.params import Id

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


class UserIds(BaseModel):
    user_ids: list[int] = Field(max_length=10_000)


class GrowValue(BaseModel):
    amount: int = Field(gt=0, le=1_000_000)
    idempotency_key: str = Field(min_length=8, max_length=200)


class Credit(BaseModel):
    delta: int = Field(ge=-1000, le=1000)
    idempotency_key: str = Field(min_length=8, max_length=200)


def _escrow_body(item: Escrow) -> dict[str, object]:
    return {"escrow_id": item.id, "owner_id": item.owner_id, "balance": item.balance}


@router.post("/escrow/hold")
async def hold(body: EscrowMove, caller: InternalCaller, repo: Repo) -> JSONResponse:
    return ok_003(
        _escrow_body(
            await escrow.hold(repo, body.escrow_id, body.user_id, body.amount, f"{caller}:{body.idempotency_key}")
        )
    )


@router.post("/escrow/payout")
async def payout(body: EscrowMove, caller: InternalCaller, repo: Repo) -> JSONResponse:
    return ok_003(
        _escrow_body(
            await escrow.pay_out(repo, body.escrow_id, body.user_id, body.amount, f"{caller}:{body.idempotency_key}")
        )
    )


@router.post("/escrow/refund")
async def refund(body: EscrowRefund, caller: InternalCaller, repo: Repo) -> JSONResponse:
    return ok_003(
        _escrow_body(await escrow.refund(repo, body.escrow_id, body.amount, f"{caller}:{body.idempotency_key}"))
    )


@router.get("/users")
async def users_page(
    caller: InternalCaller,
    repo: ReadRepo,
    role: Annotated[str | None, Query(pattern="^(admin|demand|tag|agent)$")] = None,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JSONResponse:
    """Users in id order, a page at a time (`after_id` = the last id of the previous page)."""
    now = datetime.now(UTC)
    return ok_003([{**public_profile(u, now), "area": u.area} for u in await repo.users_page(role, after_id, limit)])


@router.post("/users/{user_id}/grow_value")
async def grow_value(user_id: Id, body: GrowValue, caller: InternalCaller, repo: Repo) -> JSONResponse:
    user = await adjustments.adjust(repo, user_id, "grow_value", body.amount, f"{caller}:{body.idempotency_key}")
    return ok_003({"user_id": user.id, "grow_value": user.grow_value})


@router.post("/users/{user_id}/credit")
async def credit(user_id: Id, body: Credit, caller: InternalCaller, repo: Repo) -> JSONResponse:
    user = await adjustments.adjust(repo, user_id, "credit", body.delta, f"{caller}:{body.idempotency_key}")
    return ok_003({"user_id": user.id, "credit_score": user.credit_score})


@router.get("/users/{user_id}")
async def user(user_id: Id, caller: InternalCaller, repo: ReadRepo) -> JSONResponse:
    found = await accounts.shown_user(repo, user_id)
    return ok_003({**public_profile(found, datetime.now(UTC)), "area": found.area})


@router.post("/users/batch")
async def users(body: UserIds, caller: InternalCaller, repo: ReadRepo) -> JSONResponse:
    now = datetime.now(UTC)
    found = await repo.users_by_ids(body.user_ids)
    return ok_003([{**public_profile(u, now), "area": u.area} for u in found])
