"""The stats service: stores every detection record once and serves document 004's data API.

Every replica reads the detections stream as one consumer of a shared group (consumer.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.stats.api import data
from services.stats.consumer import RecordConsumer
from services.stats.settings import StatsSettings
from shared.detections import stream_key
from shared.service_app import build_service_app, run_in_background


def create_app(settings: StatsSettings | None = None) -> FastAPI:
    settings = settings or StatsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        consumer = RecordConsumer(
            app.state.redis,
            stream_key(app.state.keys),
            settings.consumer_group,
            app.state.sessionmaker,
            settings.read_count,
            settings.claim_idle_ms,
        )
        run_in_background(app, consumer.run(), "detections-consumer")
        yield

    return build_service_app(
        name="stats",
        settings=settings,
        routers=[data.router],
        lifespan=lifespan,
        title="Labelhive stats",
        description="Detection records and their summaries (document 004).",
    )
