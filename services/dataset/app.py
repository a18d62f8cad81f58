"""The dataset service: 000's image datasets, 001's Q&A datasets, 003's task data, image bed and media bed,
and exports of all of them. Files live in a content-addressed object store: under the data dir, or in S3-compatible
storage (`LABELHIVE_OBJECT_STORE`) that every replica reads alike."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.dataset.api import (
    data_module_000,
    dataset_001,
    exports,
    internal,
    media_003,
    upload_data_003,
)
from services.dataset.enrolment import EnrolmentDrainer
from services.dataset.objects import sweep_orphans
from services.dataset.settings import DatasetSettings
from services.dataset.storage import open_object_store
from services.dataset.uploads import UploadThrottle
from shared.service_app import build_service_app, peer, run_in_background

log = logging.getLogger(__name__)

SWEEP_DELAY_SECONDS = 10
SWEEP_EVERY_SECONDS = 3600


def _purge_scratch(directory: Path, older_than: float = 3600) -> None:
    """Export files a killed process left half-written (a live one removes its own)."""
    cutoff = time.time() - older_than
    for leftover in directory.glob("export-*"):
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


async def _sweep(app: FastAPI, settings: DatasetSettings) -> None:
    """Once, shortly after start-up, unless another replica swept within the hour."""
    await asyncio.sleep(SWEEP_DELAY_SECONDS)
    key = app.state.keys.of("dataset", "orphan-sweep")
    if not await app.state.redis.set(key, "1", nx=True, ex=SWEEP_EVERY_SECONDS):
        return
    try:
        removed = await sweep_orphans(app.state.sessionmaker, app.state.store, settings.orphan_sweep_age_seconds)
        if removed:
            log.info("removed %d stored objects that nothing referenced", removed)
    except Exception:
        log.exception("orphan sweep failed")


def create_app(settings: DatasetSettings | None = None) -> FastAPI:
    settings = settings or DatasetSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_object_store(settings)
        if removed := await store.purge_stale_temp():
            log.info("removed %d temp files an interrupted upload left behind", removed)
        settings.scratch_dir.mkdir(parents=True, exist_ok=True)
        _purge_scratch(settings.scratch_dir)
        app.state.store = store
        app.state.decode_slots = asyncio.Semaphore(settings.decode_concurrency)
        app.state.tasks = peer(app, "tasks")
        app.state.throttle = UploadThrottle(
            app.state.redis, app.state.keys, peer(app, "auth"), settings.upload_throttle
        )
        drainer = EnrolmentDrainer(
            app.state.sessionmaker,
            store,
            peer(app, "face"),
            interval=settings.enrolment_interval_seconds,
            batch=settings.enrolment_batch,
            max_backoff=settings.enrolment_max_backoff_seconds,
        )
        app.state.enrolment = drainer
        run_in_background(app, drainer.run(), "enrolment-drainer")
        if settings.orphan_sweep_age_seconds > 0:
            run_in_background(app, _sweep(app, settings), "orphan-sweep")
        yield

    return build_service_app(
        name="dataset",
        settings=settings,
        routers=[
            data_module_000.router,
            dataset_001.router,
            exports.router,
            upload_data_003.router,
            media_003.router,
            internal.router,
        ],
        lifespan=lifespan,
        title="Labelhive dataset",
        description="Image datasets (000), Q&A datasets (001), task data, image and media bed (003), exports.",
    )
