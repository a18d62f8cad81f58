"""The detect service: steel-surface defect segmentation (document 004), micro-batched, with every
result recorded on the detections stream for the stats service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI

from services.detect.api import detect
from services.detect.batcher import MicroBatcher
from services.detect.detection import Detector
from services.detect.segmenter import DefectSegmenter
from services.detect.settings import DetectSettings
from shared.detections import stream_key
from shared.service_app import build_service_app

log = logging.getLogger(__name__)


def _load_segmenter(settings: DetectSettings) -> tuple[DefectSegmenter | None, str]:
    if not settings.model_path.exists():
        return None, (
            f"{settings.model_path} is missing: restore it from the repository or train one "
            "with `make train-detect DATA=...`"
        )
    segmenter = DefectSegmenter(settings.model_path, num_threads=settings.inference_threads)
    log.info("defect model %s on %s", settings.model_path.name, segmenter.providers)
    return segmenter, ""


def create_app(settings: DetectSettings | None = None) -> FastAPI:
    settings = settings or DetectSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        segmenter, missing = _load_segmenter(settings)
        batcher: MicroBatcher[np.ndarray, np.ndarray] | None = None
        if segmenter is not None:
            batcher = MicroBatcher(segmenter.run, settings.max_batch)
            batcher.start()
        image_executor = ThreadPoolExecutor(max_workers=settings.image_threads, thread_name_prefix="images")
        app.state.detector = Detector(
            segmenter, missing, batcher, image_executor, app.state.redis, stream_key(app.state.keys)
        )

        async def model_check() -> str:
            return "ok" if segmenter is not None else "missing"

        app.state.readiness_checks = {"model": model_check}
        try:
            yield
        finally:
            if batcher is not None:
                await batcher.stop()
            image_executor.shutdown(wait=True)

    return build_service_app(
        name="detect",
        settings=settings,
        routers=[detect.router],
        lifespan=lifespan,
        uses_database=False,
        title="Labelhive detect",
        description="Steel-surface defect segmentation (document 004).",
    )
