"""Face detection and embedding on ONNX Runtime, and the decoding of request images (base64 and a size cap
here; formats, the pixel cap and EXIF orientation are ``shared.images``' policy).

Default pipeline (``sface``): YuNet 2023mar finds faces and five landmarks in a BGR image; each face is
aligned to the 112x112 ArcFace template with ``insightface.utils.face_align.norm_crop``; SFace 2021dec turns
the crops (RGB, 0-255, NCHW; the model normalises internally) into 128-d vectors, L2-normalised so that a
dot product is the cosine similarity. ``services.face.calibration`` maps cosines to the API's 0-1 score.

The alternative ``insightface:<pack dir>`` pipeline uses the pack's SCRFD detector and ArcFace recognizer
(usually 512-d) through ``insightface.model_zoo``.

Every method here is synchronous and CPU-heavy: the web layer calls them from a thread pool. ONNX Runtime
sessions are safe to run from several threads at once, so one engine serves all of them.
"""

from __future__ import annotations

import base64
import binascii
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]
from insightface.utils.face_align import norm_crop

from services.face.model_files import (
    InsightFacePack,
    ModelFilesMissing,
    ModelSelection,
    SFaceModels,
    resolve,
)
from services.face.quality import shape
from shared.images import CorruptImage, ImageRefused, TooManyPixels, decode_image
from shared.onnx_sessions import default_providers, open_session

__all__ = [
    "DetectedFace",
    "FaceEngine",
    "ImageDecodeError",
    "ImageTooLarge",
    "ModelFilesMissing",
    "NoFaceFound",
    "NoPlausibleFace",
    "NotAnImage",
    "OrientationSettings",
    "NotBase64",
    "TruncatedImage",
    "UprightFace",
    "decode_base64_image",
    "decode_image_bytes",
]

# insightface 2.1's norm_crop calls a scikit-image API that 0.26 deprecates; the call still works and
# the warning would otherwise repeat in the log for every face.
warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)

MAX_IMAGE_BYTES_ENV = "LABELHIVE_FACE_MAX_IMAGE_BYTES"
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
ALIGNED_SIZE = 112


# --- errors --------------------------------------------------------------------------------------


class ImageDecodeError(ValueError):
    """The request's image cannot be used; subclasses say why."""


class NotBase64(ImageDecodeError):
    pass


class NotAnImage(ImageDecodeError):
    pass


class TruncatedImage(ImageDecodeError):
    pass


class ImageTooLarge(ImageDecodeError):
    pass


class NoFaceFound(LookupError):
    """The image decoded fine but holds no face above the detector's threshold."""


class NoPlausibleFace(NoFaceFound):
    """Something face-like was detected, but in no orientation as an upright face with a good score."""


# --- decoding ------------------------------------------------------------------------------------


def max_image_bytes() -> int:
    return int(os.environ.get(MAX_IMAGE_BYTES_ENV) or DEFAULT_MAX_IMAGE_BYTES)


def decode_image_bytes(data: bytes, *, max_bytes: int | None = None) -> np.ndarray:
    """Decode an encoded image into an HxWx3 uint8 BGR array, upright per its EXIF orientation.

    The encoded size is capped before anything is parsed; the rest is ``shared.images``' policy (formats,
    pixel cap from the header, full decode), whose refusals become this module's ``ImageDecodeError``s.
    """
    limit = max_image_bytes() if max_bytes is None else max_bytes
    if len(data) > limit:
        raise ImageTooLarge(f"image is {len(data)} bytes; the limit is {limit}")
    try:
        image = decode_image(data)
    except TooManyPixels as exc:
        raise ImageTooLarge(str(exc)) from None
    except CorruptImage as exc:
        raise TruncatedImage(str(exc)) from None
    except ImageRefused as exc:
        raise NotAnImage(str(exc)) from None
    with image:
        try:
            rgb = image.convert("RGB")
        except (OSError, ValueError):
            raise NotAnImage(f"cannot convert a {image.mode} image to RGB") from None
    bgr: np.ndarray = cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)  # a strided [..., ::-1] copy is slower
    return bgr


