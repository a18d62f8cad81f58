"""Defect detection of uploaded images: validate every image first, segment them through the
micro-batcher, draw the results, and publish a record of each on the detections stream."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.detect.batcher import MicroBatcher
from services.detect.segmenter import DefectSegmenter, ImageDecodeError, SegmentationResult, decode_image
from shared.detections import STREAM_MAX_LENGTH, DetectionRecord
from shared.errors import LabelhiveError, ServiceUnavailable


class InvalidImage(LabelhiveError):
    status_code = 400


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True)
class Detection:
    name: str
    result: SegmentationResult
    result_image: bytes
    processing_time: float

    def as_response(self) -> dict[str, Any]:
        """004's result object."""
        return {
            "defect_count": self.result.defect_count,
            "dice": self.result.dice,
            "labels": self.result.labels,
            "name": self.name,
            "processing_time": self.processing_time,
            "result_image": base64.b64encode(self.result_image).decode(),
        }

    def as_record(self) -> DetectionRecord:
        return DetectionRecord(
            record_id=uuid.uuid4().hex, name=self.name, created_at=datetime.now(UTC).isoformat(),
            labels=self.result.labels, num=self.result.defect_count, dice=self.result.dice,
            processing_time=self.processing_time,
            result_image=base64.b64encode(self.result_image).decode())


class Detector:
    def __init__(self, segmenter: DefectSegmenter | None, missing_reason: str, batcher: MicroBatcher | None,
                 redis: Redis, stream: str) -> None:
        self.segmenter = segmenter
        self.missing_reason = missing_reason
        self.batcher = batcher
        self.redis = redis
        self.stream = stream

    async def _decode(self, upload: Upload) -> Image.Image:
        try:
            return await asyncio.to_thread(decode_image, upload.data)
        except ImageDecodeError as exc:
            raise InvalidImage(f"Invalid image data for {upload.name}", details=str(exc)) from None

    async def _detect_one(self, upload: Upload, image: Image.Image, started: float) -> Detection:
        assert self.batcher is not None and self.segmenter is not None
        result = await self.batcher.submit(image)
        rendered = await asyncio.to_thread(self.segmenter.render, image, result)
        return Detection(upload.name, result, rendered, round(time.perf_counter() - started, 4))

    async def detect(self, uploads: list[Upload]) -> list[Detection]:
        started = time.perf_counter()
        # Every image is checked before any is processed: one bad file fails the request (004).
        images = [await self._decode(upload) for upload in uploads]
        if self.segmenter is None:
            raise ServiceUnavailable("the defect model is not installed", details=self.missing_reason)
        detections = await asyncio.gather(
            *(self._detect_one(u, image, started) for u, image in zip(uploads, images, strict=True)))
        await self._publish(detections)
        return list(detections)

    async def _publish(self, detections: list[Detection]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for detection in detections:
                    pipe.xadd(self.stream, detection.as_record().to_fields(),
                              maxlen=STREAM_MAX_LENGTH, approximate=True)
                await pipe.execute()
        except RedisError as exc:
            raise ServiceUnavailable("could not record the detection", details=type(exc).__name__) from exc
