"""A task's life: create, modify, admin check, delete, finish; and who may see it.

```mermaid
stateDiagram-v2
    [*] --> created: POST /task/ (checked requester)
    created --> created: PUT /task/{id} (check_result back to wait)
    state created {
        wait --> accept: admin check_task accept
        wait --> refuse: admin check_task refuse
        refuse --> wait: publisher modifies
        accept --> wait: publisher modifies
    }
    created --> distributed: distribute / to_agent (accept only; escrow hold)
    distributed --> finished: every slot review-accepted (refund what is left)
    created --> deleted: DELETE (refund stray holds)
    distributed --> deleted: DELETE once nobody works on it (refund what is left); admin any time
    finished --> deleted: DELETE
```

An annotator on a task (`Assignment.state`; `current` ones hold one of distribute_user_num slots):

```mermaid
stateDiagram-v2
    [*] --> not_handle: order / smart / agent distribution
    [*] --> accepted: toall accept (a free slot)
    not_handle --> accepted: accept
    not_handle --> refused: refuse (slot freed, replaced)
    accepted --> refused: refuse (slot freed, replaced)
    not_handle --> timeout: worker, past total_time_limit
    accepted --> timeout: worker, past total_time_limit
    accepted --> finished: last answer submitted
    finished --> review_accepted: review accept / auto (paid from escrow)
    finished --> review_refused: review refuse / auto
    timeout --> review_accepted: review accept (answers so far paid)
    timeout --> past: redistribute (replaced)
    review_refused --> past: redistribute (replaced)
    refused --> past
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.tasks import outbox
from services.tasks.errors import (
    DeleteDistributed,
    NoPermissionToDelete,
    NoPermissionToModify,
    Recheck,
    ScoreNotEnough,
    TaskDoesNotExist,
    TaskNameFormat,
    TimeOrRewardFormat,
    UserNotChecked,
)
from services.tasks.models import IN_PROGRESS_STATES, STRATEGIES, AssignmentState, CheckResult, Task, TaskStatus
from services.tasks.peers import AuthClient
from services.tasks.repository import TasksRepository
from services.tasks.schemas import FileRef, TaskBody
from shared.errors import InvalidRequest, NoPermission, UserBanned
from shared.identity import Identity

# 003: a task name is 4 to 24 characters (no control characters, not only blanks).
TASK_NAME = re.compile(r"^[^\x00-\x1f\x7f]{4,24}$")
TEXT_ID_DIGITS = 18  # a text tag: 1 to 18 ASCII digits
IMAGE_TAG = re.compile(r"^/picbed/[A-Za-z0-9_-]{1,100}\.[A-Za-z0-9]{1,8}$")
MAX_REWARD = 1_000_000
MAX_SECONDS = 366 * 24 * 3600
MAX_ESCROW = 10**15


def now() -> datetime:
    return datetime.now(UTC)


def _positive_int(value: Any, upper: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        return None
    return value


def data_type_of(tag: str) -> str:
    if len(tag) <= TEXT_ID_DIGITS and tag.isascii() and tag.isdigit():
        return "text"
    if IMAGE_TAG.fullmatch(tag):
        return "image"
    raise InvalidRequest(
        f"invalid request: file tag {tag[:60]!r} is neither a text id nor an image-bed URL "
        "(use the tags /task/upload_data returned)"
    )


def data_types_of(tags: list[str]) -> list[str]:
    """`data_type_of` each tag; a task's tags are usually all text ids, told at once by C string methods."""
    joined = "".join(tags)
    if joined.isascii() and joined.isdigit() and max(map(len, tags)) <= TEXT_ID_DIGITS:
        return ["text"] * len(tags)
    return [data_type_of(tag) for tag in tags]


@dataclass(frozen=True)
class QuestionFiles:
    """A task's files as columns, in the body's order (a list each, no object per question: a task may
    have 200,000)."""

    filenames: list[str]
    tags: list[str]
    data_types: list[str]

    def __len__(self) -> int:
        return len(self.filenames)