def decode_base64_image(encoded: str | bytes, *, max_bytes: int | None = None) -> np.ndarray:
    """Decode a base64 image (optionally a ``data:image/...;base64,`` URL) into BGR."""
    limit = max_image_bytes() if max_bytes is None else max_bytes
    text = encoded.decode("ascii", "replace") if isinstance(encoded, bytes) else encoded
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise NotBase64("data URL is not base64-encoded")
    compact = "".join(text.split())
    # Refuse before decoding: 4 base64 characters carry 3 bytes.
    if len(compact) // 4 * 3 > limit + 3:
        raise ImageTooLarge(f"encoded image exceeds the {limit}-byte limit")
    return decode_image_bytes(_b64decode(compact), max_bytes=limit)


def _b64decode(compact: str) -> bytes:
    if not compact:
        raise NotBase64("image string is empty")
    padded = compact + "=" * (-len(compact) % 4)
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise NotBase64("image is not valid base64") from None


# --- shared types --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectedFace:
    """A face in image pixel coordinates.

    ``landmarks`` are (x, y) for the subject's right eye, left eye, nose tip, right and left mouth
    corners: the order of the ArcFace alignment template.
    """

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    landmarks: tuple[tuple[float, float], ...]
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def landmark_array(self) -> np.ndarray:
        return np.asarray(self.landmarks, dtype=np.float32)


class Detector(Protocol):
    name: str

    def detect(self, bgr: np.ndarray) -> list[DetectedFace]: ...


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Aligned 112x112 BGR crops -> (N, dim) raw (unnormalised) features."""
        ...


# --- ONNX Runtime plumbing -----------------------------------------------------------------------


def _load_onnx(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf, OS and ONNX errors alike mean "unusable file"
        raise ModelFilesMissing([f"{path} cannot be loaded: {exc}"]) from exc


def _with_free_dims(model: onnx.ModelProto, input_axes: Sequence[int], output_axes: Sequence[int]) -> bytes:
    """Serialise a copy of ``model`` whose first input and all outputs have symbolic sizes on those axes.

    Also drops initializers from the graph inputs (an old exporter habit) so that ONNX Runtime may fold
    them as constants, and forgets recorded intermediate shapes that would pin the old sizes.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    initializers = {init.name for init in graph.initializer}
    real_inputs = [value for value in graph.input if value.name not in initializers]
    del graph.input[:]
    graph.input.extend(real_inputs)
    del graph.value_info[:]
    for value, axes in [(graph.input[0], input_axes), *((output, output_axes) for output in graph.output)]:
        for axis in axes:
            value.type.tensor_type.shape.dim[axis].dim_param = f"{value.name}_{axis}"
    return bytes(copy.SerializeToString())


# --- YuNet ---------------------------------------------------------------------------------------

_YUNET_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class DetectorSettings:
    score_threshold: float = 0.7
    nms_threshold: float = 0.3
    # Larger images are shrunk so that their longer side is this; small faces in big group photos
    # need more, single portraits need far less. Cost grows with the square.
    max_side: int = 960
    top_k: int = 5000


