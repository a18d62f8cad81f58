"""Labelling: questions as annotators see them, starting a question, one answer at a time or a batch
of them from the `upload.csv` template, the per-question state, and the batch-data archive.

An answer is stored once: `answers` has one row per (task, annotator, question), and a submission only
fills a row that has no submission yet, so a repeated or racing submission stores nothing (code 50).
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from typing import Any, NoReturn

import anyio

from services.tasks import review
from services.tasks.errors import (
    AlreadyStart,
    InvalidTaskType,
    MissingFieldName,
    NoAccessPermission,
    NoResubmit,
    QuestionDoesNotExist,
    TaskDoesNotExist,
    UserNotChecked,
    WrongFilename,
    WrongTagName,
)
from services.tasks.lifecycle import now
from services.tasks.models import Assignment, AssignmentState, Question, Task
from services.tasks.peers import AuthClient, DatasetClient
from services.tasks.quality import answer_key
from services.tasks.repository import TasksRepository
from services.tasks.settings import TasksSettings
from shared.errors import InvalidRequest
from shared.identity import Identity

PREVIEW_CHARS = 100
MAX_ARCHIVE_QUESTIONS = 20_000


@dataclass
class Access:
    task: Task
    role: str  # admin | publisher | annotator
    assignment: Assignment | None = None


async def access(repo: TasksRepository, auth: AuthClient, identity: Identity, task_id: int) -> Access:
    """003's rule for a task's data: admins, its publisher (a checked requester), its annotators."""
    task = await repo.task(task_id)
    if task is None:
        raise TaskDoesNotExist()
    if identity.role == "admin":
        return Access(task, "admin")
    if identity.user_id == task.publisher_id:
        me = await auth.user(identity.user_id)
        if me is None or not me.get("is_checked"):
            raise UserNotChecked()
        return Access(task, "publisher")
    assignment = await repo.assignment(task.id, identity.user_id)
    if assignment is not None and assignment.current and identity.role == "tag":
        return Access(task, "annotator", assignment)
    raise NoAccessPermission()


async def texts_for(dataset: DatasetClient, task: Task, questions: list[Question]) -> dict[str, str]:
    """Text id -> text, for the text questions among `questions`. A text the dataset service no longer
    has (or, where it tells the owner, one the publisher does not own) reads as empty."""
    found = await dataset.texts(q.tag for q in questions if q.data_type == "text")
    texts = {}
    for text_id, text in found.items():
        owner = text.get("owner_id") if text else None
        texts[text_id] = text["text"] if text and (owner is None or int(owner) == task.publisher_id) else ""
    return texts


def preview(q: Question, texts: dict[str, str]) -> str:
    if q.data_type != "text":
        return q.tag
    text = texts.get(q.tag, "")
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


async def question_view(
    repo: TasksRepository, auth: AuthClient, dataset: DatasetClient, identity: Identity, task_id: int, q_id: int
) -> dict[str, Any]:
    seen = await access(repo, auth, identity, task_id)
    q = await repo.question(seen.task.id, q_id)
    if q is None:
        raise QuestionDoesNotExist()
    if q.data_type == "text":
        text = (await texts_for(dataset, seen.task, [q])).get(q.tag, "")
        data: Any = text.splitlines()
    else:
        data = q.tag
    if seen.role == "annotator":
        answers = [a for a in [await repo.answer(seen.task.id, identity.user_id, q_id)] if a is not None]
    else:
        answers = await repo.answers_to(seen.task.id, q_id)
    submitted = [(a, a.submitted_at) for a in answers if a.submitted_at is not None]
    profiles = await auth.users(a.user_id for a, _ in submitted) if submitted else {}
    mine = answers[0] if seen.role == "annotator" and answers else None
    return {
        "q_id": q.q_id,
        "filename": q.filename,
        "data": data,
        "data_type": q.data_type,
        "result": [
            {
                "tag_user": profiles.get(a.user_id, {"user_id": a.user_id}),
                "tag_res": a.result,
                "input_result": a.input_result,
                "submitted_at": submitted_at.timestamp(),
            }
            for a, submitted_at in submitted
        ],
        "tag_type": seen.task.tag_type,
        "input_type": seen.task.input_type,
        "cut_num": seen.task.cut_num,
        "start_time": str(mine.started_at.timestamp()) if mine and mine.started_at else "",
    }


async def _working(
    repo: TasksRepository, identity: Identity, task_id: int, q_id: int | None, *, lock: bool = False, answers: int = 1
) -> tuple[Task, Assignment, Question | None]:
    """The task, the caller's assignment on it (a current annotator's) and the question.

    With `lock`, the assignment row is locked (one annotator's submissions in turn). Rows are locked
    task first, then assignment, everywhere; so when `answers` more may finish an auto-accepted task's
    work (the auto review then updates the task), the task row is locked before the assignment.
    """
    task = await repo.task(task_id)
    if task is None:
        raise TaskDoesNotExist()
    q = None
    if q_id is not None:
        q = await repo.question(task.id, q_id)
        if q is None:
            raise QuestionDoesNotExist()
    assignment = await repo.assignment(task.id, identity.user_id)
    if assignment is None or not assignment.current or identity.role != "tag":
        raise NoAccessPermission()
    if lock:
        if task.accept_method == "auto" and assignment.answered + answers >= task.q_num:
            await repo.task(task.id, lock=True)
        await repo.session.refresh(assignment, with_for_update=True)
    return task, assignment, q


async def start_question(repo: TasksRepository, identity: Identity, task_id: int, q_id: int) -> None:
    task, assignment, _ = await _working(repo, identity, task_id, q_id)
    if assignment.state != AssignmentState.ACCEPTED:
        raise NoAccessPermission()
    if not await repo.start_question(task.id, identity.user_id, q_id, now()):
        raise AlreadyStart()


async def _record(
    repo: TasksRepository,
    settings: TasksSettings,
    task: Task,
    assignment: Assignment,
    q: Question,
    result: Any,
    input_result: Any,
) -> bool:
    """Stores one answer and counts it; False when the question was answered already."""
    key = answer_key(result, input_result)
    if not await repo.submit_answer(task.id, assignment.user_id, q.q_id, result, input_result, key, now()):
        return False
    assignment.answered += 1
    if q.std_answer is not None:
        assignment.std_total += 1
        assignment.std_correct += int(q.std_answer == key)
    return True


async def _after_answers(repo: TasksRepository, settings: TasksSettings, task: Task, assignment: Assignment) -> None:
    """The last answer finishes the annotator's work; with auto acceptance it is reviewed at once."""
    if assignment.answered < task.q_num or assignment.state != AssignmentState.ACCEPTED:
        return
    assignment.state, assignment.finished_at = AssignmentState.FINISHED, now()
    if task.accept_method == "auto":
        await repo.session.refresh(task, with_for_update=True)  # held already, but for a rare race
        await review.auto_review(repo, settings, task, assignment)


async def submit(
    repo: TasksRepository,
    settings: TasksSettings,
    identity: Identity,
    task_id: int,
    q_id: int,
    result: Any,
    input_result: Any,
) -> dict[str, Any]:
    """One answer: a read, the assignment's lock and one write, unless it may finish the annotator's work on
    an auto-accepted task (then the task row is locked first, and the review runs at once)."""
    if result is None:
        raise InvalidRequest("invalid request: result is required")
    view = await repo.answer_view(task_id, q_id, identity.user_id)
    if view is None:
        raise TaskDoesNotExist()
    if not view.has_question:
        raise QuestionDoesNotExist()
    if view.assignment_id is None or not view.current or identity.role != "tag":
        raise NoAccessPermission()
    assert view.answered is not None
    if view.accept_method == "auto" and view.answered + 1 >= view.q_num:
        return await _submit_and_review(repo, settings, identity, task_id, q_id, result, input_result)
    if await repo.lock_assignment_state(view.assignment_id) != AssignmentState.ACCEPTED:
        await _not_accepted(repo, identity, task_id, q_id)
    answered = await repo.store_answer(
        view.assignment_id,
        task_id,
        identity.user_id,
        q_id,
        result,
        input_result,
        answer_key(result, input_result),
        now(),
        view.std_answer,
    )
    if answered is None:
        raise NoResubmit()
    state: str = AssignmentState.ACCEPTED
    if answered >= view.q_num:  # the last answer: the work is finished
        task = await repo.task(task_id)
        assignment = await repo.assignment(task_id, identity.user_id, lock=True)
        assert task is not None and assignment is not None
        await _after_answers(repo, settings, task, assignment)
        state = assignment.state
    return {"answered": answered, "q_num": view.q_num, "state": state}


async def _not_accepted(repo: TasksRepository, identity: Identity, task_id: int, q_id: int) -> NoReturn:
    existing = await repo.answer(task_id, identity.user_id, q_id)
    if existing is not None and existing.submitted_at is not None:
        raise NoResubmit()
    raise NoAccessPermission()


async def _submit_and_review(
    repo: TasksRepository,
    settings: TasksSettings,
    identity: Identity,
    task_id: int,
    q_id: int,
    result: Any,
    input_result: Any,
) -> dict[str, Any]:
    task, assignment, q = await _working(repo, identity, task_id, q_id, lock=True)
    assert q is not None
    if assignment.state != AssignmentState.ACCEPTED:
        await _not_accepted(repo, identity, task_id, q_id)
    if not await _record(repo, settings, task, assignment, q, result, input_result):
        raise NoResubmit()
    await _after_answers(repo, settings, task, assignment)
    return {"answered": assignment.answered, "q_num": task.q_num, "state": assignment.state}


def parse_upload_csv(raw: bytes) -> list[tuple[str, str]]:
    """(filename, tag) rows of a filled `upload.csv`; code 71 when a column is missing."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("invalid request: upload.csv is not UTF-8 text") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = [cell.strip() for cell in rows[0]] if rows else []
    missing = [name for name in ("filename", "tag") if name not in header]
    if missing:
        raise MissingFieldName(data={"missing": missing})
    name_at, tag_at = header.index("filename"), header.index("tag")
    out = []
    for row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        out.append(
            (row[name_at].strip() if name_at < len(row) else "", row[tag_at].strip() if tag_at < len(row) else "")
        )
    return out


async def submit_batch(
    repo: TasksRepository, settings: TasksSettings, identity: Identity, task_id: int, raw: bytes
) -> dict[str, Any]:
    """The filled `upload.csv` of get_batch_data: a label per file, for tasks that choose among labels.
    Everything is checked before anything is stored; answered questions are skipped."""
    task, assignment, _ = await _working(repo, identity, task_id, None, lock=True, answers=10**9)
    if assignment.state != AssignmentState.ACCEPTED:
        raise NoAccessPermission()
    if not task.tag_type:
        raise InvalidTaskType()
    rows = parse_upload_csv(raw)
    by_name = await repo.question_ids_by_filename(task.id)
    labels = set(task.tag_type)
    chosen: dict[int, str] = {}
    for filename, tag in rows:
        if filename not in by_name:
            raise WrongFilename(data={"filename": filename[:255]})
        if not tag:
            continue
        if tag not in labels:
            raise WrongTagName(data={"filename": filename[:255], "tag": tag[:100]})
        chosen[by_name[filename]] = tag
    questions = {q.q_id: q for q in await repo.questions_by_ids(task.id, list(chosen))}
    stored = skipped = 0
    for q_id in sorted(chosen):
        if await _record(repo, settings, task, assignment, questions[q_id], chosen[q_id], None):
            stored += 1
        else:
            skipped += 1
    await _after_answers(repo, settings, task, assignment)
    return {"stored": stored, "skipped": skipped, "answered": assignment.answered, "q_num": task.q_num}


async def tag_info(
    repo: TasksRepository, dataset: DatasetClient, identity: Identity, task_id: int, offset: int, limit: int | None
) -> list[dict[str, Any]]:
    task, _, _ = await _working(repo, identity, task_id, None)
    questions = await repo.questions(task.id, offset, limit)
    answers = {a.q_id: a for a in await repo.answers_of(task.id, identity.user_id, [q.q_id for q in questions])}
    texts = await texts_for(dataset, task, questions)
    info = []
    for q in questions:
        answer = answers.get(q.q_id)
        state = "notstarted"
        if answer is not None:
            state = "finished" if answer.submitted_at is not None else "started"
        info.append(
            {
                "q_id": q.q_id,
                "state": state,
                "startat": int(answer.started_at.timestamp()) if answer and answer.started_at else 0,
                "finishat": int(answer.submitted_at.timestamp()) if answer and answer.submitted_at else 0,
                "q_data": preview(q, texts),
                "q_type": q.data_type,
                "filename": q.filename,
            }
        )
    return info


async def batch_archive(
    repo: TasksRepository,
    auth: AuthClient,
    dataset: DatasetClient,
    identity: Identity,
    task_id: int,
    offset: int,
    limit: int | None,
) -> tuple[Task, bytes]:
    """data.zip: every question's file (texts and images as uploaded) and the `upload.csv` template
    (filename, tag) to fill in and send back with POST /task/upload_res/{task_id}."""
    seen = await access(repo, auth, identity, task_id)
    if limit is None and seen.task.q_num - offset > MAX_ARCHIVE_QUESTIONS:
        raise InvalidRequest(
            f"invalid request: the task has {seen.task.q_num} questions; ask for at most "
            f"{MAX_ARCHIVE_QUESTIONS} at a time with offset and limit"
        )
    questions = await repo.questions(seen.task.id, offset, min(limit or MAX_ARCHIVE_QUESTIONS, MAX_ARCHIVE_QUESTIONS))
    texts = await texts_for(dataset, seen.task, questions)
    images: dict[str, bytes] = {}
    for q in questions:
        if q.data_type == "image" and q.tag not in images:
            images[q.tag] = await dataset.image(q.tag) or b""

    def build() -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            template = io.StringIO()
            writer = csv.writer(template)
            writer.writerow(["filename", "tag"])
            for q in questions:
                name = q.filename.replace("/", "_").replace("\\", "_")
                if q.data_type == "text":
                    archive.writestr(f"data/{name}", texts.get(q.tag, "").encode())
                else:
                    archive.writestr(f"data/{name}", images.get(q.tag, b""))
                writer.writerow([q.filename, ""])
            archive.writestr("upload.csv", template.getvalue().encode("utf-8"))
        return out.getvalue()

    return seen.task, await anyio.to_thread.run_sync(build)
