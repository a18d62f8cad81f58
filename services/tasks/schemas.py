"""Request bodies, and the documented shapes of tasks, annotators and missions in responses.

Users appear as auth's public profile (id, name, type, membership level, credit score, grow value,
checked, banned, tag score): never a password, an email or a bank card, whatever 003's examples show.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from services.tasks.models import Assignment, Task

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


class FileRef(Body):
    filename: str = Field(min_length=1, max_length=255)
    tag: str = Field(min_length=1, max_length=1024)


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


# Responses ------------------------------------------------------------------------------------


def ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def profile(profiles: Profiles, user_id: int | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    return profiles.get(user_id) or {"user_id": user_id}


def _accepted_at(a: Assignment) -> float | None:
    """003: none while not accepted, the time when accepted, -1 when refused."""
    if a.state == "refused":
        return -1
    return ts(a.accepted_at)


def _check_accepted(a: Assignment) -> str:
    return {"review_accepted": "pass", "review_refused": "refuse", "finished": "wait"}.get(a.state, "none")


def annotator_entry(a: Assignment, profiles: Profiles) -> dict[str, Any]:
    return {"tag_user": profile(profiles, a.user_id), "accepted_at": _accepted_at(a), "state": a.state,
            "distributed_at": ts(a.distributed_at), "deadline": ts(a.deadline),
            "is_finished": a.state in ("finished", "review_accepted", "review_refused"),
            "is_check_accepted": _check_accepted(a), "answered": a.answered}


def task_entry(task: Task, assignments: list[Assignment], profiles: Profiles, viewer_id: int | None = None,
               viewer_role: str | None = None) -> dict[str, Any]:
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
        "is_distributed": task.status in ("distributed", "finished"),
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
    return {"task_id": task.id, "task_name": task.task_name, "task_type": task.task_type,
            "task_style": task.task_style, "q_num": task.q_num, "reward_per_q": task.reward_per_q,
            "time_limit_per_q": task.time_limit_per_q, "total_time_limit": task.total_time_limit,
            "tag_type": task.tag_type, "input_type": task.input_type, "cut_num": task.cut_num,
            "accept_method": task.accept_method, "state": a.state, "accepted_at": ts(a.accepted_at),
            "deadline": ts(a.deadline)}


def _agent(profiles: Profiles, agent_id: int | None) -> dict[str, Any] | None:
    if agent_id is None:
        return None
    found = profiles.get(agent_id, {})
    return {"user_id": agent_id, "user_name": found.get("user_name"), "credit_score": found.get("credit_score")}


def admin_list_entry(task: Task, profiles: Profiles) -> dict[str, Any]:
    """003's get_all_tasks row (task_style and input_type in that endpoint's documented shapes)."""
    return {"task_id": task.id, "task_type": task.task_type, "task_style": [task.task_style],
            "publisher": profile(profiles, task.publisher_id), "task_name": task.task_name,
            "tag_type": task.tag_type, "check_result": task.check_result,
            "input_type": [{"input_tip": tip} for tip in task.input_type], "task_state": task.status,
            "strategy": task.strategy, "q_num": task.q_num, "distribute_user_num": task.distribute_user_num}


def mission_time(value: datetime | None) -> str:
    return value.strftime("%Y/%m/%d %H:%M") if value else "-"
