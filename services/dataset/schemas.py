"""Request and response shapes of the dataset service that are not the domain modules' own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.response_models import Envelope000Data, Envelope001

from .models import Dataset, QaRecord

NO_DATE = "-/-/-"


# 000 ---------------------------------------------------------------------------------------------


class DatasetAnswer000(Envelope000Data):
    """What `create_dataset` and both upload routes answer."""

    dataset_id: str = Field(description="the dataset's id, as text")


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


class QaUploaded(Envelope001[str]):
    """`POST /dataset/upload`: `response` is "success"."""

    dataset_id: int


class DatasetEntry001(BaseModel):
    """A row of `GET /dataset/list` (`dataset_entry_001`)."""

    dataset_id: int
    dataset_name: str
    dataset_task_type: str
    dataset_source: str
    dataset_upload_time: str = Field(description='"2024/01/12"')
    dataset_assign_time: str = Field(description='the last assignment, "2024/01/12", or "-/-/-" for none')
    status: str = Field(description="未分配, 已分配, 已完成 or 已结束")


class AreaEntry001(BaseModel):
    """An area of `GET /dataset/get` (`qa_datasets.area_report`)."""

    area: str
    data_size: int = Field(description="records in this area")
    dataset_size: int = Field(description="records in the whole dataset")
    is_assigned: bool
    expert_name: str = Field(description='the experts it is assigned to, comma-separated; "-" when none')


class QaAnswerEntry(BaseModel):
    answer: str
    ranking_number: int
    reserve: int


class QaRecordEntry001(BaseModel):
    """A record of `GET /dataset/download` (`record_entry_001`)."""

    data_background: str
    data_question: str
    data_answer: list[QaAnswerEntry]
    data_area: str
    data_keyword: str
    other: str
    expert_name: str = Field(description='"-" until an expert labelled it')


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


# 003 ---------------------------------------------------------------------------------------------


class StoredUrl(BaseModel):
    """The image bed's and the media bed's upload answer."""

    url: str = Field(description="where the file is served: /picbed/<name> or /video/<name>")


class UploadedFile(BaseModel):
    """A kept file of `POST /task/upload_data`."""

    filename: str
    tag: str = Field(description="a text's text_id, or an image's URL on the image bed")


class InterruptedUpload(BaseModel):
    """`POST /task/upload_data` with a gap in its file numbers (code 20): what was kept, 1..legal_num."""

    files: list[UploadedFile]
    upload_num: int = Field(description="files in the archive")
    legal_num: int = Field(description="files kept: the unbroken run from 1")


# exports -----------------------------------------------------------------------------------------


class CocoCategory(BaseModel):
    id: int
    name: str
    supercategory: str


class CocoImage(BaseModel):
    id: int
    file_name: str
    width: int
    height: int


class CocoAnnotation(BaseModel):
    id: int
    image_id: int
    category_id: int
    bbox: list[float] = Field(description="[x, y, width, height]")
    area: float
    iscrowd: int
    segmentation: list[list[float]] = Field(description="the box as a polygon")


class CocoFile(BaseModel):
    """`format=coco`: a COCO detection file (`export_formats.write_coco`)."""

    info: dict[str, Any]
    licenses: list[Any]
    categories: list[CocoCategory]
    images: list[CocoImage]
    annotations: list[CocoAnnotation]


# internal API (the tasks service) ----------------------------------------------------------------


class DatasetStatus(BaseModel):
    status: str
    assigned_at: datetime | None = None


class ExpertLabel(BaseModel):
    expert_name: str = Field(min_length=1, max_length=64)
    data_answer: Any = None
    data_reserve: int = Field(1, ge=0, le=1)
    data_question: str | None = Field(None, max_length=100_000)
