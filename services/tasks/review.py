"""Review: the publisher's manual check, accept and refuse (or auto acceptance against standard
answers), result downloads, standard-answer uploads and reports.

Accepting an annotator pays reward_per_q for each answer they gave, from the task's escrow, through
the outbox (key `task:<id>:user:<uid>:pay`: one payout per annotator and task, whatever is retried).
When every slot of the task is accepted, the task is finished and the rest of the escrow is refunded.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import secrets
from collections.abc import Sequence
from typing import Any

from services.tasks import lifecycle, outbox
from services.tasks.errors import (
    FieldError,
    NoPermissions,
    NotThisTasksTagger,
    ReportRecordNotFound,
    ReviewNotFinish,
    TaskNotDistributed,
    TaskNotExists,
    not_created,
)
from services.tasks.models import WAS_DISTRIBUTED, Assignment, AssignmentState, Question, StandardAnswerSet, Task
from services.tasks.peers import AuthClient
from services.tasks.quality import cell_answer, consolidate
from services.tasks.repository import TasksRepository
from services.tasks.settings import TasksSettings
from shared.errors import InvalidRequest, NoPermission
from shared.identity import Identity

SAMPLE_SHARE = 0.1  # "select" (spot check) shows this share of an annotator's answers
SAMPLE_MAX = 200
REVIEWABLE = (AssignmentState.FINISHED, AssignmentState.TIMEOUT)


# Accepting and refusing work -------------------------------------------------------------------


async def accept_work(repo: TasksRepository, settings: TasksSettings, task: Task, assignment: Assignment) -> int:
    """Pays the annotator for their answers and records what smart distribution learns; returns the
    amount paid. Finishes the task when this was its last slot."""
    moment = lifecycle.now()
    amount = task.reward_per_q * assignment.answered
    assignment.state, assignment.reviewed_at = AssignmentState.REVIEW_ACCEPTED, moment
    assignment.paid_amount = amount
    if amount > 0:
        await outbox.payout(repo, task.id, assignment.user_id, amount)
    await outbox.grow_value(
        repo, assignment.user_id, settings.grow_value_per_task, f"task:{task.id}:user:{assignment.user_id}:grow"
    )
    await repo.add_stats(
        assignment.user_id,
        std_total=assignment.std_total,
        std_correct=assignment.std_correct,
        accepted_answers=assignment.answered,
        accepted_tasks=1,
    )
    await repo.session.flush()
    await lifecycle.finish_if_complete(repo, task)
    return amount


async def refuse_work(repo: TasksRepository, task: Task, assignment: Assignment) -> None:
    assignment.state, assignment.reviewed_at = AssignmentState.REVIEW_REFUSED, lifecycle.now()
    await repo.add_stats(assignment.user_id, std_total=assignment.std_total, std_correct=assignment.std_correct)


async def auto_review(repo: TasksRepository, settings: TasksSettings, task: Task, assignment: Assignment) -> bool:
    """003's auto acceptance: accepted when the share of standard-answer questions answered right
    reaches `auto_accept_threshold`. Returns whether the work was accepted."""
    if assignment.std_total == 0:
        return False  # nothing to compare with: the publisher reviews it by hand
    if assignment.std_correct / assignment.std_total >= settings.auto_accept_threshold:
        await accept_work(repo, settings, task, assignment)
        return True
    await refuse_work(repo, task, assignment)
    return False


# The publisher's side --------------------------------------------------------------------------


async def _reviewable_task(
    repo: TasksRepository, identity: Identity, task_id: int, *, lock: bool = False, admin_too: bool = False
) -> Task:
    task = await repo.task(task_id, lock=lock)
    if task is None:
        raise not_created()
    if task.publisher_id != identity.user_id and not (admin_too and identity.role == "admin"):
        raise NoPermissions()
    if task.status not in WAS_DISTRIBUTED:
        raise TaskNotDistributed()
    return task


async def _annotator(repo: TasksRepository, task: Task, user_id: int, *, lock: bool = False) -> Assignment:
    assignment = await repo.assignment(task.id, user_id, lock=lock)
    if assignment is None:
        raise NotThisTasksTagger()
    return assignment


async def manual_check(
    repo: TasksRepository, identity: Identity, task_id: int, user_id: int, method: str
) -> tuple[Task, list[tuple[Question, Any]]]:
    """The annotator's answers (all, or a random sample for a spot check) with their questions."""
    if method not in ("select", "all"):
        raise InvalidRequest("invalid request: check_method must be select (spot check) or all")
    task = await _reviewable_task(repo, identity, task_id)
    await _annotator(repo, task, user_id)
    answers = [a for a in await repo.answers_of(task.id, user_id) if a.submitted_at is not None]
    if method == "select" and answers:
        size = min(SAMPLE_MAX, max(1, math.ceil(len(answers) * SAMPLE_SHARE)))
        answers = sorted(random.sample(answers, size), key=lambda a: a.q_id)
    questions = {q.q_id: q for q in await repo.questions_by_ids(task.id, [a.q_id for a in answers])}
    return task, [(questions[a.q_id], a) for a in answers if a.q_id in questions]


