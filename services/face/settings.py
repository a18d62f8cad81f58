"""The face service's knobs (environment variables `LABELHIVE_<FIELD>`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.face.calibration import SAME_PERSON_SCORE
from services.face.engine import DEFAULT_MAX_IMAGE_BYTES, OrientationSettings
from services.face.quality import QualityThresholds
from services.face.vector_index import IndexSettings
from shared.launcher import ROOT
from shared.settings import PlatformSettings


class FaceSettings(PlatformSettings):
    # Where the model files are (LABELHIVE_MODEL_DIR). Unset: `<data dir>/models`, and then the
    # checkout's `var/models`, where `make models` puts them, so that a run with its own data dir
    # (the test suite, a second deployment on one machine) needs no second copy of the models.
    model_dir: Path | None = None
    # `sface` (YuNet + SFace, 128-d) or `insightface:<pack dir>` (SCRFD + ArcFace, usually 512-d).
    face_model: str = "sface"

    # Document 002's limits.
    face_max_collections: int = Field(30, ge=1)
    face_max_features_per_target: int = Field(5, ge=1)
    face_max_top_k: int = Field(100, ge=1)

    # Request size: images per insert/update, one image's encoded bytes, the whole JSON body.
    face_max_images_per_request: int = Field(100, ge=1)
    face_max_image_bytes: int = Field(DEFAULT_MAX_IMAGE_BYTES, ge=1)
    face_max_body_bytes: int = Field(64 * 1024 * 1024, ge=1)

    # Inference: threads that decode, detect and embed (never the event loop), faces per model call,
    # ONNX Runtime's intra-op threads per session (unset: its default, all cores).
    face_inference_workers: int = Field(2, ge=1)
    face_embed_batch_size: int = Field(32, ge=1)
    face_onnx_threads: int | None = None

    # Search: exact up to this many vectors per collection, an inverted file re-ranked exactly past it
    # (services/face/vector_index.py), which probes this share of its lists: recall@1 on 1M face-like
    # vectors 0.995 at 0.4, 0.997-0.998 at 0.5; a search's time grows with it (p50 1.2 and 1.9 ms).
    face_approximate_threshold: int = Field(100_000, ge=0)
    face_ivf_probe_fraction: float = Field(IndexSettings.probe_fraction, gt=0, le=1)
    # Replicas: how often each one compares its indexes' versions with PostgreSQL (a safety net for
    # missed pub/sub messages), and how long a search waits for a change event it knows is coming
    # before it reloads the collection from PostgreSQL instead.
    face_sync_interval_seconds: float = Field(30.0, gt=0)
    face_event_wait_seconds: float = Field(0.5, ge=0)

    # Face login: the calibrated score a face must reach to log a user in (and to count as another
    # user's face when binding). 0.5 is the calibration's same-person threshold.
    face_login_min_score: float = Field(SAME_PERSON_SCORE, gt=0, lt=1)

    # The quality gate of enrolment (002 insert/update, face datasets, face binding) and face login
    # (services/face/quality.py; the defaults are chosen from measurements in the README, "Face quality").
    face_min_eye_distance_px: float = Field(20.0, ge=0)
    face_min_detector_score: float = Field(0.85, ge=0, le=1)
    face_min_sharpness: float = Field(40.0, ge=0)
    face_max_yaw_degrees: float = Field(45.0, gt=0, le=90)
    face_max_roll_degrees: float = Field(30.0, gt=0, le=180)
    # Orientation (services/face/engine.py, OrientationSettings): a face scoring below the first in every
    # orientation is no plausible face; one scoring the second as sent is taken without turning the photo.
    face_plausible_score: float = Field(OrientationSettings.plausible_score, ge=0, le=1)
    face_upright_score: float = Field(OrientationSettings.upright_score, ge=0, le=1)

    def quality_thresholds(self) -> QualityThresholds:
        return QualityThresholds(
            min_eye_distance=self.face_min_eye_distance_px,
            min_score=self.face_min_detector_score,
            min_sharpness=self.face_min_sharpness,
            max_yaw=self.face_max_yaw_degrees,
            max_roll=self.face_max_roll_degrees,
        )

    def index_settings(self) -> IndexSettings:
        return IndexSettings(
            approximate_threshold=self.face_approximate_threshold, probe_fraction=self.face_ivf_probe_fraction
        )

    def orientation(self) -> OrientationSettings:
        return OrientationSettings(plausible_score=self.face_plausible_score, upright_score=self.face_upright_score)

    def model_directories(self) -> list[Path]:
        if self.model_dir is not None:
            return [self.model_dir]
        candidates = [self.data_dir / "models", ROOT / "var" / "models"]
        unique: list[Path] = []
        for path in candidates:
            if all(path.resolve() != seen.resolve() for seen in unique):
                unique.append(path)
        return unique
