"""Defect detection of uploaded images: validate every image first, segment them through the
micro-batcher, draw the results, and publish a record of each on the detections stream.

The event loop only moves bytes: decoding (with the model's input made there too), post-processing,
drawing, JPEG encoding and base64 run on the image threads, and the model thread runs nothing but
the model, so that under load the next batch runs while the last one's results are drawn."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from PIL import Image
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from services.detect.batcher import MicroBatcher
from services.detect.segmenter import DefectSegmenter, SegmentationResult
from shared.detections import STREAM_MAX_LENGTH, DetectionRecord
from shared.errors import LabelhiveError, ServiceUnavailable
from shared.images import ImageRefused, decode_image


class InvalidImage(LabelhiveError):
    status_code = 400


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True)
class DecodedUpload:
    upload: Upload
    image: Image.Image
    model_input: np.ndarray | None  # None when no model is installed


@dataclass(frozen=True)
class Detection:
    name: str
    result: SegmentationResult
    result_image: str  # base64 of the drawn JPEG, encoded once for the answer and the record
    processing_time: float

    def as_response(self) -> dict[str, Any]:
        """004's result object."""
        return {
            "defect_count": self.result.defect_count,
            "dice": self.result.dice,
            "labels": self.result.labels,
            "name": self.name,
            "processing_time": self.processing_time,
            "result_image": self.result_image,
        }

    def as_record(self) -> DetectionRecord:
        return DetectionRecord(
            record_id=uuid.uuid4().hex,
            name=self.name,
            created_at=datetime.now(UTC).isoformat(),
            labels=self.result.labels,
            num=self.result.defect_count,
            dice=self.result.dice,
            processing_time=self.processing_time,
            result_image=self.result_image,
        )


def _stream_fields(detection: Detection) -> dict[FieldT, EncodableT]:
    """The record's stream entry. redis-py's xadd takes a dict of its own (invariant) key and value
    types; a dict of str is one, as far as it is only read."""
    return cast("dict[FieldT, EncodableT]", detection.as_record().to_fields())


class Detector:
    """`batcher` runs the segmenter's `run` (prepared inputs in, probabilities out); `image_executor`
    runs everything else that touches pixels."""

    def __init__(
        self,
        segmenter: DefectSegmenter | None,
        missing_reason: str,
        batcher: MicroBatcher[np.ndarray, np.ndarray] | None,
        image_executor: Executor,
        redis: Redis,
        stream: str,
    ) -> None:
        self.segmenter = segmenter
        self.missing_reason = missing_reason
        self.batcher = batcher
        self.image_executor = image_executor
        self.redis = redis
        self.stream = stream

    def _decode_all(self, uploads: Sequence[Upload]) -> list[DecodedUpload]:
        """Every image, in order; the first that does not decode fails them all (one thread hop per request)."""
        decoded = []
        for upload in uploads:
            try:
                image = decode_image(upload.data)
            except ImageRefused as exc:
                raise InvalidImage(f"Invalid image data for {upload.name}", details=str(exc)) from None
            model_input = self.segmenter.prepare(image) if self.segmenter is not None else None
            decoded.append(DecodedUpload(upload, image, model_input))
        return decoded

    def _finish(self, decoded: DecodedUpload, probs: np.ndarray, started: float) -> Detection:
        assert self.segmenter is not None
        image = decoded.image
        result = self.segmenter.result(probs, (image.height, image.width))
        drawn = base64.b64encode(self.segmenter.render(image, result)).decode("ascii")
        return Detection(decoded.upload.name, result, drawn, round(time.perf_counter() - started, 4))

    async def _detect_one(self, decoded: DecodedUpload, started: float) -> Detection:
        assert self.batcher is not None and decoded.model_input is not None
        probs = await self.batcher.submit(decoded.model_input)
        return await asyncio.get_running_loop().run_in_executor(
            self.image_executor, self._finish, decoded, probs, started
        )

    async def detect(self, uploads: list[Upload]) -> list[Detection]:
        started = time.perf_counter()
        # Every image is checked before any is processed: one bad file fails the request (004).
        decoded = await asyncio.get_running_loop().run_in_executor(self.image_executor, self._decode_all, uploads)
        if self.segmenter is None:
            raise ServiceUnavailable("the defect model is not installed", details=self.missing_reason)
        detections = await asyncio.gather(*(self._detect_one(d, started) for d in decoded))
        await self._publish(detections)
        return list(detections)

    async def _publish(self, detections: list[Detection]) -> None:
        try:
            if len(detections) == 1:  # the usual request: one command, without a pipeline's bookkeeping
                await self.redis.xadd(
                    self.stream, _stream_fields(detections[0]), maxlen=STREAM_MAX_LENGTH, approximate=True
                )
                return
            async with self.redis.pipeline(transaction=False) as pipe:
                for detection in detections:
                    pipe.xadd(self.stream, _stream_fields(detection), maxlen=STREAM_MAX_LENGTH, approximate=True)
                await pipe.execute()
        except RedisError as exc:
            raise ServiceUnavailable("could not record the detection", details=type(exc).__name__) from exc
