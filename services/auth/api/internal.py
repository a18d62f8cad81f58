"""Internal endpoints for other services (signed calls only; the gateway never routes /internal)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.auth import accounts, escrow
from services.auth.api.deps import Repo
from services.auth.models import Escrow
from services.auth.schemas import EscrowMove, EscrowRefund, public_profile
from shared.envelopes import ok_003
from shared.identity import InternalCaller

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


class UserIds(BaseModel):
    user_ids: list[int] = Field(max_length=10_000)


def _escrow_body(item: Escrow) -> dict[str, object]:
    return {"escrow_id": item.id, "owner_id": item.owner_id, "balance": item.balance}


@router.post("/escrow/hold")
async def hold(body: EscrowMove, caller: InternalCaller, repo: Repo) -> JSONResponse:
    return ok_003(_escrow_body(await escrow.hold(repo, body.escrow_id, body.user_id, body.amount,
                                                 f"{caller}:{body.idempotency_key}")))


@router.post("/escrow/payout")
async def payout(body: EscrowMove, caller: InternalCaller, repo: Repo) -> JSONResponse:
    return ok_003(_escrow_body(await escrow.pay_out(repo, body.escrow_id, body.user_id, body.amount,
                                                    f"{caller}:{body.idempotency_key}")))


@router.post("/escrow/refund")
async def refund(body: EscrowRefund, caller: InternalCaller, repo: Repo) -> JSONResponse:
    return ok_003(_escrow_body(await escrow.refund(repo, body.escrow_id, body.amount,
                                                   f"{caller}:{body.idempotency_key}")))


@router.get("/users/{user_id}")
async def user(user_id: int, caller: InternalCaller, repo: Repo) -> JSONResponse:
    found = await accounts.existing_user(repo, user_id)
    return ok_003({**public_profile(found, datetime.now(UTC)), "area": found.area})


@router.post("/users/batch")
async def users(body: UserIds, caller: InternalCaller, repo: Repo) -> JSONResponse:
    now = datetime.now(UTC)
    found = await repo.users_by_ids(body.user_ids)
    return ok_003([{**public_profile(u, now), "area": u.area} for u in found])
