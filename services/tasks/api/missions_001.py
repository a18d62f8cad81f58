"""Document 001's task and data endpoints (expert labelling of Q&A datasets). Its clients compare the
`response` text, so errors use its wording: 未登录 (401; /task/list says 请先登录), 非管理员用户 and
非专家用户 (403). See `services/tasks/missions.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from services.tasks import missions
from services.tasks.api.deps import Auth, Dataset, Repo
from services.tasks.errors import NotAnExpert
from services.tasks.schemas import (
    AssignBody,
    ExpertMission,
    LabelBody,
    ManagerMission,
    MissionHistory,
    MissionRecords,
    MissionsCreated,
    ReassignBody,
    UrgeBody,
)
from shared.edge import read_json_body
from shared.errors import NotLoggedIn
from shared.identity import Identity, MaybeIdentity, require_roles
from shared.openapi import json_body
from shared.response_models import Envelope001

router = APIRouter(tags=["missions (001)"])

IdParam = Annotated[str | None, Query(max_length=20)]


def _response(value: object, **extra: object) -> JSONResponse:
    return JSONResponse({"response": value, **extra})


def _logged_in(identity: Identity | None, message: str | None = None) -> Identity:
    if identity is None:
        raise NotLoggedIn(message)
    return identity


# The routes that take a body check who calls before they read it: 非管理员用户 / 非专家用户 whatever it holds.
Manager = Annotated[Identity, Depends(require_roles(*missions.MANAGER_ROLES))]
Expert = Annotated[Identity, Depends(require_roles("tag", error=NotAnExpert))]


@router.get(
    "/task/list",
    summary="Missions: the manager's or the expert's list",
    response_model=Envelope001[list[ExpertMission] | list[ManagerMission]],
)
async def task_list(identity: MaybeIdentity, repo: Repo) -> JSONResponse:
    return _response(await missions.task_list(repo, _logged_in(identity, "请先登录")))


@router.get(
    "/task/list-by-dataset",
    summary="A dataset's missions (history)",
    response_model=Envelope001[list[MissionHistory]],
)
async def list_by_dataset(identity: MaybeIdentity, repo: Repo, dataset_id: IdParam = None) -> JSONResponse:
    return _response(await missions.dataset_history(repo, _logged_in(identity), dataset_id))


@router.post(
    "/task/assign",
    summary="Split a dataset area among experts",
    openapi_extra=json_body(AssignBody),
    response_model=MissionsCreated,
)
async def assign(request: Request, identity: Manager, repo: Repo, auth: Auth, dataset: Dataset) -> JSONResponse:
    created = await missions.assign(repo, auth, dataset, identity, await read_json_body(request, AssignBody))
    return _response("success", mission_ids=[m.id for m in created])


@router.put(
    "/task/reassign",
    summary="Hand a mission over to other experts",
    openapi_extra=json_body(ReassignBody),
    response_model=MissionsCreated,
)
async def reassign(request: Request, identity: Manager, repo: Repo, auth: Auth) -> JSONResponse:
    created = await missions.reassign(repo, auth, identity, await read_json_body(request, ReassignBody))
    return _response("success", mission_ids=[m.id for m in created])


@router.post(
    "/task/urgent", summary="Urge a mission", openapi_extra=json_body(UrgeBody), response_model=Envelope001[str]
)
async def urgent(request: Request, identity: Manager, repo: Repo) -> JSONResponse:
    await missions.urge(repo, identity, await read_json_body(request, UrgeBody))
    return _response("success")


@router.get("/data/list", summary="The records of one of my missions", response_model=MissionRecords)
async def data_list(identity: MaybeIdentity, repo: Repo, dataset: Dataset, mission_id: IdParam = None) -> JSONResponse:
    entries, notice = await missions.data_list(repo, dataset, _logged_in(identity), mission_id)
    return _response(entries, notice=notice)


@router.put(
    "/data/label",
    summary="Label a record: ranked answers and the keep flag",
    openapi_extra=json_body(LabelBody),
    response_model=Envelope001[str],
)
async def label(request: Request, identity: Expert, repo: Repo, dataset: Dataset) -> JSONResponse:
    await missions.label(repo, dataset, identity, await read_json_body(request, LabelBody))
    return _response("success")
