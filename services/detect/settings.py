from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from services.detect.segmenter import DEFAULT_MODEL_PATH
from shared.settings import PlatformSettings

FORM_OVERHEAD_BYTES = 1024 * 1024
CORES = os.cpu_count() or 2


class DetectSettings(PlatformSettings):
    model_path: Path = DEFAULT_MODEL_PATH
    # Images that wait while the model runs go into its next call together, up to this many; an
    # image that finds the model idle runs at once (services/detect/batcher.py).
    max_batch: int = Field(16, ge=1)
    max_images_per_request: int = Field(64, ge=1)
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1)
    # onnxruntime's CPU threads. Half the cores leaves the rest to decoding, drawing and the event
    # loop; on a 2-core host its default (all cores) was measured 1.7x slower per image.
    inference_threads: int = Field(max(1, CORES // 2), ge=1)
    # Threads that decode uploads and post-process, draw and encode results, beside the model's: the
    # rest of the cores. More would only queue for the same CPUs (and the GIL) and slow the model.
    image_threads: int = Field(max(1, CORES - CORES // 2), ge=1)

    @property
    def max_request_bytes(self) -> int:
        """The whole form: every image at its limit, plus room for the multipart framing and small fields."""
        return self.max_images_per_request * self.max_image_bytes + FORM_OVERHEAD_BYTES
