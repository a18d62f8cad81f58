"""Dependencies the dataset routers share."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends

from services.dataset.enrolment import EnrolmentDrainer
from services.dataset.repository import DatasetRepository
from services.dataset.settings import DatasetSettings
from services.dataset.storage import ObjectStore
from shared.db import DbSession
from shared.http import ServiceClient
from shared.identity import Identity, require_roles
from shared.service_app import app_state


# Dependencies are coroutines: FastAPI runs a plain function in its thread pool, a thread hop per request.
async def _repo(session: DbSession) -> DatasetRepository:
    return DatasetRepository(session)


Repo = Annotated[DatasetRepository, Depends(_repo)]
Settings = Annotated[DatasetSettings, app_state("settings")]
Store = Annotated[ObjectStore, app_state("store")]
DecodeSlots = Annotated[asyncio.Semaphore, app_state("decode_slots")]
Tasks = Annotated[ServiceClient, app_state("tasks")]
Drainer = Annotated[EnrolmentDrainer, app_state("enrolment")]

# 000's users and 001's managers are requesters (`demand`); an admin may do what they do.
MANAGER_ROLES = ("demand", "admin")
require_manager = require_roles(*MANAGER_ROLES)
Manager = Annotated[Identity, Depends(require_manager)]
# Any account, but not an API key: keys open the AI services only, and act for no user here.
User = Annotated[Identity, Depends(require_roles("admin", "demand", "tag", "agent"))]
