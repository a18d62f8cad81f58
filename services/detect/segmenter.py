"""Steel-surface defect segmentation with the ONNX model in ``weights/``.

Plain inference code, no web layer: segment a batch of decoded images (uploads decode
under :func:`shared.images.decode_image`'s policy) with :meth:`DefectSegmenter.predict_batch`
(one onnxruntime call per batch) and draw a result picture with :func:`render_result`.

The preprocessing helpers here (:func:`to_gray`, :func:`preprocess`) are also what the
training and evaluation tools use, so the model is always fed the same way.

Runtime dependencies: numpy, Pillow, scipy, onnxruntime (or onnxruntime-gpu).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import numpy as np
from PIL import Image
from scipy import ndimage

from shared.onnx_sessions import open_session

CLASS_NAMES: tuple[str, ...] = ("background", "inclusion", "patches", "scratches")
DEFECT_CLASS_IDS: tuple[int, ...] = (1, 2, 3)
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "weights" / "defect_seg.onnx"
DEFAULT_INPUT_SIZE = 200

# A predicted region is kept only if it has at least MIN_REGION_AREA pixels *at model
# resolution* (the whole image is always 200x200 = 40,000 model pixels, so a 4000 px upload
# and its thumbnail give the same count) and the network's mean probability for the region's
# class over its pixels is at least MIN_REGION_CONFIDENCE. Dropped regions become background
# and are not counted. Both were chosen on the NEU-Seg val split (weights/MODEL_CARD.md): the
# confidence rule removes most false "second class" regions, e.g. inclusion specks on patches.
MIN_REGION_AREA = 20
MIN_REGION_CONFIDENCE = 0.8

# Tint colours (RGB) per class id for result pictures.
CLASS_COLORS: dict[int, tuple[int, int, int]] = {
    1: (255, 59, 48),  # inclusion: red
    2: (0, 122, 255),  # patches: blue
    3: (255, 204, 0),  # scratches: yellow
}
TINT_ALPHA = 0.4

ImageInput: TypeAlias = "Image.Image | np.ndarray"

# Pillow modes whose values do not fit 8 bits; converting them with Pillow would clip.
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


# --------------------------------------------------------------------------- preprocessing


def to_gray(image: ImageInput) -> np.ndarray:
    """Return the image as an 8-bit grayscale ``HxW`` array.

    Accepts Pillow images in any mode and numpy arrays shaped ``HxW``, ``HxWx1``, ``HxWx3``
    or ``HxWx4``. Float arrays with values in 0..1 are scaled to 0..255; 16-bit and float
    images are stretched to their own range, since the model only sees relative contrast.
    """
    if isinstance(image, Image.Image):
        if image.mode in _HIGH_DEPTH_MODES:
            return _stretch_to_uint8(np.asarray(image, dtype=np.float64))
        return np.asarray(image.convert("L"), dtype=np.uint8)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"unsupported image array shape {array.shape}")
    if array.dtype != np.uint8:
        array = _to_uint8(array)
    if array.ndim == 2:
        return array
    return np.asarray(Image.fromarray(array[:, :, :3]).convert("L"), dtype=np.uint8)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating) and array.size and float(np.nanmax(array)) <= 1.0:
        return np.clip(np.nan_to_num(array) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if array.size and float(np.nanmax(array)) > 255:
        return _stretch_to_uint8(array.astype(np.float64))
    return np.clip(np.nan_to_num(array.astype(np.float64)) + 0.5, 0, 255).astype(np.uint8)


def _stretch_to_uint8(array: np.ndarray) -> np.ndarray:
    array = np.nan_to_num(array)
    if array.ndim == 3:
        array = array[:, :, :3].mean(axis=2)
    low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
    if high <= low:
        return np.zeros(array.shape[:2], dtype=np.uint8)
    return ((array - low) * (255.0 / (high - low)) + 0.5).astype(np.uint8)


def resize_gray(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an 8-bit gray array to ``size`` = (height, width) with Pillow's bilinear filter."""
    height, width = size
    if gray.shape == (height, width):
        return gray
    resized = Image.fromarray(gray).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def normalize(gray: np.ndarray) -> np.ndarray:
    """Map uint8 gray values (any leading shape) to the float32 0..1 range the model expects.

    Per-image standardisation happens inside the network, so this is the whole contract.
    """
    return gray.astype(np.float32) * np.float32(1.0 / 255.0)


