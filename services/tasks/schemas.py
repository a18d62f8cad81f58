"""Request bodies, and the documented shapes of tasks, annotators and missions in responses.

Users appear as auth's public profile (id, name, type, membership level, credit score, grow value,
checked, banned, tag score): never a password, an email or a bank card, whatever 003's examples show.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from services.tasks.models import DONE_STATES, WAS_DISTRIBUTED, Assignment, AssignmentState, Task
from shared.params import INT32_MAX
from shared.response_models import Envelope001

Profiles = dict[int, dict[str, Any]]

MAX_ANSWER_CHARS = 64 * 1024  # an annotator's answer (or input boxes) as JSON text
MAX_LABEL_CHARS = 256  # a choice among tag_type, or an input box's prompt


def _bounded_json(value: Any) -> Any:
    if value is not None and len(json.dumps(value, ensure_ascii=False)) > MAX_ANSWER_CHARS:
        raise ValueError(f"must be at most {MAX_ANSWER_CHARS} characters as JSON")
    return value


Answer = Annotated[Any, AfterValidator(_bounded_json)]
Label = Annotated[str, Field(max_length=MAX_LABEL_CHARS)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FileRef(TypedDict):
    """A question's file (a dict, not a model: a task may list 200,000 and each model costs ~8x more)."""

    filename: Annotated[str, Field(min_length=1, max_length=255)]
    tag: Annotated[str, Field(min_length=1, max_length=1024)]


class TaskBody(Body):
    """003's create and modify body. The fields with documented error codes (name: 13; time limits
    and reward: 9) are typed loosely here and checked by `lifecycle.check_task_body`."""

    task_type: str = Field(min_length=1, max_length=32)
    task_style: str = Field("", max_length=10_000)
    reward_per_q: Any = None
    time_limit_per_q: Any = None
    total_time_limit: Any = None
    distribute_user_num: int = Field(strict=True, ge=1, le=100_000)
    task_name: Any = None
    accept_method: str = Field(max_length=16)
    files: list[FileRef] = Field(min_length=1, max_length=200_000)
    tag_type: list[Label] | None = Field(None, max_length=1000)
    stdans_tag: str | None = Field(None, max_length=64)
    strategy: str = Field(max_length=16)
    input_type: list[Label] | None = Field(None, max_length=100)
    cut_num: Annotated[str, Field(max_length=16)] | StrictInt | None = None
    result_type: str | None = Field(None, max_length=32)


class CheckBody(Body):
    result: str = Field(max_length=16)


class AgentBody(Body):
    agent_id: Annotated[str, Field(max_length=20)] | StrictInt


class ResultBody(Body):
    result: Answer = Field(...)
    input_result: Answer = None


class CheckMethod(Body):
    check_method: str = Field("select", max_length=16)


class ReportBody(Body):
    reason: str = Field(min_length=1, max_length=2000)


# 001's bodies. Its clients send ids as numbers or as digit strings, and dates in several ways; what is
# wrong is said in its clients' language (shared.edge.validated prefixes 参数错误 and the field).

MAX_EXPERTS = 1000
MAX_NOTICE_CHARS = 10_000
MAX_AREA_CHARS = 64  # as the dataset service bounds an area (services/dataset/qa_records.py)
MAX_QUESTION_CHARS = 100_000  # as the dataset service bounds a record's text
DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
)
DAY_FORMATS = ("%Y-%m-%d", "%Y/%m/%d")


def positive_id(value: Any) -> int:
    """An id of an Integer column, as a number or a string of digits."""
    if isinstance(value, bool):
        raise PydanticCustomError("positive_id", "必须是整数")
    if isinstance(value, str) and (text := value.strip()).isascii() and text.isdigit() and len(text) <= 20:
        value = int(text)
    if not isinstance(value, int) or not 0 < value <= INT32_MAX:
        raise PydanticCustomError("positive_id", "必须是正整数")
    return value