async def review(
    repo: TasksRepository, settings: TasksSettings, identity: Identity, task_id: int, user_id: int, verdict: str
) -> dict[str, Any]:
    task = await _reviewable_task(repo, identity, task_id, lock=True)
    assignment = await _annotator(repo, task, user_id, lock=True)
    if not assignment.current or assignment.state not in REVIEWABLE:
        state = "already reviewed" if assignment.state.startswith("review_") else f"is {assignment.state}"
        raise InvalidRequest(f"invalid request: this annotator's work is not awaiting review ({state})")
    if assignment.answered == 0:
        raise InvalidRequest("invalid request: this annotator answered nothing")
    if verdict == "accept":
        paid = await accept_work(repo, settings, task, assignment)
        return {"paid": paid, "task_state": task.status}
    await refuse_work(repo, task, assignment)
    return {"paid": 0, "task_state": task.status}


async def user_results(repo: TasksRepository, identity: Identity, task_id: int, user_id: int) -> str:
    """One annotator's answers as CSV: q_id, filename, data_type, data, result, input_result, submitted_at."""
    task = await repo.task(task_id)
    if task is None:
        raise not_created()
    if identity.user_id not in (task.publisher_id, user_id) and identity.role != "admin":
        raise NoPermissions()
    if task.status not in WAS_DISTRIBUTED:
        raise TaskNotDistributed()
    await _annotator(repo, task, user_id)
    answers = [a for a in await repo.answers_of(task.id, user_id) if a.submitted_at is not None]
    questions = {q.q_id: q for q in await repo.questions_by_ids(task.id, [a.q_id for a in answers])}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["q_id", "filename", "data_type", "data", "result", "input_result", "submitted_at"])
    for answer in answers:
        q = questions[answer.q_id]
        writer.writerow(
            [
                q.q_id,
                q.filename,
                q.data_type,
                q.tag,
                _json(answer.result),
                _json(answer.input_result),
                answer.submitted_at.isoformat() if answer.submitted_at else "",
            ]
        )
    return out.getvalue()


def _json(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


async def task_results(
    repo: TasksRepository, auth: AuthClient, identity: Identity, task_id: int, kind: str
) -> tuple[list[Question], list[tuple[int, int, str, Any, Any]], dict[int, str]]:
    """What the whole-task CSV needs: the questions, the answers (of accepted annotators, or of all
    with type=all) and the annotators' names."""
    if kind not in ("accepted", "all"):
        raise InvalidRequest("invalid request: type must be accepted (default) or all")
    task = await _reviewable_task(repo, identity, task_id, admin_too=True)
    assignments = await repo.assignments(task.id)
    if kind == "accepted":
        if any(a.current and a.state == AssignmentState.FINISHED for a in assignments):
            raise ReviewNotFinish()
        users = [a.user_id for a in assignments if a.state == AssignmentState.REVIEW_ACCEPTED]
    else:
        users = [a.user_id for a in assignments if a.answered > 0]
    answers = await repo.submitted_answers(task.id, users)
    profiles = await auth.users(users) if users else {}
    names = {uid: str(profiles.get(uid, {}).get("user_name") or uid) for uid in users}
    return await repo.questions(task.id), answers, names


def results_csv(
    questions: Sequence[Question], answers: Sequence[tuple[int, int, str, Any, Any]], names: dict[int, str]
) -> str:
    """One row per question: the consolidated answer by majority vote and, with 3 or more answers, by
    Dawid-Skene (with its posterior probability), then each annotator's answer in their column. The
    last row, `annotator_accuracy`, holds each annotator's estimated accuracy."""
    votes, ds, accuracy, _ = consolidate([(q, u, key) for q, u, key, _, _ in answers])
    users = sorted(names)
    by_cell: dict[tuple[int, int], str] = {}
    for q_id, user_id, key, _result, _input_result in answers:
        by_cell[(q_id, user_id)] = key
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "q_id",
            "filename",
            "data_type",
            "data",
            "majority_answer",
            "majority_votes",
            "answers",
            "dawid_skene_answer",
            "dawid_skene_probability",
        ]
        + [f"{names[u]} ({u})" for u in users]
    )
    for q in questions:
        vote = votes.get(q.q_id)
        ds_answer = ds.get(q.q_id)
        writer.writerow(
            [
                q.q_id,
                q.filename,
                q.data_type,
                q.tag,
                vote.answer if vote else "",
                vote.votes if vote else 0,
                vote.total if vote else 0,
                ds_answer[0] if ds_answer else "",
                f"{ds_answer[1]:.4f}" if ds_answer else "",
            ]
            + [by_cell.get((q.q_id, u), "") for u in users]
        )
    writer.writerow(
        ["annotator_accuracy", "", "", "", "", "", "", "", ""] + [f"{accuracy.get(u, 0.0):.4f}" for u in users]
    )
    return out.getvalue()


