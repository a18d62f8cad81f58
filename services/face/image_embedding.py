"""The face engine behind the web layer: model loading, and decoding, detection and embedding of request
images on a thread pool of its own, never on the event loop.

A multi-image request is decoded and detected image by image (in parallel, as many at once as the pool
has threads); each image keeps only the aligned 112x112 crop of its largest plausible face, upright
(`FaceEngine.upright_face` tries the other orientations when the photo as sent shows no convincing face),
so a request of a hundred photos never holds a hundred decoded photos; then all the faces are embedded
together, in batches of `batch_size` per model call. An image that cannot be used becomes an
`ImageProblem` with its index and the reason (not base64, not an image, truncated, too large, no face, no
plausible face), and the others go on.

Enrolment and face login also apply the quality gate (`services/face/quality.py`): a face too small,
unclear, blurred, turned aside or tilted is an `ImageProblem` with that reason, and is never stored as a
template. Search and compare take any plausible face.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from services.face import model_files
from services.face.engine import (
    FaceEngine,
    ImageTooLarge,
    NoFaceFound,
    NoPlausibleFace,
    NotAnImage,
    NotBase64,
    OrientationSettings,
    TruncatedImage,
    decode_base64_image,
)
from services.face.errors import ModelUnavailable
from services.face.model_files import FETCH_HINT, ModelFilesMissing, ModelSelection
from services.face.quality import QualityThresholds, measure, refusal
from services.face.settings import FaceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Why an image was refused: the `reason` of the internal API, and what 002's `invalid` says.
NOT_BASE64, NOT_AN_IMAGE, TRUNCATED, TOO_LARGE, NO_FACE = (
    "not_base64",
    "not_an_image",
    "truncated",
    "too_large",
    "no_face",
)
NO_PLAUSIBLE_FACE = "no_plausible_face"
DECODE_REASONS = frozenset({NOT_BASE64, NOT_AN_IMAGE, TRUNCATED, TOO_LARGE})
_DECODE_REASONS: list[tuple[type[Exception], str]] = [
    (NotBase64, NOT_BASE64), (NotAnImage, NOT_AN_IMAGE), (TruncatedImage, TRUNCATED), (ImageTooLarge, TOO_LARGE),
]  # fmt: skip


class ImageProblem(Exception):
    """Why the image at `index` cannot be used (also raised: exceptions must not be frozen)."""

    def __init__(self, index: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.index, self.reason, self.detail = index, reason, detail

    def __repr__(self) -> str:
        return f"ImageProblem({self.index}, {self.reason!r}, {self.detail!r})"


@dataclass(frozen=True)
class Located:
    index: int
    aligned: np.ndarray  # the face's 112x112 crop, upright


def select_model(settings: FaceSettings) -> ModelSelection:
    """The configured model's files, verified (raises ModelFilesMissing)."""
    kind, pack = model_files.parse_model_spec(settings.face_model)
    if kind == "insightface":
        assert pack is not None
        return model_files.locate_insightface_pack(pack)
    first: ModelFilesMissing | None = None
    for directory in settings.model_directories():
        try:
            return model_files.verify(directory)
        except ModelFilesMissing as exc:
            first = first or exc
    assert first is not None
    raise first


def load_engine(settings: FaceSettings) -> tuple[FaceEngine | None, str]:
    """The engine, or None and why not (the 503's message)."""
    try:
        selection = select_model(settings)
        engine = FaceEngine(selection, batch_size=settings.face_embed_batch_size, threads=settings.face_onnx_threads)
    except ModelFilesMissing as exc:
        log.error("face models unavailable: %s", exc)
        return None, str(exc)
    except ValueError as exc:  # a malformed LABELHIVE_FACE_MODEL
        log.error("face model setting unusable: %s", exc)
        return None, f"face models unavailable ({exc}): {FETCH_HINT}"
    log.info("face model %s (%d-d) on %s", engine.model_name, engine.dim, engine.providers)
    return engine, ""


