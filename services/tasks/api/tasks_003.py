"""Document 003's `/task/*` endpoints (all but upload_data, which the dataset service serves).

Routes with a fixed second segment come before `/task/{task_id}` and `/task/{task_id}/{q_id}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from services.tasks import distribution, labeling, lifecycle
from services.tasks.api.deps import (
    Auth,
    Dataset,
    Repo,
    Settings,
    attachment,
    csv_file,
)
from services.tasks.errors import (
    NoAccessPermission,
    NoDistributePermission,
    NoTaskOfAdmin,
    TaskDoesNotExist,
    not_created,
)
from services.tasks.models import WAS_DISTRIBUTED, AssignmentState, Task
from services.tasks.peers import AuthClient
from services.tasks.repository import TasksRepository
from services.tasks.schemas import (
    AcceptedTask,
    AdminTaskEntry,
    AgentBody,
    BatchSubmitted,
    CheckBody,
    Distributed,
    FreeTaskEntry,
    IsDistributed,
    QuestionState,
    QuestionView,
    Redistributed,
    Refused,
    ResultBody,
    Submitted,
    TaskBody,
    TaskCreated,
    TaskEntry,
    accepted_entry,
    admin_list_entry,
    task_entry,
)
from shared.body_limits import TASK_BODY_LIMIT
from shared.edge import read_json_body
from shared.envelopes import ok_003
from shared.errors import InvalidRequest
from shared.identity import CurrentIdentity, Identity, require_roles
from shared.openapi import form_body, json_body
from shared.params import Id
from shared.response_models import Empty, Envelope003

router = APIRouter(tags=["tasks (003)"])

Offset = Annotated[int, Query(ge=0, description="first question (0-based), for large tasks")]
Limit = Annotated[int | None, Query(ge=1, le=100_000, description="how many questions")]
FREE_TASK_PREVIEW = 10  # questions shown per task in get_free_tasks

Admin = Annotated[Identity, Depends(require_roles("admin"))]
# Answers are submitted by annotators only: anyone else gets 16 "no access permission".
Submitter = Annotated[Identity, Depends(require_roles("tag", error=NoAccessPermission))]


async def _entries(
    repo: TasksRepository, auth: AuthClient, tasks: list[Task], identity: Identity, with_preview: bool = False
) -> list[dict[str, Any]]:
    by_task = await repo.assignments_of_tasks([t.id for t in tasks])
    users = {t.publisher_id for t in tasks} | {t.agent_id for t in tasks if t.agent_id}
    users |= {a.user_id for assignments in by_task.values() for a in assignments}
    profiles = await auth.users(users) if users else {}
    entries = []
    for task in tasks:
        entry = task_entry(task, by_task[task.id], profiles, identity.user_id, identity.role)
        if with_preview:
            entry["questions"] = [
                {"q_id": q.q_id, "data": q.tag, "data_type": q.data_type, "result": [], "tag_type": task.tag_type}
                for q in await repo.questions(task.id, 0, FREE_TASK_PREVIEW)
            ]
            entry["agent"] = ""
        entries.append(entry)
    return entries


@router.post(
    "/task/",
    summary="Create a task (a checked requester)",
    openapi_extra=json_body(TaskBody),
    response_model=Envelope003[TaskCreated],
)
@router.post("/task", include_in_schema=False)
async def create_task(request: Request, identity: CurrentIdentity, repo: Repo, auth: Auth) -> JSONResponse:
    await lifecycle.ensure_checked_requester(auth, identity)
    task = await lifecycle.create(repo, identity, await read_json_body(request, TaskBody, TASK_BODY_LIMIT))
    return ok_003({"task_id": task.id, "q_num": task.q_num, "check_result": task.check_result})


@router.get(
    "/task/get_my_tasks",
    summary="Tasks I published, was given, or (agent) was delegated",
    response_model=Envelope003[list[TaskEntry]],
)
async def get_my_tasks(
    identity: Annotated[Identity, Depends(require_roles("demand", "agent", "tag", error=NoTaskOfAdmin))],
    repo: Repo,
    auth: Auth,
) -> JSONResponse:
    if identity.role == "demand":
        tasks = await repo.tasks_of_publisher(identity.user_id)
    elif identity.role == "agent":
        tasks = await repo.tasks_of_agent(identity.user_id)
    else:
        tasks = await repo.tasks_of_annotator(identity.user_id)
    return ok_003(await _entries(repo, auth, tasks, identity))


@router.get(
    "/task/get_free_tasks",
    summary="toall tasks with a free slot (annotators)",
    response_model=Envelope003[list[FreeTaskEntry]],
)
async def get_free_tasks(
    identity: Annotated[Identity, Depends(require_roles("tag"))], repo: Repo, auth: Auth
) -> JSONResponse:
    return ok_003(await _entries(repo, auth, await repo.free_tasks(identity.user_id), identity, with_preview=True))


@router.get("/task/get_all_tasks", summary="Every task (admins)", response_model=Envelope003[list[AdminTaskEntry]])
async def get_all_tasks(identity: Admin, repo: Repo, auth: Auth) -> JSONResponse:
    tasks = await repo.all_tasks()
    profiles = await auth.users({t.publisher_id for t in tasks}) if tasks else {}
    return ok_003([admin_list_entry(t, profiles) for t in tasks])


@router.get(
    "/task/is_distributed/{task_id}",
    summary="Whether a task was distributed (its publisher, admins)",
    response_model=Envelope003[IsDistributed],
)
async def is_distributed(task_id: Id, identity: CurrentIdentity, repo: Repo) -> JSONResponse:
    task = await repo.task(task_id)
    # Other users learn nothing of a task, not even that it exists.
    if task is None or (identity.role != "admin" and task.publisher_id != identity.user_id):
        raise not_created()
    return ok_003({"is_distributed": task.status in WAS_DISTRIBUTED}, message="success")


@router.get(
    "/task/taginfo/{task_id}",
    summary="My state on each question of a task",
    response_model=Envelope003[list[QuestionState]],
)
async def tag_info(
    task_id: Id, identity: CurrentIdentity, repo: Repo, dataset: Dataset, offset: Offset = 0, limit: Limit = None
) -> JSONResponse:
    return ok_003(await labeling.tag_info(repo, dataset, identity, task_id, offset, limit))


@router.get(
    "/task/get_batch_data/{task_id}",
    summary="data.zip: the questions' files and upload.csv",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "data.zip"}},
)
async def get_batch_data(
    task_id: Id,
    identity: CurrentIdentity,
    repo: Repo,
    auth: Auth,
    dataset: Dataset,
    offset: Offset = 0,
    limit: Limit = None,
) -> Response:
    task, archive = await labeling.batch_archive(repo, auth, dataset, identity, task_id, offset, limit)
    return attachment(archive, "application/zip", f"task-{task.id}-data.zip")


@router.post(
    "/task/upload_res/{task_id}/{q_id}",
    summary="Submit my answer to a question (once)",
    openapi_extra=json_body(ResultBody),
    response_model=Envelope003[Submitted],
)
async def upload_result(
    task_id: Id, q_id: Id, request: Request, identity: Submitter, repo: Repo, settings: Settings
) -> JSONResponse:
    body = await read_json_body(request, ResultBody)
    return ok_003(await labeling.submit(repo, settings, identity, task_id, q_id, body.result, body.input_result))


@router.post(
    "/task/upload_res/{task_id}",
    summary="Submit answers in bulk: the filled upload.csv",
    openapi_extra=form_body({"file": ("file", "upload.csv")}, ("file",)),
    response_model=Envelope003[BatchSubmitted],
)
async def upload_results(
    task_id: Id, request: Request, identity: Submitter, repo: Repo, settings: Settings
) -> JSONResponse:
    raw = await csv_file(request, "file")
    return ok_003(await labeling.submit_batch(repo, settings, identity, task_id, raw), message="success")


@router.post("/task/startquestion/{task_id}/{q_id}", response_model=Envelope003[Empty])
async def start_question(task_id: Id, q_id: Id, identity: CurrentIdentity, repo: Repo) -> JSONResponse:
    await labeling.start_question(repo, identity, task_id, q_id)
    return ok_003()


@router.post(
    "/task/distribute/{task_id}",
    summary="Distribute by the task's strategy (escrow hold)",
    response_model=Envelope003[Distributed],
)
async def distribute(
    task_id: Id, identity: CurrentIdentity, repo: Repo, auth: Auth, settings: Settings
) -> JSONResponse:
    return ok_003(await distribution.distribute(repo, auth, settings, identity, task_id))


@router.post("/task/refuse/{task_id}", summary="Refuse (give back) a task", response_model=Envelope003[Refused])
async def refuse(task_id: Id, identity: CurrentIdentity, repo: Repo, auth: Auth, settings: Settings) -> JSONResponse:
    return ok_003(await distribution.refuse(repo, auth, settings, identity, task_id))


@router.post(
    "/task/accept/{task_id}",
    summary="Accept a task offered to me, or take a toall slot",
    response_model=Envelope003[AcceptedTask],
)
async def accept(task_id: Id, identity: CurrentIdentity, repo: Repo, auth: Auth, settings: Settings) -> JSONResponse:
    task, assignment = await distribution.accept(repo, auth, settings, identity, task_id)
    return ok_003(accepted_entry(task, assignment))


@router.post(
    "/task/redistribute/{task_id}",
    summary="Replace timed-out and review-refused annotators",
    response_model=Envelope003[Redistributed],
)
async def redistribute(
    task_id: Id, identity: CurrentIdentity, repo: Repo, auth: Auth, settings: Settings
) -> JSONResponse:
    return ok_003(await distribution.redistribute(repo, auth, settings, identity, task_id))


@router.post(
    "/task/check_task/{task_id}",
    summary="Admin check of a task: accept or refuse",
    openapi_extra=json_body(CheckBody),
    response_model=Envelope003[Empty],
)
async def check_task(task_id: Id, request: Request, identity: Admin, repo: Repo) -> JSONResponse:
    body = await read_json_body(request, CheckBody)
    await lifecycle.check(repo, identity, task_id, body.result)
    return ok_003()


@router.post(
    "/task/to_agent/{task_id}",
    summary="Delegate a task to an agent (escrow hold)",
    openapi_extra=json_body(AgentBody),
    response_model=Envelope003[str],
)
async def to_agent(
    task_id: Id,
    request: Request,
    identity: Annotated[Identity, Depends(require_roles("demand", error=NoDistributePermission))],
    repo: Repo,
    auth: Auth,
    settings: Settings,
) -> JSONResponse:
    body = await read_json_body(request, AgentBody)
    try:
        agent_id = int(body.agent_id)
    except ValueError:
        raise InvalidRequest("invalid request: agent_id must be a user id") from None
    task = await distribution.to_agent(repo, auth, settings, identity, task_id, agent_id)
    return ok_003(f"task {task.id} delegated to agent {agent_id}", message="success")


@router.post(
    "/task/distribute_to_user/{task_id}/{user_id}",
    summary="The agent gives a task to an annotator",
    response_model=Envelope003[str],
)
async def distribute_to_user(
    task_id: Id, user_id: Id, identity: CurrentIdentity, repo: Repo, auth: Auth, settings: Settings
) -> JSONResponse:
    await distribution.distribute_to_user(repo, auth, settings, identity, task_id, user_id)
    return ok_003(f"task {task_id} distributed to user {user_id}", message="success")


@router.put(
    "/task/{task_id}",
    summary="Modify a task before distribution",
    openapi_extra=json_body(TaskBody),
    response_model=Envelope003[TaskCreated],
)
async def modify_task(task_id: Id, request: Request, identity: CurrentIdentity, repo: Repo, auth: Auth) -> JSONResponse:
    await lifecycle.modifiable(repo, identity, task_id)  # who may, before the body is read
    body = await read_json_body(request, TaskBody, TASK_BODY_LIMIT)
    task = await lifecycle.modify(repo, auth, identity, task_id, body)
    return ok_003({"task_id": task.id, "q_num": task.q_num, "check_result": task.check_result})


@router.delete(
    "/task/{task_id}", summary="Delete a task (refunds what the escrow holds)", response_model=Envelope003[Empty]
)
async def delete_task(task_id: Id, identity: CurrentIdentity, repo: Repo) -> JSONResponse:
    await lifecycle.delete(repo, identity, task_id)
    return ok_003()


@router.get("/task/{task_id}/{q_id}", summary="A question's data and answers", response_model=Envelope003[QuestionView])
async def get_question(
    task_id: Id, q_id: Id, identity: CurrentIdentity, repo: Repo, auth: Auth, dataset: Dataset
) -> JSONResponse:
    return ok_003(await labeling.question_view(repo, auth, dataset, identity, task_id, q_id))


@router.get(
    "/task/{task_id}",
    summary="A task: admins, its publisher, its agent and its annotators",
    response_model=Envelope003[TaskEntry],
)
async def get_task(task_id: Id, identity: CurrentIdentity, repo: Repo, auth: Auth) -> JSONResponse:
    task = await repo.task(task_id)
    if task is None:
        raise TaskDoesNotExist()
    assignments = await repo.assignments(task.id)
    allowed = (
        identity.role == "admin"
        or identity.user_id in (task.publisher_id, task.agent_id)
        or any(a.user_id == identity.user_id and (a.current or a.state != AssignmentState.REFUSED) for a in assignments)
    )
    if not allowed:
        raise NoAccessPermission()
    return ok_003((await _entries(repo, auth, [task], identity))[0])