# Standard answers ------------------------------------------------------------------------------


def parse_standard_answers(raw: bytes) -> dict[str, str]:
    """003's standard-answer CSV: exactly the columns `filename` and `tag` (the upload.csv template
    of get_batch_data, partly filled); a label or a JSON value per cell. Other columns: code 20."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FieldError(data={"reason": "the file is not UTF-8 text"}) from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise FieldError(data={"reason": "the file is empty"})
    header = [cell.strip() for cell in rows[0]]
    if sorted(header) != ["filename", "tag"]:
        raise FieldError(data={"expected": ["filename", "tag"], "got": header[:20]})
    name_at, tag_at = header.index("filename"), header.index("tag")
    answers: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise FieldError(data={"line": number, "reason": "every line has a filename and a tag"})
        name, cell = row[name_at].strip(), row[tag_at]
        if not name:
            raise FieldError(data={"line": number, "reason": "filename is empty"})
        if not cell.strip():
            continue  # partial answers: a blank tag is a question without a standard answer
        if name in answers:
            raise FieldError(data={"line": number, "reason": f"{name} appears twice"})
        answers[name] = cell_answer(cell)
    if not answers:
        raise FieldError(data={"reason": "no standard answer in the file"})
    return answers


async def upload_standard_answers(repo: TasksRepository, identity: Identity, raw: bytes) -> str:
    if identity.role != "demand":
        raise NoPermission()
    answers = parse_standard_answers(raw)
    tag = secrets.token_hex(16)
    await repo.add(StandardAnswerSet(tag=tag, owner_id=identity.user_id, answers=answers))
    return tag


# Reports ---------------------------------------------------------------------------------------


async def report(repo: TasksRepository, identity: Identity, task_id: int, user_id: int, reason: str) -> None:
    """A publisher reports an annotator of the task, or an annotator reports its publisher."""
    task = await repo.task(task_id)
    if task is None:
        raise TaskNotExists()
    if identity.user_id == user_id:
        raise NotThisTasksTagger()
    had = await repo.users_who_had(task.id)
    if identity.user_id == task.publisher_id:
        if user_id not in had:
            raise NotThisTasksTagger()
        tagger = user_id
    elif identity.user_id in had:
        if user_id != task.publisher_id:
            raise NotThisTasksTagger()
        tagger = identity.user_id
    else:
        raise NoPermissions()
    await repo.upsert_report(task.id, identity.user_id, user_id, tagger, reason.strip() or reason)


async def report_messages(repo: TasksRepository, auth: AuthClient, identity: Identity) -> list[dict[str, Any]]:
    if identity.role != "admin":
        raise NoPermission()
    reports = await repo.pending_reports()
    tasks = {t.id: t for t in await repo.tasks_by_ids({r.task_id for r in reports})}
    profiles = await auth.users({r.reportee_id for r in reports}) if reports else {}
    entries = []
    for r in reports:
        task = tasks.get(r.task_id)
        reportee = profiles.get(r.reportee_id, {})
        entries.append(
            {
                "task_id": r.task_id,
                "task_type": task.task_type if task else "",
                "task_name": task.task_name if task else "",
                "tagger_id": r.tagger_id,
                "reporter_id": r.reporter_id,
                "reportee_id": str(r.reportee_id),
                "reportee_name": reportee.get("user_name", ""),
                "credit_score": reportee.get("credit_score"),
                "reason": r.reason,
                "created_at": r.created_at.timestamp(),
            }
        )
    return entries


async def decide_report(
    repo: TasksRepository,
    settings: TasksSettings,
    identity: Identity,
    task_id: int,
    user_id: int,
    reportee_id: int | None,
    accept: bool,
) -> int:
    """Accepting deducts the reportee's credit (through the outbox, once per report); rejecting deletes
    the report. `user_id` is the reporter (003), or the annotator the report is about."""
    if identity.role != "admin":
        raise NoPermission()
    reports = await repo.reports_for(task_id, user_id, reportee_id)
    if not reports:
        raise ReportRecordNotFound()
    if not accept:
        await repo.delete_reports([r.id for r in reports])
        return len(reports)
    moment = lifecycle.now()
    for r in reports:
        r.status, r.decided_at = "accepted", moment
        # One deduction per report: a report made again after a decision is a new one (new created_at).
        key = f"report:{r.id}:{int(r.created_at.timestamp() * 1000)}:credit"
        await outbox.deduct_credit(repo, r.reportee_id, settings.report_credit_penalty, key)
    return len(reports)
