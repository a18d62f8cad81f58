"""Validation of 001's Q&A dataset upload (``POST /dataset/upload``, field ``dataset_json``).

``dataset_json`` is ``JSON.stringify(data)`` of a list of records::

    {"data_background": str, "data_question": str, "data_answer": [{"answer": str, "ranking_number": int,
     "reserve": int}, ...], "data_area": str, "data_keyword": str, "other": str}

Clients also send the list itself (a JSON body) or ``data_answer`` as a JSON string; both are accepted.
Errors name the record (from 0, as in the client's array) and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .ingest import IngestError

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_RECORDS = 100_000
MAX_FIELD_CHARS = 100_000
MAX_ANSWERS = 100
MAX_AREA_CHARS = 64  # the area names a domain and an expert's speciality: a short tag, not prose

TEXT_FIELDS = ("data_background", "data_question", "data_area", "data_keyword", "other")
REQUIRED_FIELDS = ("data_question", "data_area")


class QaError(IngestError):
    """``dataset_json`` is malformed; ``index`` and ``field`` locate the problem when it is in a record."""

    def __init__(
        self, reason: str, index: int | None = None, field: str | None = None, source: str = "dataset_json"
    ) -> None:
        where = "" if index is None else f"record {index}" + (f", field {field!r}" if field else "") + ": "
        super().__init__(source, where + reason)
        self.index = index
        self.field = field


@dataclass(frozen=True)
class QaAnswer:
    answer: str
    ranking_number: int = 0
    reserve: int = 0


@dataclass(frozen=True)
class QaRecord:
    data_question: str
    data_area: str
    data_answer: tuple[QaAnswer, ...] = ()
    data_background: str = ""
    data_keyword: str = ""
    other: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The record in 001's shape (``data_answer`` as a list of objects)."""
        record = asdict(self)
        record["data_answer"] = [asdict(answer) for answer in self.data_answer]
        return record


def parse_dataset_json(
    value: str | bytes | list[Any],
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_records: int = MAX_RECORDS,
    max_field_chars: int = MAX_FIELD_CHARS,
) -> list[QaRecord]:
    """Validate a whole upload; the first problem found raises ``QaError``."""
    data = _load(value, max_bytes) if isinstance(value, (str, bytes)) else value
    if not isinstance(data, list):
        raise QaError(f"must be a JSON array of records, got {_json_type(data)}")
    if not data:
        raise QaError("the dataset has no records")
    if len(data) > max_records:
        raise QaError(f"{len(data)} records, more than the limit of {max_records}")
    return [_record(item, index, max_field_chars) for index, item in enumerate(data)]


def _load(value: str | bytes, max_bytes: int) -> Any:
    size = len(value.encode() if isinstance(value, str) else value)
    if size > max_bytes:
        raise QaError(f"larger than {max_bytes} bytes")
    try:
        return json.loads(value, parse_constant=_reject_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QaError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise QaError("not valid JSON (nested too deeply)") from None


def _reject_constant(name: str) -> Any:
    raise QaError(f"not valid JSON ({name} is not a JSON number)")


def _record(item: Any, index: int, max_chars: int) -> QaRecord:
    if not isinstance(item, Mapping):
        raise QaError(f"must be an object, got {_json_type(item)}", index)
    texts = {name: _text(item.get(name), index, name, max_chars) for name in TEXT_FIELDS}
    for name in REQUIRED_FIELDS:
        if not texts[name].strip():
            raise QaError("is required and must not be empty", index, name)
    if len(texts["data_area"]) > MAX_AREA_CHARS:
        raise QaError(f"longer than {MAX_AREA_CHARS} characters", index, "data_area")
    return QaRecord(data_answer=_answers(item.get("data_answer"), index, max_chars), **texts)


def _text(value: Any, index: int, name: str, max_chars: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise QaError(f"must be a string, got {_json_type(value)}", index, name)
    if len(value) > max_chars:
        raise QaError(f"longer than {max_chars} characters", index, name)
    return value


def _answers(value: Any, index: int, max_chars: int) -> tuple[QaAnswer, ...]:
    field = "data_answer"
    if value is None:
        return ()
    if isinstance(value, str):  # a JSON-encoded list, as a form field would carry it
        if len(value) > MAX_ANSWERS * (max_chars + 100):
            raise QaError("too long", index, field)
        try:
            value = json.loads(value, parse_constant=_reject_constant) if value.strip() else []
        except (json.JSONDecodeError, RecursionError, QaError):
            raise QaError("is a string but not a JSON array", index, field) from None
    if not isinstance(value, list):
        raise QaError(f"must be an array of answers, got {_json_type(value)}", index, field)
    if len(value) > MAX_ANSWERS:
        raise QaError(f"{len(value)} answers, more than the limit of {MAX_ANSWERS}", index, field)
    return tuple(_answer(answer, index, f"{field}[{n}]", max_chars) for n, answer in enumerate(value))


def _answer(value: Any, index: int, where: str, max_chars: int) -> QaAnswer:
    if not isinstance(value, Mapping):
        raise QaError(f"must be an object with answer, ranking_number, reserve; got {_json_type(value)}", index, where)
    return QaAnswer(
        answer=_text(value.get("answer"), index, f"{where}.answer", max_chars),
        ranking_number=_integer(value.get("ranking_number", 0), index, f"{where}.ranking_number"),
        reserve=_flag(value.get("reserve", 0), index, f"{where}.reserve"),
    )


def _integer(value: Any, index: int, where: str) -> int:
    # Form-encoded and spreadsheet-made uploads carry numbers as strings, and JavaScript writes 1.0 as 1
    # but other clients may not.
    if (isinstance(value, str) and value.strip().isascii() and value.strip().isdigit()) or (
        isinstance(value, float) and value.is_integer()
    ):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        shown = value if isinstance(value, int) else _json_type(value)
        raise QaError(f"must be a non-negative integer, got {shown}", index, where)
    return value


def _flag(value: Any, index: int, where: str) -> int:
    if isinstance(value, bool):  # true/false is the obvious meaning of a 0/1 flag
        return int(value)
    number = _integer(value, index, where)
    if number not in (0, 1):
        raise QaError(f"must be 0 or 1, got {number}", index, where)
    return number


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