def question_files(files: list[FileRef]) -> QuestionFiles:
    """The body's files checked: unique filenames, then each tag a text id or an image-bed URL."""
    filenames = [f["filename"] for f in files]
    if len(set(filenames)) != len(filenames):
        raise InvalidRequest("invalid request: two files have the same filename")
    tags = [f["tag"] for f in files]
    return QuestionFiles(filenames, tags, data_types_of(tags))


def check_task_body(body: TaskBody) -> dict[str, Any]:
    """The task's fields from a create or modify body, checked in 003's order (times and reward: 9,
    name: 13, then the rest: 1005)."""
    reward = _positive_int(body.reward_per_q, MAX_REWARD)
    per_q = _positive_int(body.time_limit_per_q, MAX_SECONDS)
    total = _positive_int(body.total_time_limit, MAX_SECONDS)
    if reward is None or per_q is None or total is None or total < per_q:
        raise TimeOrRewardFormat()
    if not isinstance(body.task_name, str) or not TASK_NAME.fullmatch(body.task_name) or not body.task_name.strip():
        raise TaskNameFormat()
    if body.accept_method not in ("auto", "manual"):
        raise InvalidRequest("invalid request: accept_method must be auto or manual")
    if body.strategy not in STRATEGIES:
        raise InvalidRequest("invalid request: strategy must be toall, order or smart")
    files = question_files(body.files)
    if reward * len(files) * body.distribute_user_num > MAX_ESCROW:
        raise TimeOrRewardFormat()
    tag_type = [t.strip() for t in body.tag_type or [] if isinstance(t, str) and t.strip()]
    if len(set(tag_type)) != len(tag_type):
        raise InvalidRequest("invalid request: tag_type repeats a label")
    result_type = body.result_type or ("choice" if tag_type else "input" if body.input_type else "text")
    return {
        "task_type": body.task_type.strip(),
        "task_style": body.task_style,
        "task_name": body.task_name,
        "reward_per_q": reward,
        "time_limit_per_q": per_q,
        "total_time_limit": total,
        "distribute_user_num": body.distribute_user_num,
        "accept_method": body.accept_method,
        "strategy": body.strategy,
        "tag_type": tag_type,
        "input_type": list(body.input_type or []),
        "cut_num": "" if body.cut_num is None else str(body.cut_num)[:16],
        "result_type": result_type,
        "stdans_tag": (body.stdans_tag or "").strip(),
        "files": files,
    }


async def ensure_checked_requester(auth: AuthClient, identity: Identity) -> dict[str, Any]:
    """A requester (003: a checked `demand` user) who is not banned."""
    if identity.role != "demand":
        raise NoPermission()
    me = await auth.user(identity.user_id)
    if me is None:
        raise NoPermission()
    if me.get("is_banned"):
        raise UserBanned()
    if not me.get("is_checked"):
        raise UserNotChecked()
    return me


async def _apply(repo: TasksRepository, task: Task, fields: dict[str, Any], replace_questions: bool) -> None:
    files = fields.pop("files")
    for name, value in fields.items():
        setattr(task, name, value)
    task.q_num = len(files)
    task.updated_at = now()
    answers = await standard_answers_for(repo, task, files)
    await repo.add(task)
    if replace_questions:
        await repo.delete_questions(task.id)
        await repo.session.flush()
    await repo.insert_questions(task.id, files.filenames, files.tags, files.data_types, answers)


async def standard_answers_for(repo: TasksRepository, task: Task, files: QuestionFiles) -> dict[str, str]:
    """The task's standard answers (filename -> answer), stored with its questions; auto acceptance
    needs one for at least one of its files."""
    answers: dict[str, str] = {}
    if task.stdans_tag:
        found = await repo.standard_answers(task.stdans_tag)
        if found is None or found.owner_id != task.publisher_id:
            raise InvalidRequest("invalid request: stdans_tag is not a standard-answer upload of yours")
        answers = found.answers
    if task.accept_method == "auto" and answers.keys().isdisjoint(files.filenames):
        raise InvalidRequest(
            "invalid request: auto acceptance needs standard answers (upload_stdans) "
            "for at least one of the task's files"
        )
    return answers


