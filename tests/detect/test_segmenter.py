"""Inference module tests against the committed ONNX model, on generated images only."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")

from services.detect import segmenter as seg  # noqa: E402
from services.detect.segmenter import (  # noqa: E402
    DEFAULT_MODEL_PATH,
    DefectSegmenter,
    class_map,
    clean_mask,
    confidence_dice,
)
from shared.images import ImageRefused, TooManyPixels, decode_image  # noqa: E402
from tests.fixtures.steel import patch_image, png_bytes, scratch_image, steel_background  # noqa: E402

DEFECT_NAMES = {"inclusion", "patches", "scratches"}


@pytest.fixture(scope="module")
def segmenter() -> DefectSegmenter:
    return DefectSegmenter()


def test_committed_model_is_small_with_dynamic_batch(segmenter: DefectSegmenter) -> None:
    assert DEFAULT_MODEL_PATH.stat().st_size < 5 * 1024 * 1024
    assert segmenter.input_size == (200, 200)
    assert segmenter.class_names == seg.CLASS_NAMES
    assert "CPUExecutionProvider" in segmenter.providers
    batch_axis = segmenter._session.get_inputs()[0].shape[0]
    assert not isinstance(batch_axis, int)


def test_bright_scratch_is_detected(segmenter: DefectSegmenter) -> None:
    image = scratch_image()
    (result,) = segmenter.predict_batch([Image.fromarray(image)])

    assert result.defect_count >= 1
    assert result.labels == ["scratches"]
    assert result.counts == {"scratches": result.defect_count}
    assert 0.5 < result.dice <= 1.0
    # The detection lies on the scratch, not somewhere random.
    line = image > 180
    assert (result.mask[line] == 3).mean() > 0.8
    assert (result.mask[~line] > 0).mean() < 0.02


def test_dark_patch_is_detected(segmenter: DefectSegmenter) -> None:
    (result,) = segmenter.predict_batch([patch_image()])
    assert result.defect_count >= 1
    assert "patches" in result.labels
    assert set(result.labels) <= DEFECT_NAMES
    assert result.labels == sorted(result.labels)
    assert sum(result.counts.values()) == result.defect_count


class CountingSession:
    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0

    def run(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        return self.inner.run(*args, **kwargs)  # type: ignore[attr-defined]


def test_batch_of_mixed_sizes_one_session_call(segmenter: DefectSegmenter, monkeypatch: pytest.MonkeyPatch) -> None:
    images = [
        Image.fromarray(scratch_image(200, 200)),  # gray PIL, model size
        Image.fromarray(patch_image(240, 320)).convert("RGB"),  # RGB PIL, larger
        np.stack([scratch_image(90, 150)] * 3, axis=2),  # RGB array, smaller
    ]
    counting = CountingSession(segmenter._session)
    monkeypatch.setattr(segmenter, "_session", counting)
    results = segmenter.predict_batch(images)

    assert counting.calls == 1
    assert len(results) == 3
    assert [r.mask.shape for r in results] == [(200, 200), (240, 320), (90, 150)]
    for result in results:
        assert result.mask.dtype == np.uint8
        assert set(np.unique(result.mask)) <= {0, 1, 2, 3}
        assert 0.0 <= result.dice <= 1.0
        assert result.defect_count >= 1


def test_defect_free_image_is_defined(segmenter: DefectSegmenter) -> None:
    (result,) = segmenter.predict_batch([np.full((64, 64), 128, np.uint8)])
    assert 0.0 <= result.dice <= 1.0
    assert result.defect_count == sum(result.counts.values())
    assert segmenter.predict_batch([]) == []


def test_render_result_decodes(segmenter: DefectSegmenter) -> None:
    image = Image.fromarray(scratch_image(240, 320))
    (result,) = segmenter.predict_batch([image])
    for fmt in ("JPEG", "PNG"):
        data = segmenter.render(image, result, fmt=fmt)
        with Image.open(io.BytesIO(data)) as drawn:
            assert drawn.format == fmt
            assert drawn.size == image.size
            drawn.load()
    with pytest.raises(ValueError):
        seg.render_result(image, np.zeros((10, 10), np.uint8))


def test_render_tints_defects_only() -> None:
    image = np.full((50, 50), 100, np.uint8)
    mask = np.zeros((50, 50), np.uint8)
    mask[10:30, 10:30] = 2
    with Image.open(io.BytesIO(seg.render_result(image, mask, fmt="PNG"))) as drawn:
        rgb = np.asarray(drawn.convert("RGB"))
    assert (rgb[0, 0] == 100).all()
    assert tuple(rgb[10, 20]) == seg.CLASS_COLORS[2]  # contour
    assert rgb[20, 20, 2] > rgb[20, 20, 0]  # blue tint inside


def test_decode_image_accepts_valid_png() -> None:
    image = decode_image(png_bytes(Image.fromarray(scratch_image(30, 40))))
    assert image.size == (40, 30)


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, this is not an image", png_bytes(Image.new("L", (64, 64), 90))[:60]],
    ids=["empty", "text", "truncated-png"],
)
def test_decode_image_rejects_bad_data(data: bytes) -> None:
    with pytest.raises(ImageRefused):
        decode_image(data)
    with pytest.raises(ValueError):  # the web layer may catch the builtin
        decode_image(data)


def test_decode_image_rejects_truncated_jpeg_body() -> None:
    buffer = io.BytesIO()
    Image.fromarray(steel_background(128, 128).astype(np.uint8)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    with pytest.raises(ImageRefused):
        decode_image(data[: len(data) // 2])


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decode_image_enforces_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    data = png_bytes(Image.new("L", (40, 40)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(TooManyPixels):
        decode_image(data)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 700)  # over 2x: Pillow's own error
    with pytest.raises(TooManyPixels):
        decode_image(data)


def test_class_map_is_the_argmax_with_ties_to_the_first_class() -> None:
    rng = np.random.default_rng(7)
    # Probabilities rounded to tenths: many pixels have two or more classes at the same maximum.
    probs = np.round(rng.dirichlet(np.ones(4), size=(60, 50)).transpose(2, 0, 1), 1).astype(np.float32)
    ties = (probs == probs.max(axis=0)).sum(axis=0) > 1
    assert ties.sum() > 100
    classes = class_map(probs)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, probs.argmax(axis=0))


def test_clean_mask_drops_specks_and_counts_regions() -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[2:8, 2:8] = 1  # 36 px region
    mask[20:30, 20:22] = 3  # 20 px region
    mask[35, 35] = 1  # speck
    cleaned, counts = clean_mask(mask, min_area=20)
    assert counts == {1: 1, 3: 1}
    assert cleaned[35, 35] == 0 and cleaned[3, 3] == 1
    assert mask[35, 35] == 1  # input untouched


def test_confidence_dice_confident_vs_uncertain() -> None:
    mask = np.zeros((20, 20), np.uint8)
    mask[5:10, 5:10] = 3
    confident = np.zeros((4, 20, 20), np.float32)
    confident[0] = mask == 0
    confident[3] = mask == 3
    assert confidence_dice(confident, mask) == pytest.approx(1.0)

    uncertain = confident * 0.55 + 0.45 / 4
    assert confidence_dice(uncertain, mask) < 0.8

    empty = np.zeros_like(mask)
    background_only = np.zeros((4, 20, 20), np.float32)
    background_only[0] = 1.0
    assert confidence_dice(background_only, empty) == pytest.approx(1.0)


def test_cpu_provider_when_forced() -> None:
    forced = DefectSegmenter(providers=["CPUExecutionProvider"])
    assert forced.providers == ["CPUExecutionProvider"]


def test_clean_mask_drops_low_confidence_regions() -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[2:12, 2:12] = 1
    mask[20:30, 20:30] = 2
    probs = np.zeros((4, 40, 40), np.float32)
    probs[0] = 1.0
    probs[:, mask == 1] = np.array([[0.05], [0.95], [0.0], [0.0]])  # confident
    probs[:, mask == 2] = np.array([[0.4], [0.0], [0.6], [0.0]])  # unsure
    cleaned, counts = clean_mask(mask, 20, probs, min_confidence=0.8)
    assert counts == {1: 1}
    assert (cleaned[mask == 2] == 0).all()


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16)),  # I;16
        np.linspace(0, 1, 48 * 64, dtype=np.float32).reshape(48, 64),  # float 0..1
        np.zeros((48, 64, 4), np.uint8),  # RGBA array
        Image.new("P", (64, 48)),
    ],
    ids=["uint16-pil", "float-array", "rgba-array", "palette"],
)
def test_unusual_inputs_are_accepted(segmenter: DefectSegmenter, image: object) -> None:
    gray = seg.to_gray(image)  # type: ignore[arg-type]
    assert gray.dtype == np.uint8 and gray.shape == (48, 64)
    (result,) = segmenter.predict_batch([image])  # type: ignore[list-item]
    assert result.mask.shape == (48, 64)
    assert seg.render_result(image, result.mask)  # type: ignore[arg-type]