def _ids_from_text(value: Any) -> Any:
    """001 sends the list itself, or the list as a JSON string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        raise PydanticCustomError("id_list", "必须是id的数组") from None


def _distinct(ids: list[int]) -> list[int]:
    if len(set(ids)) != len(ids):
        raise PydanticCustomError("distinct_ids", "有重复的专家")
    return ids


def due_time(value: Any) -> datetime | None:
    """A date ("2024/01/12": the end of that day), a date and time, or a Unix time (s or ms); UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000 if value > 10**11 else value, UTC)
        except (OverflowError, OSError, ValueError):  # 1e300, NaN, Infinity: no date a calendar holds
            raise PydanticCustomError("due_time", "超出时间范围") from None
    if isinstance(value, str):
        text = value.strip()
        for fmt in DATE_FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                pass
        for fmt in DAY_FORMATS:
            try:
                return datetime.combine(datetime.strptime(text, fmt).date(), time(23, 59, 59), UTC)
            except ValueError:
                pass
        try:
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    raise PydanticCustomError("due_time", "不是合法的时间")


def _reserve(value: Any) -> int:
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
        raise PydanticCustomError("reserve", "必须是0或1")
    return value


_ID_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
        {"type": "string", "pattern": r"^\s*[0-9]+\s*$", "maxLength": 20},
    ]
}
PositiveId = Annotated[int, PlainValidator(positive_id), WithJsonSchema(_ID_SCHEMA)]
ExpertIds = Annotated[
    list[PositiveId],
    BeforeValidator(_ids_from_text, json_schema_input_type=list[PositiveId] | str),
    Field(min_length=1, max_length=MAX_EXPERTS),
    AfterValidator(_distinct),
]
DueTime = Annotated[
    datetime | None,
    PlainValidator(due_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "2024/01/12 (the end of that day), 2024-01-12 18:00[:00], ISO 8601"},
                {"type": "number", "description": "Unix time in seconds, or in milliseconds"},
                {"type": "null"},
            ]
        }
    ),
]
Notice = Annotated[str, Field(max_length=MAX_NOTICE_CHARS)]


class AssignBody(Body):
    """001's `POST /task/assign`: one area of a dataset split among experts, one mission each."""

    dataset_id: PositiveId
    area: str = Field(min_length=1, max_length=MAX_AREA_CHARS, pattern=r"\S")
    expert_id_list: ExpertIds
    notice: Notice | None = None
    due_time: DueTime = None


class ReassignBody(Body):
    """001's `PUT /task/reassign`: a mission's unlabelled records handed over (notice and due time kept
    when not sent)."""

    mission_id: PositiveId
    expert_id_list: ExpertIds
    mission_notice: Notice | None = None
    mission_due_time: DueTime = None


class UrgeBody(Body):
    """001's `POST /task/urgent`."""

    mission_id: PositiveId


class LabelBody(Body):
    """001's `PUT /data/label`: an expert's ranked answers and keep flag for one record."""

    data_id: PositiveId
    data_answer: list[dict[str, Any]] | str | None = Field(
        description="[{answer, ranking_number, reserve}, ...] as in the dataset's upload, or that list as JSON "
        "text; checked by the dataset service as an upload's data_answer"
    )
    # One enum per type: client generators cannot type an enum that mixes numbers and strings.
    data_reserve: Annotated[
        int, PlainValidator(_reserve), WithJsonSchema({"anyOf": [{"enum": [0, 1]}, {"enum": ["0", "1"]}]})
    ] = 1
    data_question: str | None = Field(None, max_length=MAX_QUESTION_CHARS)


# Responses ------------------------------------------------------------------------------------


# What the routes answer inside their document's envelope (shared/response_models.py); the dicts the
# functions below (and the domain modules) build have exactly these fields, which tests/openapi checks.