async def create(repo: TasksRepository, identity: Identity, body: TaskBody) -> Task:
    """A task of a requester `ensure_checked_requester` admitted (before the body was read)."""
    fields = check_task_body(body)
    task = Task(
        publisher_id=identity.user_id, check_result=CheckResult.WAIT, status=TaskStatus.CREATED, taken=0, held_amount=0
    )
    await _apply(repo, task, fields, replace_questions=False)
    return task


async def modifiable(repo: TasksRepository, identity: Identity, task_id: int, *, lock: bool = False) -> Task:
    """The task if it exists (11) and `identity` published it (12). The route asks before it reads the
    body, without a lock (a body of up to 32 MB may take long to arrive); `modify` asks again, locked."""
    task = await repo.task(task_id, lock=lock)
    if task is None:
        raise TaskDoesNotExist()
    if task.publisher_id != identity.user_id:
        raise NoPermissionToModify()
    return task


async def modify(repo: TasksRepository, auth: AuthClient, identity: Identity, task_id: int, body: TaskBody) -> Task:
    """Only before distribution (annotators' terms never change under them); the admin checks the
    new version again. 003's code 10 when the requester's points could not pay for it."""
    fields = check_task_body(body)
    task = await modifiable(repo, identity, task_id, lock=True)
    if task.status != TaskStatus.CREATED:
        raise NoPermissionToModify(data={"reason": "task has been distributed"})
    await ensure_checked_requester(auth, identity)
    needed = fields["reward_per_q"] * len(fields["files"]) * fields["distribute_user_num"]
    if await auth.own_score(identity) < needed:
        raise ScoreNotEnough()
    await _apply(repo, task, fields, replace_questions=True)
    task.check_result = CheckResult.WAIT
    return task


async def check(repo: TasksRepository, identity: Identity, task_id: int, result: str) -> Task:
    if identity.role != "admin":
        raise NoPermission()
    if result not in (CheckResult.ACCEPT, CheckResult.REFUSE):
        raise InvalidRequest("invalid request: result must be accept or refuse")
    task = await repo.task(task_id, lock=True)
    if task is None:
        raise TaskDoesNotExist()
    if task.check_result != CheckResult.WAIT or task.status != TaskStatus.CREATED:
        raise Recheck()
    task.check_result = result
    task.updated_at = now()
    return task


async def delete(repo: TasksRepository, identity: Identity, task_id: int) -> Task:
    """The publisher, once nobody works on the task any more, or an admin at any time. Whatever the
    escrow still holds goes back to the publisher (after the payouts already recorded)."""
    task = await repo.task(task_id, lock=True)
    if task is None:
        raise TaskDoesNotExist()
    is_admin = identity.role == "admin"
    if not is_admin and task.publisher_id != identity.user_id:
        raise NoPermissionToDelete()
    if not is_admin and task.status == TaskStatus.DISTRIBUTED and await repo.any_in_progress(task.id):
        raise DeleteDistributed()
    moment = now()
    for assignment in await repo.assignments(task.id):
        if assignment.current and assignment.state in IN_PROGRESS_STATES:
            assignment.current = False
            assignment.left_at = moment
    task.status = TaskStatus.DELETED
    task.deleted_at = moment
    task.taken = 0
    # Also for a task never distributed: a hold whose commit failed (see distribution.distribute) is
    # returned here. No escrow at all is "nothing to refund".
    await outbox.refund_rest(repo, task.id, "delete")
    return task


async def finish_if_complete(repo: TasksRepository, task: Task) -> bool:
    """A task whose every slot is review-accepted is finished: what the escrow has left goes back."""
    if task.status != TaskStatus.DISTRIBUTED:
        return False
    if await repo.count_reviewed(task.id, AssignmentState.REVIEW_ACCEPTED) < task.distribute_user_num:
        return False
    task.status = TaskStatus.FINISHED
    task.finished_at = now()
    await outbox.refund_rest(repo, task.id, "finish")
    return True
