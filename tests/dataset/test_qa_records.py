import json

import pytest

from services.dataset.ingest import IngestError
from services.dataset.qa_records import QaAnswer, QaError, QaRecord, parse_dataset_json

RECORD = {
    "data_background": "背景",
    "data_question": "What is 2+2?",
    "data_answer": [
        {"answer": "4", "ranking_number": 0, "reserve": 1},
        {"answer": "5", "ranking_number": 1, "reserve": 0},
    ],
    "data_area": "math",
    "data_keyword": "arithmetic",
    "other": "",
}


def parse_one(**changes: object) -> QaRecord:
    return parse_dataset_json([{**RECORD, **changes}])[0]


def error_for(value: object, **caps: int) -> QaError:
    with pytest.raises(QaError) as excinfo:
        parse_dataset_json(value, **caps)  # type: ignore[arg-type]
    assert isinstance(excinfo.value, IngestError)
    assert excinfo.value.filename == "dataset_json"
    return excinfo.value


def test_parses_json_string_and_list() -> None:
    expected = QaRecord(
        data_background="背景",
        data_question="What is 2+2?",
        data_answer=(QaAnswer("4", 0, 1), QaAnswer("5", 1, 0)),
        data_area="math",
        data_keyword="arithmetic",
        other="",
    )
    assert parse_dataset_json(json.dumps([RECORD])) == [expected]
    assert parse_dataset_json(json.dumps([RECORD], ensure_ascii=False).encode()) == [expected]
    assert parse_dataset_json([RECORD, RECORD]) == [expected, expected]
    assert expected.to_dict() == RECORD


def test_lenient_forms() -> None:
    record = parse_one(data_answer=json.dumps(RECORD["data_answer"]), other=None, data_keyword=None)
    assert record.data_answer == (QaAnswer("4", 0, 1), QaAnswer("5", 1, 0))
    assert record.other == "" and record.data_keyword == ""
    assert parse_one(data_answer=[{"answer": "x"}]).data_answer == (QaAnswer("x", 0, 0),)
    assert parse_one(data_answer=[{"answer": "x", "ranking_number": "2", "reserve": True}]).data_answer == (
        QaAnswer("x", 2, 1),
    )
    assert parse_one(data_answer=[]).data_answer == ()
    assert parse_one(data_answer=None).data_answer == ()
    assert parse_one(extra_field="ignored").data_question == "What is 2+2?"


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"data_question": ""}, "data_question", "required"),
        ({"data_question": None}, "data_question", "required"),
        ({"data_area": "  "}, "data_area", "required"),
        ({"data_area": "x" * 65}, "data_area", "longer"),
        ({"data_background": 5}, "data_background", "must be a string, got number"),
        ({"data_keyword": ["a"]}, "data_keyword", "got array"),
        ({"data_answer": {"answer": "4"}}, "data_answer", "array of answers"),
        ({"data_answer": "not json"}, "data_answer", "not a JSON array"),
        ({"data_answer": "[NaN]"}, "data_answer", "not a JSON array"),
        ({"data_answer": ["4"]}, "data_answer[0]", "must be an object"),
        ({"data_answer": [{"answer": 4}]}, "data_answer[0].answer", "must be a string"),
        ({"data_answer": [{"answer": "4", "ranking_number": -1}]}, "data_answer[0].ranking_number", "non-negative"),
        ({"data_answer": [{"answer": "4", "ranking_number": 1.5}]}, "data_answer[0].ranking_number", "integer"),
        ({"data_answer": [{"answer": "4", "ranking_number": True}]}, "data_answer[0].ranking_number", "integer"),
        ({"data_answer": [{"answer": "4", "reserve": 2}]}, "data_answer[0].reserve", "0 or 1"),
        ({"data_answer": [{"answer": "a"}] * 101}, "data_answer", "101 answers"),
    ],
)
def test_record_errors_name_index_and_field(changes: dict, field: str, reason: str) -> None:
    error = error_for([RECORD, {**RECORD, **changes}])
    assert (error.index, error.field) == (1, field)
    assert reason in error.reason
    assert error.reason.startswith(f"record 1, field '{field}': ")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[NaN]", "not valid JSON"),
        ("{}", "JSON array"),
        ('"a string"', "JSON array"),
        ("[]", "no records"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        (b"\xff\xfe[]", "not valid JSON"),
    ],
)
def test_document_errors(value: str | bytes, reason: str) -> None:
    error = error_for(value)
    assert error.index is None
    assert reason in error.reason


def test_record_must_be_object() -> None:
    error = error_for([RECORD, "oops"])
    assert (error.index, error.field) == (1, None)
    assert "must be an object, got string" in error.reason


def test_caps() -> None:
    assert "more than the limit" in error_for([RECORD] * 11, max_records=10).reason
    assert "larger than" in error_for(json.dumps([RECORD]), max_bytes=100).reason
    error = error_for([{**RECORD, "data_background": "x" * 101}], max_field_chars=100)
    assert (error.index, error.field) == (0, "data_background")
