"""004's record shapes: the answers' models, as the API documentation declares them, and the functions
that build the answers."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from pydantic import BaseModel, Field

from services.stats.models import Record


class RecordEntry(BaseModel):
    """A detection record (`record_entry`)."""

    figId: int = Field(description="the record's id; its result image is /api/data/figure/{figId}")
    name: str = Field(description="the image's file name")
    date: str = Field(examples=["2024-05-01"], description="UTC day of the detection")
    time: str = Field(examples=["13:45:09"], description="UTC time of the detection")
    label: str = Field(description="classes found, comma-separated")
    num: int = Field(description="defects found")
    dice: float = Field(description="confidence in 0-1")


class SearchEntry(RecordEntry):
    resFig: str = Field(description="the result image's URL")


class SearchPage(BaseModel):
    total: int = Field(description="records that match, on every page")
    data: list[SearchEntry]


class DayCount(BaseModel):
    record_count: int = Field(description="detection records that day")
    stat_date: str = Field(examples=["2024-05-01"])
    total_num: int = Field(description="defects found that day")


def figure_url(fig_id: int) -> str:
    return f"/api/data/figure/{fig_id}"


def record_entry(record: Record) -> dict[str, Any]:
    moment = record.created_at.astimezone(UTC)
    return {
        "figId": record.id,
        "name": record.name,
        "date": moment.strftime("%Y-%m-%d"),
        "time": moment.strftime("%H:%M:%S"),
        "label": record.label,
        "num": record.num,
        "dice": record.dice,
    }


def search_entry(record: Record) -> dict[str, Any]:
    return {**record_entry(record), "resFig": figure_url(record.id)}
