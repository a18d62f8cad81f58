"""004's record shapes."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from services.stats.models import Record


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