class UserRef(BaseModel):
    """A user in a task's answers: auth's public profile and area, or the id alone when auth no longer
    knows the user."""

    user_id: int
    user_name: str | None = None
    user_type: str | None = None
    membership_level: int | None = None
    credit_score: int | None = None
    grow_value: int | None = None
    is_checked: bool | None = None
    is_banned: bool | None = None
    tag_score: int | None = None
    area: str | None = None


class AgentRef(BaseModel):
    user_id: int
    user_name: str | None
    credit_score: int | None


class AnnotatorEntry(BaseModel):
    tag_user: UserRef
    accepted_at: float | None = Field(description="Unix time; none while offered, -1 when refused")
    state: str
    distributed_at: float | None
    deadline: float | None
    is_finished: bool
    is_check_accepted: str = Field(description="pass, refuse, wait or none")
    answered: int


class Progress(BaseModel):
    tag_user: UserRef
    q_id: int = Field(description="how many questions the annotator has answered")


class TaskEntry(BaseModel):
    """A task as get_my_tasks and get_task show it (times in Unix seconds)."""

    task_id: int
    task_type: str
    task_style: str
    task_name: str
    reward_per_q: int
    time_limit_per_q: int
    total_time_limit: int
    distribute_user_num: int
    q_num: int
    auto_ac: bool
    manual_ac: bool
    accept_method: str
    strategy: str
    result_type: str
    tag_type: list[Any]
    categories: list[Any]
    input_type: list[Any]
    cut_num: str
    stdans_tag: str
    check_result: str
    task_state: str
    is_distributed: bool
    publisher: UserRef
    agent: AgentRef | None
    current_tag_user_list: list[AnnotatorEntry]
    past_tag_user_list: list[UserRef]
    progress: list[Progress]
    created_at: float | None
    distributed_at: float | None
    # An annotator sees their own assignment; an agent how many annotators work on the task.
    state: str | None = None
    accepted_time: float | None = None
    distributed_time: float | None = None
    answered: int | None = None
    current_tag_user_num: int | None = None


class QuestionPreview(BaseModel):
    q_id: int
    data: str
    data_type: str
    result: list[Any]
    tag_type: list[Any]


class FreeTaskEntry(TaskEntry):
    """get_free_tasks: a pool task with its first questions (`agent` is empty there: no agent holds it)."""

    agent: str  # type: ignore[assignment]
    questions: list[QuestionPreview]


class InputTip(BaseModel):
    input_tip: Any


class AdminTaskEntry(BaseModel):
    task_id: int
    task_type: str
    task_style: list[str]
    publisher: UserRef
    task_name: str
    tag_type: list[Any]
    check_result: str
    input_type: list[InputTip]
    task_state: str
    strategy: str
    q_num: int
    distribute_user_num: int


class AcceptedTask(BaseModel):
    task_id: int
    task_name: str
    task_type: str
    task_style: str
    q_num: int
    reward_per_q: int
    time_limit_per_q: int
    total_time_limit: int
    tag_type: list[Any]
    input_type: list[Any]
    cut_num: str
    accept_method: str
    state: str
    accepted_at: float | None
    deadline: float | None


class TaskCreated(BaseModel):
    task_id: int
    q_num: int
    check_result: str


class IsDistributed(BaseModel):
    is_distributed: bool


class QuestionState(BaseModel):
    """taginfo: my state on one question (times in Unix seconds, 0 when not yet)."""

    q_id: int
    state: str = Field(description="notstarted, started or finished")
    startat: int
    finishat: int
    q_data: str
    q_type: str
    filename: str


class TaggedAnswer(BaseModel):
    tag_user: UserRef
    tag_res: Any
    input_result: Any
    submitted_at: float


class QuestionView(BaseModel):
    q_id: int
    filename: str
    data: list[str] | str = Field(description="a text question's lines, else the file's URL")
    data_type: str
    result: list[TaggedAnswer]
    tag_type: list[Any]
    input_type: list[Any]
    cut_num: str
    start_time: str = Field(description="when I started it (Unix seconds as text), empty if not")