class Recognizer:
    def __init__(
        self,
        engine: FaceEngine | None,
        missing_reason: str,
        workers: int,
        max_image_bytes: int,
        thresholds: QualityThresholds,
        orientation: OrientationSettings | None = None,
    ) -> None:
        self.engine = engine
        self.missing_reason = missing_reason
        self.max_image_bytes = max_image_bytes
        self.thresholds = thresholds
        self.orientation = orientation or OrientationSettings()
        self.executor = ThreadPoolExecutor(max(1, workers), thread_name_prefix="face-inference")

    @property
    def available(self) -> bool:
        return self.engine is not None

    def require(self) -> FaceEngine:
        if self.engine is None:
            raise ModelUnavailable(
                "face models are not installed: run `make models` (python -m services.face.model_files fetch)",
                details=self.missing_reason,
            )
        return self.engine

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def _locate(self, index: int, image: object, gate: bool) -> Located:
        """Decode one image, find its largest plausible face upright and align it (runs on the pool);
        with `gate`, refuse a face that fails the quality gate."""
        engine = self.require()
        if not isinstance(image, str):
            raise ImageProblem(index, NOT_BASE64, f"image {index} is not a base64 string")
        try:
            bgr = decode_base64_image(image, max_bytes=self.max_image_bytes)
        except tuple(kind for kind, _ in _DECODE_REASONS) as exc:
            reason = next(r for kind, r in _DECODE_REASONS if isinstance(exc, kind))
            raise ImageProblem(index, reason, f"image {index}: {exc}") from None
        try:
            upright = engine.upright_face(bgr, self.orientation)
        except NoPlausibleFace as exc:
            raise ImageProblem(index, NO_PLAUSIBLE_FACE, f"image {index}: {exc}") from None
        except NoFaceFound:
            raise ImageProblem(index, NO_FACE, f"image {index}: no face found") from None
        face = upright.face
        aligned = engine.align(upright.image, face)
        if (
            gate
            and (refused := refusal(measure(face.landmark_array(), face.width, face.score, aligned), self.thresholds))
            is not None
        ):
            reason, detail = refused
            raise ImageProblem(index, reason, f"image {index}: {detail}")
        if upright.turned:
            log.info("image %d: face found upright with the photo turned %d degrees", index, upright.turned)
        return Located(index, aligned)

    def _embed_located(self, index: int, image: object, gate: bool) -> np.ndarray | ImageProblem:
        """`_locate` and the embedding of its face, in one trip to the pool (runs on the pool)."""
        try:
            located = self._locate(index, image, gate)
        except ImageProblem as problem:
            return problem
        vector: np.ndarray = self.require().embed_aligned([located.aligned])[0]
        return vector

    async def _locate_safely(self, index: int, image: object, gate: bool) -> Located | ImageProblem:
        try:
            return await self._run(self._locate, index, image, gate)
        except ImageProblem as problem:
            return problem

    async def embed_images(
        self, images: Sequence[object], indices: Sequence[int] | None = None, *, gate: bool = False
    ) -> list[np.ndarray | ImageProblem]:
        """Per image, in order: its largest plausible face's unit vector, or why it cannot be used. `indices`
        are the images' positions in the request (default 0, 1, ...), as problems report them; `gate`
        (enrolment, face login) refuses faces that fail the quality gate."""
        engine = self.require()
        positions = list(range(len(images))) if indices is None else list(indices)
        if len(images) == 1:
            # Nothing to batch: one trip to the pool instead of two (a search, a face login, a lone insert).
            return [await self._run(self._embed_located, positions[0], images[0], gate)]
        found = await asyncio.gather(*(self._locate_safely(p, image, gate) for p, image in zip(positions, images)))
        located = [(n, item) for n, item in enumerate(found) if isinstance(item, Located)]
        results: list[np.ndarray | ImageProblem] = list(found)  # type: ignore[arg-type]
        if not located:
            return results
        vectors = await self._run(engine.embed_aligned, [item.aligned for _, item in located])
        for row, (n, _) in enumerate(located):
            results[n] = vectors[row]
        return results

    async def embed_one(self, image: object, *, gate: bool = False) -> np.ndarray:
        """One image's largest plausible face; raises ImageProblem."""
        [result] = await self.embed_images([image], gate=gate)
        if isinstance(result, ImageProblem):
            raise result
        return result

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
