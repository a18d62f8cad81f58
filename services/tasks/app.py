"""The tasks service: 003's tasks (publish, distribute, label, review, pay) and 001's expert missions.

Two background loops run in every replica: the outbox drainer (payouts, refunds and other calls that
follow a commit; ops are locked per row, so replicas share the work: shared/outbox.py) and the time-out
worker (which scans only while it holds the leader lease, so one replica at a time does: shared/leader.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.tasks.api import internal, missions_001, review_003, tasks_003
from services.tasks.outbox import Outbox
from services.tasks.peers import AuthClient, DatasetClient
from services.tasks.settings import TasksSettings
from services.tasks.timeouts import TimeoutWorker
from shared.service_app import build_service_app, peer, run_in_background

log = logging.getLogger(__name__)


def create_app(settings: TasksSettings | None = None) -> FastAPI:
    settings = settings or TasksSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        clients = {name: peer(app, name) for name in ("auth", "dataset")}
        app.state.auth = AuthClient(clients["auth"])
        app.state.dataset = DatasetClient(
            clients["dataset"], app.state.redis, app.state.keys, settings.text_fetch_concurrency
        )
        app.state.outbox = Outbox(
            app.state.sessionmaker, clients, settings.outbox_interval_seconds, settings.outbox_max_backoff_seconds
        )
        app.state.timeouts = TimeoutWorker(
            app.state.sessionmaker,
            app.state.redis,
            app.state.keys,
            settings.timeout_scan_seconds,
            settings.worker_lock_seconds,
        )
        run_in_background(app, app.state.outbox.run(), "tasks-outbox")
        run_in_background(app, app.state.timeouts.run(), "tasks-timeouts")
        yield

    return build_service_app(
        name="tasks",
        settings=settings,
        # 001's /task/list... before 003's /task/{task_id}.
        routers=[missions_001.router, tasks_003.router, review_003.router, internal.router],
        lifespan=lifespan,
        title="Labelhive tasks",
        description="Tasks: publish, distribute, label, review and pay (003); expert missions (001).",
    )
