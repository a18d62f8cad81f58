"""Request and response shapes of the dataset service that are not the domain modules' own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .models import Dataset, QaRecord

NO_DATE = "-/-/-"


# 001 ---------------------------------------------------------------------------------------------


class QaUpload(BaseModel):
    """001's `POST /dataset/upload`: a Q&A dataset's name and description, and its records, which
    `qa.parse_dataset_json` checks one by one (errors name the record and the field)."""

    model_config = ConfigDict(extra="ignore")

    dataset_name: str = Field(min_length=1, max_length=128, pattern=r"\S", description="数据集名称")
    dataset_task_type: str | None = Field(None, max_length=128, description="数据集任务类型")
    dataset_source: str | None = Field(None, max_length=256, description="数据集来源")
    dataset_json: str | list[dict[str, Any]] = Field(
        description=(
            "数据集的所有数据: JSON.stringify(data), or data itself; data is an array of records "
            '{"data_background", "data_question", "data_answer": [{"answer", "ranking_number", "reserve"}, ...], '
            '"data_area", "data_keyword", "other"}, all strings but data_answer; data_question and data_area '
            "are required"
        )
    )


def date_001(value: datetime | None) -> str:
    """001's dates: "2024/01/12", or "-/-/-" for none."""
    return value.strftime("%Y/%m/%d") if value else NO_DATE


def dataset_entry_001(dataset: Dataset) -> dict[str, Any]:
    """A row of `GET /dataset/list`."""
    return {
        "dataset_id": dataset.id,
        "dataset_name": dataset.name,
        "dataset_task_type": dataset.task_type,
        "dataset_source": dataset.source,
        "dataset_upload_time": date_001(dataset.created_at),
        "dataset_assign_time": date_001(dataset.assigned_at),
        "status": dataset.status,
    }


def record_entry_001(record: QaRecord) -> dict[str, Any]:
    """A record of `GET /dataset/download`."""
    return {
        "data_background": record.background,
        "data_question": record.question,
        "data_answer": record.answer,
        "data_area": record.area,
        "data_keyword": record.keyword,
        "other": record.other,
        "expert_name": record.expert_name or "-",
    }


def record_line(record: QaRecord) -> dict[str, Any]:
    """A record with its id and labelling state (JSON Lines export, internal API)."""
    return {
        "data_id": record.id,
        "data_background": record.background,
        "data_question": record.question,
        "data_answer": record.answer,
        "data_area": record.area,
        "data_keyword": record.keyword,
        "other": record.other,
        "is_labeled": int(record.labeled),
        "data_reserve": record.reserve,
        "expert_name": record.expert_name or "-",
    }


# internal API (the tasks service) ----------------------------------------------------------------


class DatasetStatus(BaseModel):
    status: str
    assigned_at: datetime | None = None


class ExpertLabel(BaseModel):
    expert_name: str = Field(min_length=1, max_length=64)
    data_answer: Any = None
    data_reserve: int = Field(1, ge=0, le=1)
    data_question: str | None = Field(None, max_length=100_000)
