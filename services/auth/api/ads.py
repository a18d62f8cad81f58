"""Document 003's `/advertise/*`: ads bought with points."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.auth import wallet
from services.auth.api.deps import IdempotencyKey, ReadRepo, Repo
from services.auth.schemas import AD_TYPE_CHARS, AdEntry, AdPublished, PublishAd, RenewAd, ad_entry
from shared.envelopes import ok_003
from shared.identity import CurrentIdentity
from shared.params import Id
from shared.response_models import Empty, Envelope003

router = APIRouter(tags=["ads (003)"])

MAX_ADS_SHOWN = 50  # 003 sets no limit on `num`: a larger one gets what the pool holds, up to this


@router.post("/advertise/publish", response_model=Envelope003[AdPublished])
async def publish(body: PublishAd, identity: CurrentIdentity, repo: Repo, key: IdempotencyKey) -> JSONResponse:
    ad = await wallet.publish_ad(
        repo, identity.user_id, body.time, body.type, body.url, f"ad:{identity.user_id}:{key}", datetime.now(UTC)
    )
    return ok_003({"ad_id": ad.id} if ad else {}, message="ad published")


@router.get("/advertise/get_ad", response_model=Envelope003[list[str]], description="The pictures' URLs.")
async def get_ad(
    repo: ReadRepo,
    type: Annotated[str | None, Query(max_length=AD_TYPE_CHARS)] = None,
    num: Annotated[int, Query(ge=1, description=f"how many (at most {MAX_ADS_SHOWN} are drawn)")] = 1,
) -> JSONResponse:
    ads = await repo.random_live_ads(type, min(num, MAX_ADS_SHOWN), datetime.now(UTC))
    return ok_003([ad.url for ad in ads], message="succeed")


@router.get("/advertise/get_my_ad", response_model=Envelope003[list[AdEntry]])
async def get_my_ad(identity: CurrentIdentity, repo: Repo) -> JSONResponse:
    return ok_003([ad_entry(ad) for ad in await repo.ads_of(identity.user_id)])


@router.post("/advertise/renew/{ad_id}", response_model=Envelope003[Empty])
async def renew(ad_id: Id, body: RenewAd, identity: CurrentIdentity, repo: Repo, key: IdempotencyKey) -> JSONResponse:
    await wallet.renew_ad(
        repo, identity.user_id, ad_id, body.time, f"ad-renew:{identity.user_id}:{key}", datetime.now(UTC)
    )
    return ok_003(message="ad renewed")
