"""Document 003's `/review/*` endpoints: the publisher's checks, downloads, standard answers, reports."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from services.tasks import labeling, review
from services.tasks.api.deps import (
    Auth,
    Dataset,
    Repo,
    Settings,
    attachment,
    csv_file,
)
from services.tasks.errors import NoPermissions
from services.tasks.schemas import (
    CheckedAnswers,
    CheckMethod,
    ReportBody,
    ReportMessage,
    ReportsDecided,
    Reviewed,
    StandardAnswersTag,
)
from shared.edge import read_json_body
from shared.envelopes import ok_003
from shared.identity import CurrentIdentity, Identity, require_roles
from shared.openapi import form_body, json_body
from shared.params import Id
from shared.response_models import Empty, Envelope003

router = APIRouter(tags=["review (003)"])


CSV_ANSWER: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}, "description": "a CSV file"}}


def _csv(text: str, filename: str) -> Response:
    return attachment(text.encode("utf-8"), "text/csv; charset=utf-8", filename)


@router.post(
    "/review/manual_check/{task_id}/{user_id}",
    summary="An annotator's answers: all or a sample",
    openapi_extra=json_body(CheckMethod),
    response_model=Envelope003[CheckedAnswers],
)
async def manual_check(
    task_id: Id,
    user_id: Id,
    request: Request,
    # Only a requester; that it is this task's publisher is review.manual_check's check.
    identity: Annotated[Identity, Depends(require_roles("demand", error=NoPermissions))],
    repo: Repo,
    dataset: Dataset,
) -> JSONResponse:
    body = await read_json_body(request, CheckMethod)
    task, pairs = await review.manual_check(repo, identity, task_id, user_id, body.check_method)
    texts = await labeling.texts_for(dataset, task, [q for q, _ in pairs])
    return ok_003(
        {
            "q_info": [
                {
                    "q_id": q.q_id,
                    "filename": q.filename,
                    "data": texts.get(q.tag, "") if q.data_type == "text" else q.tag,
                    "data_type": q.data_type,
                    "result": a.result,
                    "input_result": a.input_result,
                }
                for q, a in pairs
            ]
        }
    )


@router.post(
    "/review/accept/{task_id}/{user_id}",
    summary="Accept an annotator's work (pays them)",
    response_model=Envelope003[Reviewed],
)
async def accept(task_id: Id, user_id: Id, identity: CurrentIdentity, repo: Repo, settings: Settings) -> JSONResponse:
    return ok_003(await review.review(repo, settings, identity, task_id, user_id, "accept"))


@router.post(
    "/review/refuse/{task_id}/{user_id}", summary="Refuse an annotator's work", response_model=Envelope003[Reviewed]
)
async def refuse(task_id: Id, user_id: Id, identity: CurrentIdentity, repo: Repo, settings: Settings) -> JSONResponse:
    return ok_003(await review.review(repo, settings, identity, task_id, user_id, "refuse"))


@router.get(
    "/review/download/{task_id}/{user_id}",
    summary="One annotator's answers as CSV",
    response_class=Response,
    responses=CSV_ANSWER,
)
async def download_user(task_id: Id, user_id: Id, identity: CurrentIdentity, repo: Repo) -> Response:
    return _csv(await review.user_results(repo, identity, task_id, user_id), f"task-{task_id}-user-{user_id}.csv")


@router.get(
    "/review/download/{task_id}",
    summary="The whole task as CSV: majority vote, Dawid-Skene and each annotator's accuracy",
    response_class=Response,
    responses=CSV_ANSWER,
)
async def download_task(
    task_id: Id,
    identity: CurrentIdentity,
    repo: Repo,
    auth: Auth,
    type: Annotated[str, Query(max_length=16)] = "accepted",
) -> Response:
    questions, answers, names = await review.task_results(repo, auth, identity, task_id, type)
    text = await anyio.to_thread.run_sync(review.results_csv, questions, answers, names)
    return _csv(text, f"task-{task_id}-result.csv")


@router.post(
    "/review/upload_stdans",
    summary="Standard answers: a CSV of filename,tag",
    openapi_extra=form_body({"file": ("file", "CSV: filename,tag")}, ("file",)),
    response_model=Envelope003[StandardAnswersTag],
)
async def upload_stdans(
    request: Request, identity: Annotated[Identity, Depends(require_roles("demand"))], repo: Repo
) -> JSONResponse:
    raw = await csv_file(request, "file")
    return ok_003({"tag": await review.upload_standard_answers(repo, identity, raw)})


@router.post(
    "/review/report/{task_id}/{user_id}",
    summary="Report an annotator (publisher) or a publisher",
    openapi_extra=json_body(ReportBody),
    response_model=Envelope003[Empty],
)
async def report(
    task_id: Id,
    user_id: Id,
    request: Request,
    # A requester or an annotator; that it is this task's publisher or annotator is review.report's check.
    identity: Annotated[Identity, Depends(require_roles("demand", "tag", error=NoPermissions))],
    repo: Repo,
) -> JSONResponse:
    body = await read_json_body(request, ReportBody)
    await review.report(repo, identity, task_id, user_id, body.reason)
    return ok_003()


@router.get(
    "/review/reportmessage", summary="Pending reports (admins)", response_model=Envelope003[list[ReportMessage]]
)
async def report_messages(identity: CurrentIdentity, repo: Repo, auth: Auth) -> JSONResponse:
    return ok_003(await review.report_messages(repo, auth, identity))


ReporteeId = Annotated[int | None, Query(description="which report, when the reporter made several")]


@router.post(
    "/review/acceptreport/{task_id}/{user_id}",
    summary="Accept a report: the reportee loses credit",
    response_model=Envelope003[ReportsDecided],
)
async def accept_report(
    task_id: Id,
    user_id: Id,
    identity: CurrentIdentity,
    repo: Repo,
    settings: Settings,
    reportee_id: ReporteeId = None,
) -> JSONResponse:
    count = await review.decide_report(repo, settings, identity, task_id, user_id, reportee_id, True)
    return ok_003({"reports": count})


@router.post(
    "/review/rejectreport/{task_id}/{user_id}",
    summary="Reject (delete) a report",
    response_model=Envelope003[ReportsDecided],
)
async def reject_report(
    task_id: Id,
    user_id: Id,
    identity: CurrentIdentity,
    repo: Repo,
    settings: Settings,
    reportee_id: ReporteeId = None,
) -> JSONResponse:
    count = await review.decide_report(repo, settings, identity, task_id, user_id, reportee_id, False)
    return ok_003({"reports": count})
