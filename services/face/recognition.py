"""The face engine behind the web layer: model loading, and decoding, detection and embedding of request
images on a thread pool of its own, never on the event loop.

A multi-image request is decoded and detected image by image (in parallel, as many at once as the pool
has threads); each image keeps only a small crop around its largest face, so a request of a hundred
photos never holds a hundred decoded photos; then all the faces are embedded together, in batches of
`batch_size` per model call. An image that cannot be used becomes an `ImageProblem` with its index and
the reason (not base64, not an image, truncated, too large, no face), and the others go on.
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
    DetectedFace,
    FaceEngine,
    ImageTooLarge,
    NoFaceFound,
    NotAnImage,
    NotBase64,
    TruncatedImage,
    decode_base64_image,
)
from services.face.errors import ModelUnavailable
from services.face.model_files import FETCH_HINT, ModelFilesMissing, ModelSelection
from services.face.settings import FaceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Why an image was refused: the `reason` of the internal API, and what 002's `invalid` says.
NOT_BASE64, NOT_AN_IMAGE, TRUNCATED, TOO_LARGE, NO_FACE = "not_base64", "not_an_image", "truncated", "too_large", "no_face"
_DECODE_REASONS: list[tuple[type[Exception], str]] = [
    (NotBase64, NOT_BASE64), (NotAnImage, NOT_AN_IMAGE), (TruncatedImage, TRUNCATED), (ImageTooLarge, TOO_LARGE),
]  # fmt: skip
# Context kept around a face for alignment: the ArcFace template spans about the face box, so one box
# size on every side leaves the warp well inside real pixels.
_CROP_MARGIN = 1.0


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
    crop: np.ndarray
    face: DetectedFace


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


def _crop_around(bgr: np.ndarray, face: DetectedFace) -> tuple[np.ndarray, DetectedFace]:
    height, width = bgr.shape[:2]
    x1, y1, x2, y2 = face.box
    side = max(x2 - x1, y2 - y1, 1.0)
    left = int(max(0, np.floor(x1 - side * _CROP_MARGIN)))
    top = int(max(0, np.floor(y1 - side * _CROP_MARGIN)))
    right = int(min(width, np.ceil(x2 + side * _CROP_MARGIN)))
    bottom = int(min(height, np.ceil(y2 + side * _CROP_MARGIN)))
    crop = np.ascontiguousarray(bgr[top:bottom, left:right])
    shifted = DetectedFace(
        box=(x1 - left, y1 - top, x2 - left, y2 - top),
        landmarks=tuple((x - left, y - top) for x, y in face.landmarks),
        score=face.score,
    )
    return crop, shifted


class Recognizer:
    def __init__(self, engine: FaceEngine | None, missing_reason: str, workers: int, max_image_bytes: int) -> None:
        self.engine = engine
        self.missing_reason = missing_reason
        self.max_image_bytes = max_image_bytes
        self.executor = ThreadPoolExecutor(max(1, workers), thread_name_prefix="face-inference")

    @property
    def available(self) -> bool:
        return self.engine is not None

    def require(self) -> FaceEngine:
        if self.engine is None:
            raise ModelUnavailable("face models are not installed: run `make models` "
                                   "(python -m services.face.model_files fetch)", details=self.missing_reason)
        return self.engine

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def _locate(self, index: int, image: object) -> Located:
        """Decode one image and keep a crop around its largest face (runs on the pool)."""
        engine = self.require()
        if not isinstance(image, str):
            raise ImageProblem(index, NOT_BASE64, f"image {index} is not a base64 string")
        try:
            bgr = decode_base64_image(image, max_bytes=self.max_image_bytes)
        except tuple(kind for kind, _ in _DECODE_REASONS) as exc:
            reason = next(r for kind, r in _DECODE_REASONS if isinstance(exc, kind))
            raise ImageProblem(index, reason, f"image {index}: {exc}") from None
        try:
            face = engine.largest_face(bgr)
        except NoFaceFound:
            raise ImageProblem(index, NO_FACE, f"image {index}: no face found") from None
        crop, shifted = _crop_around(bgr, face)
        return Located(index, crop, shifted)

    async def _locate_safely(self, index: int, image: object) -> Located | ImageProblem:
        try:
            return await self._run(self._locate, index, image)
        except ImageProblem as problem:
            return problem

    async def embed_images(self, images: Sequence[object],
                           indices: Sequence[int] | None = None) -> list[np.ndarray | ImageProblem]:
        """Per image, in order: its largest face's unit vector, or why it cannot be used. `indices` are
        the images' positions in the request (default 0, 1, ...), as problems report them."""
        engine = self.require()
        positions = list(range(len(images))) if indices is None else list(indices)
        found = await asyncio.gather(*(self._locate_safely(p, image) for p, image in zip(positions, images)))
        located = [(n, item) for n, item in enumerate(found) if isinstance(item, Located)]
        results: list[np.ndarray | ImageProblem] = list(found)  # type: ignore[arg-type]
        if not located:
            return results
        vectors = await self._run(engine.embed_faces, [(item.crop, item.face) for _, item in located])
        for row, (n, _) in enumerate(located):
            results[n] = vectors[row]
        return results

    async def embed_one(self, image: object) -> np.ndarray:
        """One image's largest face; raises ImageProblem."""
        [result] = await self.embed_images([image])
        if isinstance(result, ImageProblem):
            raise result
        return result

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