def preprocess(images: Sequence[ImageInput], size: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Turn images into the model input ``(N, 1, H, W)`` float32 batch.

    Returns the batch and each image's original (height, width) so masks can be mapped back.
    """
    grays = [to_gray(image) for image in images]
    batch = np.stack([normalize(resize_gray(gray, size)) for gray in grays])[:, None]
    return batch, [gray.shape for gray in grays]


# --------------------------------------------------------------------------- postprocessing


def class_map(probs: np.ndarray) -> np.ndarray:
    """The most probable class of every pixel of a ``(C, H, W)`` probability map, as ``uint8``: what
    ``probs.argmax(axis=0)`` gives (the first class on a tie), computed one class plane at a time. The
    argmax walks the map across the class axis, 4 floats 160 KB apart for each pixel: 0.36 ms against
    0.08 ms per 200x200 image here, a tenth of the post-processing."""
    best = probs[0]
    classes = np.zeros(best.shape, dtype=np.uint8)
    for class_id in range(1, probs.shape[0]):
        wins = probs[class_id] > best
        classes[wins] = class_id
        best = np.maximum(best, probs[class_id])
    return classes


def clean_mask(
    mask: np.ndarray,
    min_area: int = MIN_REGION_AREA,
    probs: np.ndarray | None = None,
    min_confidence: float = 0.0,
) -> tuple[np.ndarray, dict[int, int]]:
    """Drop unreliable regions and count the remaining ones.

    A region (8-connected, per class, so touching regions of different classes count
    separately) is dropped when it has fewer than ``min_area`` pixels or, given the softmax
    map ``probs`` (C, H, W), when its mean probability for its class is below
    ``min_confidence``. Returns the cleaned copy and ``{class_id: region_count}``.
    """
    cleaned = mask.copy()
    counts: dict[int, int] = {}
    structure = np.ones((3, 3), dtype=bool)
    for class_id in DEFECT_CLASS_IDS:
        labelled, found = ndimage.label(mask == class_id, structure=structure)
        if found == 0:
            continue
        flat = labelled.ravel()
        areas = np.bincount(flat, minlength=found + 1)
        drop = areas < min_area
        if probs is not None and min_confidence > 0:
            mass = np.bincount(flat, weights=probs[class_id].ravel(), minlength=found + 1)
            drop |= mass < min_confidence * areas
        drop[0] = False
        cleaned[drop[labelled]] = 0
        kept = int(found - drop[1:].sum())
        if kept:
            counts[class_id] = kept
    return cleaned, counts


def confidence_dice(probs: np.ndarray, mask: np.ndarray) -> float:
    """Soft-dice agreement between the probability map and the final hard mask.

    For each class ``c`` in the mask's *label set*: ``2 * sum(p_c * m_c) / (sum(p_c) + sum(m_c))``
    where ``p_c`` is the softmax probability map and ``m_c`` the 0/1 mask of that class; the
    result is the mean over the label set. The label set is the defect classes present in the
    mask, or ``{background}`` when no defect is left, so the value is defined for every image.
    It is 1.0 when the network is certain (probabilities are 0/1 and match the mask) and drops
    when pixels are ambiguous, when probability mass leaks outside the predicted regions, or
    when the network's own mass for a class was mostly removed as specks.
    """
    present = [c for c in DEFECT_CLASS_IDS if np.any(mask == c)] or [0]
    scores = []
    for class_id in present:
        hard = mask == class_id
        soft = probs[class_id]
        denominator = float(soft.sum()) + float(hard.sum())
        scores.append(2.0 * float(soft[hard].sum()) / denominator if denominator > 0 else 1.0)
    return float(np.clip(np.mean(scores), 0.0, 1.0))


def upsample_mask(mask: np.ndarray, size: tuple[int, int], num_classes: int) -> np.ndarray:
    """Resize a class map to ``size`` = (height, width) with smooth class boundaries.

    Each class's 0/255 plane is resized bilinearly and the strongest plane wins, which rounds
    the staircase that nearest-neighbour scaling of a 200 px map would leave on big uploads,
    without resurrecting the specks that :func:`clean_mask` removed.
    """
    height, width = size
    if mask.shape == (height, width):
        return mask.astype(np.uint8, copy=True)
    best = np.zeros((height, width), dtype=np.uint8)
    best_score = np.full((height, width), -1, dtype=np.int16)
    for class_id in range(num_classes):
        plane = Image.fromarray(((mask == class_id) * 255).astype(np.uint8))
        score = np.asarray(plane.resize((width, height), Image.Resampling.BILINEAR), np.int16)
        wins = score > best_score
        best[wins] = class_id
        best_score[wins] = score[wins]
    return best


# --------------------------------------------------------------------------- rendering


def render_result(
    image: ImageInput,
    mask: np.ndarray,
    fmt: str = "JPEG",
    quality: int = 90,
) -> bytes:
    """Draw the mask over the original image and return encoded ``fmt`` bytes.

    Defect pixels are tinted with their class colour and every region gets a solid contour in
    the same colour (about 1 px per 200 px of the shorter side). ``mask`` must have the
    image's size, as returned in :class:`SegmentationResult`.
    """
    rgb = _display_rgb(image)
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {rgb.shape[:2]}")
    out = rgb
    thickness = max(1, round(min(mask.shape) / 200))
    for class_id, color in CLASS_COLORS.items():
        region = mask == class_id
        if not region.any():
            continue
        if out is rgb:  # the decoded pixels are read-only; copied only when there is something to draw
            out = rgb.copy()
        # Only the region's pixels go through float32 arithmetic: the rest of the picture is left as
        # decoded, which is what rounding the whole image in float32 would have given.
        tinted = out[region].astype(np.float32) * (1.0 - TINT_ALPHA) + np.asarray(color, np.float32) * TINT_ALPHA
        out[region] = np.clip(tinted + 0.5, 0, 255).astype(np.uint8)
        out[_contour(region, thickness)] = color
    buffer = io.BytesIO()
    result = Image.fromarray(out)
    fmt = fmt.upper()
    if fmt in ("JPEG", "JPG"):
        result.save(buffer, format="JPEG", quality=quality)
    else:
        result.save(buffer, format=fmt)
    return buffer.getvalue()


def _display_rgb(image: ImageInput) -> np.ndarray:
    if isinstance(image, Image.Image) and image.mode not in _HIGH_DEPTH_MODES:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8:
        return array[:, :, :3]
    gray = to_gray(image)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _contour(region: np.ndarray, thickness: int) -> np.ndarray:
    # Inner boundary: region pixels with a non-region 4-neighbour (or on the image border).
    inner = region & ~ndimage.binary_erosion(region, border_value=0)
    if thickness > 1:
        inner = ndimage.binary_dilation(inner, iterations=thickness - 1) & region
    return inner


# --------------------------------------------------------------------------- inference


@dataclass(frozen=True)
class SegmentationResult:
    """Segmentation of one image.

    ``mask`` is a ``uint8`` class map (0 background, 1 inclusion, 2 patches, 3 scratches) of
    the original image's size; ``defect_count`` the number of connected defect regions (small
    or low-confidence regions removed, see ``MIN_REGION_AREA``); ``labels`` the sorted class
    names found; ``dice`` the confidence defined in :func:`confidence_dice`; ``counts`` the
    regions per class name.
    """

    defect_count: int
    labels: list[str]
    dice: float
    mask: np.ndarray = field(repr=False)
    counts: dict[str, int] = field(default_factory=dict)


class DefectSegmenter:
    """Runs the defect segmentation ONNX model.

    Thread-safe for concurrent :meth:`predict_batch` calls (onnxruntime sessions are).
    ``providers`` lists the execution providers the session really uses, e.g.
    ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` or ``["CPUExecutionProvider"]``.
    """

    def __init__(
        self,
        model_path: str | Path = DEFAULT_MODEL_PATH,
        *,
        providers: Sequence[str] | None = None,
        num_threads: int | None = None,
        min_region_area: int = MIN_REGION_AREA,
        min_region_confidence: float = MIN_REGION_CONFIDENCE,
    ) -> None:
        self.model_path = Path(model_path)
        self.min_region_area = min_region_area
        self.min_region_confidence = min_region_confidence
        self._session = open_session(self.model_path, providers, num_threads)
        self.providers: list[str] = list(self._session.get_providers())
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        self.input_size: tuple[int, int] = _static_hw(model_input.shape)
        self.class_names: tuple[str, ...] = _class_names(self._session)

    def predict_probs(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Softmax probabilities ``(N, C, H, W)`` at model size, from one onnxruntime call."""
        batch, original_sizes = preprocess(images, self.input_size)
        (probs,) = self._session.run(None, {self._input_name: batch})
        return probs, original_sizes

    def prepare(self, image: ImageInput) -> np.ndarray:
        """One image's model input ``(1, H, W)`` float32, as :func:`preprocess` makes it: a server
        prepares each upload where it is decoded, so the model's thread only runs the model."""
        return normalize(resize_gray(to_gray(image), self.input_size))[None]

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Softmax probabilities ``(N, C, H, W)`` of prepared inputs, from one onnxruntime call."""
        batch = inputs[0][None] if len(inputs) == 1 else np.stack(inputs)
        (probs,) = self._session.run(None, {self._input_name: batch})
        return probs

    def predict_batch(self, images: Sequence[ImageInput]) -> list[SegmentationResult]:
        """Segment decoded images (Pillow images or arrays, any size, gray or colour)."""
        if not images:
            return []
        probs, original_sizes = self.predict_probs(images)
        pairs = zip(probs, original_sizes, strict=True)
        return [self.result(image_probs, size) for image_probs, size in pairs]

    def result(self, probs: np.ndarray, size: tuple[int, int]) -> SegmentationResult:
        """One image's result from its probabilities ``(C, H, W)`` and its original (height, width)."""
        mask, counts = clean_mask(
            class_map(probs),
            self.min_region_area,
            probs,
            self.min_region_confidence,
        )
        return SegmentationResult(
            defect_count=sum(counts.values()),
            labels=sorted(self.class_names[c] for c in counts),
            dice=round(confidence_dice(probs, mask), 4),
            # clean_mask's answer is already a fresh array: no copy when the sizes agree.
            mask=mask if mask.shape == size else upsample_mask(mask, size, len(self.class_names)),
            counts={self.class_names[c]: n for c, n in sorted(counts.items())},
        )

    def render(self, image: ImageInput, result: SegmentationResult, fmt: str = "JPEG") -> bytes:
        """Result picture for ``image`` (see :func:`render_result`)."""
        return render_result(image, result.mask, fmt=fmt)


def _static_hw(shape: Sequence[object]) -> tuple[int, int]:
    height, width = shape[-2], shape[-1]
    if isinstance(height, int) and isinstance(width, int):
        return height, width
    return DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE


def _class_names(session: object) -> tuple[str, ...]:
    meta = session.get_modelmeta().custom_metadata_map  # type: ignore[attr-defined]
    names = tuple(n.strip() for n in meta.get("class_names", "").split(",") if n.strip())
    return names or CLASS_NAMES
