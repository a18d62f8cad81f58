"""Internal endpoints for other services (signed calls only; the gateway never routes /internal).

GET /internal/datasets/{dataset_id}/assignments   001's areas and who labels them: [{"area", "expert_name"}]
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.tasks import missions
from services.tasks.api.deps import Repo
from shared.envelopes import ok_003
from shared.identity import InternalCaller

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


@router.get("/datasets/{dataset_id}/assignments")
async def dataset_assignments(dataset_id: int, caller: InternalCaller, repo: Repo) -> JSONResponse:
    return ok_003(await missions.dataset_assignments(repo, dataset_id))
