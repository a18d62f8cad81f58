from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from services.detect.segmenter import DEFAULT_MODEL_PATH
from shared.settings import PlatformSettings

FORM_OVERHEAD_BYTES = 1024 * 1024


class DetectSettings(PlatformSettings):
    model_path: Path = DEFAULT_MODEL_PATH
    # Concurrent requests' images are gathered into one model call of up to this many images,
    # waiting at most this long for company.
    max_batch: int = 16
    max_batch_wait_ms: float = 5.0
    max_images_per_request: int = Field(64, ge=1)
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1)
    # onnxruntime's CPU threads. Half the cores leaves the rest to decoding, drawing and the event
    # loop; on a 2-core host its default (all cores) was measured 1.7x slower per image.
    inference_threads: int = max(1, (os.cpu_count() or 2) // 2)

    @property
    def max_request_bytes(self) -> int:
        """The whole form: every image at its limit, plus room for the multipart framing and small fields."""
        return self.max_images_per_request * self.max_image_bytes + FORM_OVERHEAD_BYTES