class Submitted(BaseModel):
    answered: int
    q_num: int
    state: str


class BatchSubmitted(BaseModel):
    stored: int
    skipped: int = Field(description="questions answered before, left as they were")
    answered: int
    q_num: int


class Distributed(BaseModel):
    distributed: int = Field(description="annotators the task went to now")
    vacancies: int


class Redistributed(Distributed):
    removed: int


class Refused(BaseModel):
    """A task given back (`replaced`: annotators it went to instead), or a pool task declined
    (`replaced_by`, always null)."""

    replaced: int | None = None
    replaced_by: None = None


class CheckedAnswer(BaseModel):
    q_id: int
    filename: str
    data: str
    data_type: str
    result: Any
    input_result: Any


class CheckedAnswers(BaseModel):
    q_info: list[CheckedAnswer]


class Reviewed(BaseModel):
    paid: int
    task_state: str


class StandardAnswersTag(BaseModel):
    tag: str


class ReportMessage(BaseModel):
    task_id: int
    task_type: str
    task_name: str
    tagger_id: int
    reporter_id: int
    reportee_id: str
    reportee_name: str
    credit_score: int | None
    reason: str
    created_at: float


class ReportsDecided(BaseModel):
    reports: int


class ExpertMission(BaseModel):
    """001's /task/list row for an expert."""

    task_id: int
    task_type: str
    area: str
    resource: str
    assign_time: str
    due_time: str
    status: str
    finished_count: int
    total_count: int
    is_highlight: int
    dataset_name: str
    notice: str


class ManagerMission(BaseModel):
    """001's /task/list row for a manager."""

    task_id: int
    task_type: str
    expert_name: str
    dataset_name: str
    status: str
    assign_time: str
    due_time: str
    finished_count: int
    total_count: int
    is_highlight: int
    area: str
    dataset_id: int


class MissionHistory(BaseModel):
    mission_id: str
    expert_name: str
    area: str
    dataset_name: str
    status: str
    original_id: str
    assign_time: str
    finished_count: int
    total_count: int


class MissionsCreated(Envelope001[str]):
    mission_ids: list[int]


class MissionRecord(BaseModel):
    data_id: int
    background: str
    task_type: str
    data_source: str
    is_labeled: int
    question: str
    answer: list[dict[str, Any]]
    keywords: str
    lastest_time: str
    reserve: int


class MissionRecords(Envelope001[list[MissionRecord]]):
    notice: str


def ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def profile(profiles: Profiles, user_id: int | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    return profiles.get(user_id) or {"user_id": user_id}


def _accepted_at(a: Assignment) -> float | None:
    """003: none while not accepted, the time when accepted, -1 when refused."""
    if a.state == AssignmentState.REFUSED:
        return -1
    return ts(a.accepted_at)


# 003's is_check_accepted of an annotator's work, by state ("none" for the others).
_CHECK_ACCEPTED: dict[str, str] = {
    AssignmentState.REVIEW_ACCEPTED: "pass",
    AssignmentState.REVIEW_REFUSED: "refuse",
    AssignmentState.FINISHED: "wait",
}


def _check_accepted(a: Assignment) -> str:
    return _CHECK_ACCEPTED.get(a.state, "none")


def annotator_entry(a: Assignment, profiles: Profiles) -> dict[str, Any]:
    return {
        "tag_user": profile(profiles, a.user_id),
        "accepted_at": _accepted_at(a),
        "state": a.state,
        "distributed_at": ts(a.distributed_at),
        "deadline": ts(a.deadline),
        "is_finished": a.state in DONE_STATES,
        "is_check_accepted": _check_accepted(a),
        "answered": a.answered,
    }


def task_entry(
    task: Task,
    assignments: list[Assignment],
    profiles: Profiles,
    viewer_id: int | None = None,
    viewer_role: str | None = None,
) -> dict[str, Any]:
    current = [a for a in assignments if a.current]
    past = [a for a in assignments if not a.current]
    entry: dict[str, Any] = {
        "task_id": task.id,
        "task_type": task.task_type,
        "task_style": task.task_style,
        "task_name": task.task_name,
        "reward_per_q": task.reward_per_q,
        "time_limit_per_q": task.time_limit_per_q,
        "total_time_limit": task.total_time_limit,
        "distribute_user_num": task.distribute_user_num,
        "q_num": task.q_num,
        "auto_ac": task.accept_method == "auto",
        "manual_ac": task.accept_method == "manual",
        "accept_method": task.accept_method,
        "strategy": task.strategy,
        "result_type": task.result_type,
        "tag_type": task.tag_type,
        "categories": task.tag_type,
        "input_type": task.input_type,
        "cut_num": task.cut_num,
        "stdans_tag": task.stdans_tag,
        "check_result": task.check_result,
        "task_state": task.status,
        "is_distributed": task.status in WAS_DISTRIBUTED,
        "publisher": profile(profiles, task.publisher_id),
        "agent": _agent(profiles, task.agent_id),
        "current_tag_user_list": [annotator_entry(a, profiles) for a in current],
        "past_tag_user_list": [profile(profiles, a.user_id) for a in past],
        "progress": [{"tag_user": profile(profiles, a.user_id), "q_id": a.answered} for a in current],
        "created_at": ts(task.created_at),
        "distributed_at": ts(task.distributed_at),
    }
    if viewer_role == "tag" and viewer_id is not None:
        mine = next((a for a in assignments if a.user_id == viewer_id), None)
        if mine is not None:
            entry["state"] = mine.state
            entry["accepted_time"] = ts(mine.accepted_at)
            entry["distributed_time"] = ts(mine.distributed_at)
            entry["answered"] = mine.answered
    if viewer_role == "agent":
        entry["current_tag_user_num"] = len(current)
    return entry


def accepted_entry(task: Task, a: Assignment) -> dict[str, Any]:
    """003's accept answers with the task's data: what the annotator needs to start (no user lists)."""
    return {
        "task_id": task.id,
        "task_name": task.task_name,
        "task_type": task.task_type,
        "task_style": task.task_style,
        "q_num": task.q_num,
        "reward_per_q": task.reward_per_q,
        "time_limit_per_q": task.time_limit_per_q,
        "total_time_limit": task.total_time_limit,
        "tag_type": task.tag_type,
        "input_type": task.input_type,
        "cut_num": task.cut_num,
        "accept_method": task.accept_method,
        "state": a.state,
        "accepted_at": ts(a.accepted_at),
        "deadline": ts(a.deadline),
    }


def _agent(profiles: Profiles, agent_id: int | None) -> dict[str, Any] | None:
    if agent_id is None:
        return None
    found = profiles.get(agent_id, {})
    return {"user_id": agent_id, "user_name": found.get("user_name"), "credit_score": found.get("credit_score")}


def admin_list_entry(task: Task, profiles: Profiles) -> dict[str, Any]:
    """003's get_all_tasks row (task_style and input_type in that endpoint's documented shapes)."""
    return {
        "task_id": task.id,
        "task_type": task.task_type,
        "task_style": [task.task_style],
        "publisher": profile(profiles, task.publisher_id),
        "task_name": task.task_name,
        "tag_type": task.tag_type,
        "check_result": task.check_result,
        "input_type": [{"input_tip": tip} for tip in task.input_type],
        "task_state": task.status,
        "strategy": task.strategy,
        "q_num": task.q_num,
        "distribute_user_num": task.distribute_user_num,
    }


def mission_time(value: datetime | None) -> str:
    return value.strftime("%Y/%m/%d %H:%M") if value else "-"
