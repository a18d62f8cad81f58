"""Document 004's data API over the detection records. Dates are UTC days (YYYY-MM-DD)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BeforeValidator

from services.stats.repository import SearchFilter, StatsRepository
from services.stats.schemas import DayCount, RecordEntry, SearchPage, record_entry, search_entry
from shared.db import DbSession
from shared.errors import InvalidRequest, NotFound
from shared.identity import CurrentIdentity
from shared.params import BigId

router = APIRouter(prefix="/api/data", tags=["data (004)"])

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard.html"
MAX_LIMIT = 1000
MAX_DAYS = 5 * 366


# async: a plain def dependency costs a thread-pool hop on every request.
async def _repo(session: DbSession) -> StatsRepository:
    return StatsRepository(session)


Repo = Annotated[StatsRepository, Depends(_repo)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Page = Annotated[int, Query(ge=1, le=1_000_000)]
ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_day(value: object) -> object:
    """A date is written YYYY-MM-DD: not a number of seconds (`0` is no way to say 1970-01-01)."""
    if not isinstance(value, str) or not ISO_DAY.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _range(start: date | None, end: date | None) -> tuple[date, date]:
    today = datetime.now(UTC).date()
    end = end or (today if start is None else start + timedelta(days=14))
    start = start or end - timedelta(days=14)
    if start > end:
        raise InvalidRequest("startDate is after endDate")
    if (end - start).days > MAX_DAYS:
        raise InvalidRequest(f"a date range spans at most {MAX_DAYS} days")
    return start, end


@router.get("/getRecent", summary="The latest records (default 120)", response_model=list[RecordEntry])
async def get_recent(identity: CurrentIdentity, repo: Repo, limit: Limit = 120) -> JSONResponse:
    return JSONResponse([record_entry(r) for r in await repo.recent(limit)])


@router.get(
    "/statByDate", summary="Calls and defects per day (default: the last 15 days)", response_model=list[DayCount]
)
async def stat_by_date(
    identity: CurrentIdentity,
    repo: Repo,
    start_date: Annotated[Day | None, Query(alias="startDate")] = None,
    end_date: Annotated[Day | None, Query(alias="endDate")] = None,
) -> JSONResponse:
    start, end = _range(start_date, end_date)
    counts = await repo.per_day(_day_start(start), _day_start(end + timedelta(days=1)))
    days = (start + timedelta(days=i) for i in range((end - start).days + 1))
    return JSONResponse(
        [
            {
                "record_count": counts.get(d, (0, 0))[0],
                "stat_date": d.isoformat(),
                "total_num": counts.get(d, (0, 0))[1],
            }
            for d in days
        ]
    )


@router.get(
    "/getPaginated",
    deprecated=True,
    summary="Pages of records (deprecated: use /search)",
    response_model=list[RecordEntry],
)
async def get_paginated(identity: CurrentIdentity, repo: Repo, limit: Limit = 10, page: Page = 1) -> JSONResponse:
    _, rows = await repo.search(SearchFilter(), limit, (page - 1) * limit)
    return JSONResponse([record_entry(r) for r in rows])


@router.get(
    "/search",
    summary="Records filtered by name (fuzzy), defect count and dates, paged",
    response_model=SearchPage,
)
async def search(
    identity: CurrentIdentity,
    repo: Repo,
    limit: Limit = 10,
    page: Page = 1,
    name: Annotated[str | None, Query(max_length=256)] = None,
    num: Annotated[int | None, Query(ge=0)] = None,
    start_date: Annotated[Day | None, Query(alias="startDate")] = None,
    end_date: Annotated[Day | None, Query(alias="endDate")] = None,
) -> JSONResponse:
    if start_date and end_date and start_date > end_date:
        raise InvalidRequest("startDate is after endDate")
    flt = SearchFilter(
        name=name or None,
        num=num,
        start=_day_start(start_date) if start_date else None,
        end=_day_start(end_date + timedelta(days=1)) if end_date else None,
    )
    total, rows = await repo.search(flt, limit, (page - 1) * limit)
    return JSONResponse({"total": total, "data": [search_entry(r) for r in rows]})


@router.get(
    "/figure/{fig_id}",
    summary="The result image of a record (figId)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the result image"}},
)
async def figure(fig_id: BigId, identity: CurrentIdentity, repo: Repo) -> Response:
    image = await repo.figure(fig_id)
    if image is None:
        raise NotFound(f"no record {fig_id}")
    return Response(image, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/dashboard", summary="Charts of the daily calls and defects (an HTML page)", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    # The page itself is public; the data it fetches needs the viewer's session.
    return HTMLResponse(DASHBOARD.read_text())