class YuNetDetector:
    name = "yunet-2023mar"

    def __init__(self, path: Path, providers: Sequence[str], settings: DetectorSettings, threads: int | None):
        self.settings = settings
        model = _load_onnx(path)
        dims = model.graph.input[0].type.tensor_type.shape.dim
        declared = tuple(d.dim_value for d in dims[2:4])
        self.session, self.fixed_size = self._open(model, declared, providers, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [out.name for out in self.session.get_outputs()]

    @staticmethod
    def _open(
        model: onnx.ModelProto, declared: tuple[int, ...], providers: Sequence[str], threads: int | None
    ) -> tuple[ort.InferenceSession, tuple[int, int] | None]:
        # The heads only reshape with -1 and upsample by scale, so a model exported at a fixed size
        # usually runs at any multiple of 32: try that first, and letterbox into the fixed size if not.
        flexible = open_session(_with_free_dims(model, (2, 3), (1,)), providers, threads)
        if YuNetDetector._runs_at_any_size(flexible):
            return flexible, None
        if not all(declared) or len(declared) != 2:
            raise ModelFilesMissing(["YuNet model accepts neither a dynamic nor a fixed input size"])
        height, width = declared
        return open_session(model.SerializeToString(), providers, threads), (height, width)

    @staticmethod
    def _runs_at_any_size(session: ort.InferenceSession) -> bool:
        names = [output.name for output in session.get_outputs()]
        probe = np.zeros((1, 3, 64, 96), np.float32)
        try:
            outputs = dict(zip(names, session.run(names, {session.get_inputs()[0].name: probe})))
        except Exception:  # noqa: BLE001 - any failure means the graph really is fixed-size
            return False
        return all(outputs[f"cls_{s}"].shape[1] == (64 // s) * (96 // s) for s in _YUNET_STRIDES)

    def detect(self, bgr: np.ndarray) -> list[DetectedFace]:
        blob, scale = self._prepare(bgr)
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: blob})))
        boxes, landmarks, scores = self._decode(outputs, blob.shape[2], blob.shape[3])
        keep = _nms(boxes, scores, self.settings.nms_threshold)
        return self._faces(boxes[keep] / np.tile(scale, 2), landmarks[keep] / scale, scores[keep], bgr.shape)

    def _prepare(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A padded NCHW float blob, and the (x, y) factors from image to blob pixels."""
        height, width = bgr.shape[:2]
        if self.fixed_size is None:
            factor = min(1.0, self.settings.max_side / max(height, width))
            target_h = _round_up(round(height * factor), 32)
            target_w = _round_up(round(width * factor), 32)
        else:
            target_h, target_w = self.fixed_size
            factor = min(target_h / height, target_w / width)
        resized_w, resized_h = max(1, round(width * factor)), max(1, round(height * factor))
        if (resized_w, resized_h) != (width, height):
            interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, (resized_w, resized_h), interpolation=interpolation)
        # Pad bottom/right with black so that pixel coordinates need no offset afterwards.
        canvas = np.zeros((target_h, target_w, 3), dtype=np.float32)
        canvas[:resized_h, :resized_w] = bgr
        scale = np.array([resized_w / width, resized_h / height], dtype=np.float32)
        return canvas.transpose(2, 0, 1)[np.newaxis].copy(), scale

    def _decode(
        self, outputs: dict[str, np.ndarray], height: int, width: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        all_boxes, all_landmarks, all_scores = [], [], []
        for stride in _YUNET_STRIDES:
            cols = width // stride
            cls = np.clip(outputs[f"cls_{stride}"][0, :, 0], 0.0, 1.0)
            obj = np.clip(outputs[f"obj_{stride}"][0, :, 0], 0.0, 1.0)
            scores = np.sqrt(cls * obj)
            index = np.nonzero(scores >= self.settings.score_threshold)[0]
            rows, columns = np.divmod(index, cols)
            anchors = np.stack([columns, rows], axis=1).astype(np.float32)
            bbox = outputs[f"bbox_{stride}"][0, index]
            centre = (anchors + bbox[:, :2]) * stride
            size = np.exp(bbox[:, 2:4]) * stride
            all_boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
            kps = outputs[f"kps_{stride}"][0, index].reshape(-1, 5, 2)
            all_landmarks.append((kps + anchors[:, np.newaxis, :]) * stride)
            all_scores.append(scores[index])
        scores = np.concatenate(all_scores)
        order = np.argsort(-scores, kind="stable")[: self.settings.top_k]
        return np.concatenate(all_boxes)[order], np.concatenate(all_landmarks)[order], scores[order]

    @staticmethod
    def _faces(
        boxes: np.ndarray, landmarks: np.ndarray, scores: np.ndarray, shape: tuple[int, ...]
    ) -> list[DetectedFace]:
        height, width = shape[:2]
        boxes = boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        return [
            DetectedFace(
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                landmarks=tuple((float(x), float(y)) for x, y in points),
                score=float(score),
            )
            for box, points, score in zip(boxes, landmarks, scores)
        ]


def _round_up(value: int, multiple: int) -> int:
    return max(multiple, -(-value // multiple) * multiple)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; ``boxes`` (x1, y1, x2, y2) must be sorted by descending score."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    remaining = np.arange(len(boxes))
    keep = []
    while remaining.size:
        best, rest = remaining[0], remaining[1:]
        keep.append(best)
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]))
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]))
        inter = inter_w * inter_h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        remaining = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


# --- SFace ---------------------------------------------------------------------------------------


class SFaceEmbedder:
    name = "sface-2021dec"
    dim = 128

    def __init__(self, path: Path, providers: Sequence[str], threads: int | None):
        model = _load_onnx(path)
        # The file declares batch size 1; its graph (convolutions, Flatten, Gemm) is batch-agnostic.
        self.session = open_session(_with_free_dims(model, (0,), (0,)), providers, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        # SFace wants RGB 0-255 NCHW; it subtracts 127.5 and scales by 1/128 inside the graph.
        batch = np.stack(crops).astype(np.float32)[:, :, :, ::-1].transpose(0, 3, 1, 2)
        return np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0], dtype=np.float32)


# --- InsightFace pack ----------------------------------------------------------------------------


class InsightFaceDetector:
    def __init__(self, model: object, pack: Path, settings: DetectorSettings):
        self.model = model
        self.settings = settings
        self.name = f"scrfd-{pack.name}"
        self.input_size = (640, 640)
        model.prepare(0, input_size=self.input_size, det_thresh=settings.score_threshold,  # type: ignore[attr-defined]
                      nms_thresh=settings.nms_threshold)  # fmt: skip

    def detect(self, bgr: np.ndarray) -> list[DetectedFace]:
        boxes, kpss = self.model.detect(bgr, input_size=self.input_size)  # type: ignore[attr-defined]
        if kpss is None:
            raise ModelFilesMissing(["the InsightFace detector gives no landmarks, which alignment needs"])
        height, width = bgr.shape[:2]
        return [
            DetectedFace(
                box=(float(max(b[0], 0)), float(max(b[1], 0)), float(min(b[2], width)), float(min(b[3], height))),
                landmarks=tuple((float(x), float(y)) for x, y in points),
                score=float(b[4]),
            )
            for b, points in zip(boxes, kpss)
        ]


class ArcFaceEmbedder:
    def __init__(self, model: object, pack: Path):
        self.model = model
        self.name = f"arcface-{pack.name}"
        self.dim = int(model.output_shape[-1])  # type: ignore[attr-defined]

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(self.model.get_feat(list(crops)), dtype=np.float32)  # type: ignore[attr-defined]


def _insightface_models(
    pack: InsightFacePack, providers: Sequence[str], settings: DetectorSettings
) -> tuple[Detector, Embedder]:
    from insightface import model_zoo

    found: dict[str, object] = {}
    for path in pack.onnx_files:
        model = model_zoo.get_model(str(path), providers=list(providers))
        task = getattr(model, "taskname", None)
        if task in ("detection", "recognition") and task not in found:
            found[task] = model
    missing = [task for task in ("detection", "recognition") if task not in found]
    if missing:
        raise ModelFilesMissing([f"InsightFace pack {pack.directory} has no {' or '.join(missing)} model"])
    return (
        InsightFaceDetector(found["detection"], pack.directory, settings),
        ArcFaceEmbedder(found["recognition"], pack.directory),
    )


# --- orientation ---------------------------------------------------------------------------------

# Clockwise turns of the photo as sent, tried in this order when the first gives no convincing face.
_TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class OrientationSettings:
    # A face scoring below this in every orientation is no plausible face (YuNet keeps faces from 0.7).
    plausible_score: float = 0.80
    # A plausible face scoring at least this in the photo as sent is taken without trying other
    # orientations: on the evaluation photos no face turned by 90, 180 or 270 degrees scored above 0.91.
    upright_score: float = 0.93


@dataclass(frozen=True)
class UprightFace:
    image: np.ndarray  # the photo turned so that this face is upright
    face: DetectedFace
    turned: int  # degrees clockwise the photo as sent was turned (0, 90, 180, 270)


# --- the engine ----------------------------------------------------------------------------------


def _normalise(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.asarray(features / np.maximum(norms, 1e-12), dtype=np.float32)


class FaceEngine:
    """Detector + aligner + embedder. ``FaceEngine()`` loads what $LABELHIVE_FACE_MODEL selects."""

    def __init__(
        self,
        selection: ModelSelection | None = None,
        *,
        providers: Sequence[str] | None = None,
        detector_settings: DetectorSettings | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        selection = selection or resolve()
        requested = list(providers or default_providers())
        settings = detector_settings or DetectorSettings()
        self.batch_size = batch_size
        self.detector: Detector
        self.embedder: Embedder
        if isinstance(selection, SFaceModels):
            sface = SFaceEmbedder(selection.recognizer, requested, threads)
            self.detector = YuNetDetector(selection.detector, requested, settings, threads)
            self.embedder = sface
            # What the sessions really run on: CUDA drops out silently when it cannot start.
            self.providers = list(sface.session.get_providers())
        else:
            self.detector, self.embedder = _insightface_models(selection, requested, settings)
            self.providers = requested

    @property
    def model_name(self) -> str:
        """Identifies the embedding space: features from different models must never be compared."""
        return self.embedder.name

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def detect(self, bgr: np.ndarray) -> list[DetectedFace]:
        """Faces sorted by descending detector score."""
        return self.detector.detect(_as_bgr(bgr))

    @staticmethod
    def align(bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
        aligned: np.ndarray = norm_crop(_as_bgr(bgr), face.landmark_array(), image_size=ALIGNED_SIZE)
        return aligned

    def embed_faces(self, items: Sequence[tuple[np.ndarray, DetectedFace]]) -> np.ndarray:
        """(N, dim) float32 unit vectors, one model call per ``batch_size`` faces."""
        return self.embed_aligned([self.align(image, face) for image, face in items])

    def embed_aligned(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32 unit vectors of crops from ``align``, one model call per ``batch_size``."""
        if not crops:
            return np.empty((0, self.dim), dtype=np.float32)
        chunks = [
            self.embedder.embed(crops[start : start + self.batch_size])
            for start in range(0, len(crops), self.batch_size)
        ]
        return _normalise(np.concatenate(chunks))

    def largest_face(self, bgr: np.ndarray) -> DetectedFace:
        faces = self.detect(bgr)
        if not faces:
            raise NoFaceFound("no face found in the image")
        return max(faces, key=lambda face: face.area)

    def upright_face(self, bgr: np.ndarray, settings: OrientationSettings | None = None) -> UprightFace:
        """The largest plausible face, in the orientation where the detector is surest of it.

        The photo as sent comes first; unless its face is plausible with a score of at least
        ``upright_score``, the photo is also turned by 90, 180 and 270 degrees and the orientation whose
        plausible face scores highest wins. Raises NoFaceFound when no orientation shows a face at all,
        NoPlausibleFace when faces were found but none plausible (services/face/quality.py).
        """
        settings = settings or OrientationSettings()
        bgr = _as_bgr(bgr)
        found_any = False
        best: UprightFace | None = None
        for turned in (0, *_TURNS):
            image = bgr if turned == 0 else cv2.rotate(bgr, _TURNS[turned])
            faces = self.detect(image)
            found_any = found_any or bool(faces)
            plausible = [face for face in faces if _plausible(face, settings)]
            if plausible:
                face = max(plausible, key=lambda face: face.area)
                if best is None or face.score > best.face.score:
                    best = UprightFace(image, face, turned)
            if turned == 0 and best is not None and best.face.score >= settings.upright_score:
                break
        if best is None:
            if found_any:
                raise NoPlausibleFace(
                    "no plausible face: none is upright with eyes above the nose above the mouth "
                    "and a good detector score, in any orientation"
                )
            raise NoFaceFound("no face found in the image")
        return best

    def embed_largest(self, bgr: np.ndarray) -> np.ndarray:
        """The (dim,) unit vector of the image's largest plausible face, upright; raises NoFaceFound."""
        upright = self.upright_face(bgr)
        vector: np.ndarray = self.embed_faces([(upright.image, upright.face)])[0]
        return vector


def _plausible(face: DetectedFace, settings: OrientationSettings) -> bool:
    return face.score >= settings.plausible_score and shape(face.landmark_array(), face.width).ordered


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[:, :, np.newaxis], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 BGR image, got shape {image.shape}")
    return image[:, :, :3] if image.shape[2] == 4 else image
