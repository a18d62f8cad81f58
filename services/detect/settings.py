from __future__ import annotations

import os
from pathlib import Path

from services.detect.segmenter import DEFAULT_MODEL_PATH
from shared.settings import PlatformSettings


class DetectSettings(PlatformSettings):
    model_path: Path = DEFAULT_MODEL_PATH
    # Concurrent requests' images are gathered into one model call of up to this many images,
    # waiting at most this long for company.
    max_batch: int = 16
    max_batch_wait_ms: float = 5.0
    max_images_per_request: int = 64
    max_image_bytes: int = 20 * 1024 * 1024
    # onnxruntime's CPU threads. Half the cores leaves the rest to decoding, drawing and the event
    # loop; on a 2-core host its default (all cores) was measured 1.7x slower per image.
    inference_threads: int = max(1, (os.cpu_count() or 2) // 2)
