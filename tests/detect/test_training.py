"""Training CLI smoke test on a tiny synthetic NEU-Seg style dataset (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from services.detect.segmenter import DefectSegmenter  # noqa: E402
from tools.detect_training import evaluate, train  # noqa: E402
from tools.detect_training.evaluate import MetricAccumulator  # noqa: E402
from tools.detect_training.model import (  # noqa: E402
    DefectUNet,
    SoftmaxWrapper,
    fold_batchnorm,
    load_exported_weights,
)

SIZE = 64
SPLITS = {"train": 12, "val": 4, "test": 4}


def _synthetic_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gray steel-like noise with a dark blob (1), a bright patch (2) or a dark line (3)."""
    image = rng.normal(120, 8, (SIZE, SIZE))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    kind = int(rng.integers(1, 4))
    if kind == 1:
        cy, cx = rng.integers(10, SIZE - 10, 2)
        region = (yy - cy) ** 2 + (xx - cx) ** 2 < 25
        image[region] -= 50
    elif kind == 2:
        top, left = rng.integers(0, SIZE // 2, 2)
        region = (yy >= top) & (yy < top + 24) & (xx >= left) & (xx < left + 24)
        image[region] += 50
    else:
        column = int(rng.integers(5, SIZE - 5))
        region = np.abs(xx - column) <= 1
        image[region] -= 45
    mask[region] = kind
    return np.clip(image, 0, 255).astype(np.uint8), mask


def make_dataset(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    number = 0
    for split, count in SPLITS.items():
        (root / "img_dir" / split).mkdir(parents=True)
        (root / "ann_dir" / split).mkdir(parents=True)
        ids = []
        for _ in range(count):
            number += 1
            image_id = f"{number:06d}"
            image, mask = _synthetic_pair(rng)
            # NEU-Seg stores gray photos as RGB JPEGs; mimic that.
            Image.fromarray(image).convert("RGB").save(root / "img_dir" / split / f"{image_id}.jpg")
            Image.fromarray(mask, "L").save(root / "ann_dir" / split / f"{image_id}.png")
            ids.append(image_id)
        (sets / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("neu-synthetic"))


def _train_args(data: Path, out: Path) -> list[str]:
    return [
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--seed",
        "3",
        "--max-minutes",
        "2",
        "--image-size",
        str(SIZE),
        "--crop",
        "48",
        "--batch-size",
        "4",
        "--widths",
        "8,16,32,48",
        "--validate-from",
        "0",
        "--finetune-epochs",
        "1",
        "--finetune-minutes",
        "2",
    ]


def _assert_metrics(metrics: dict) -> None:
    for key in ("mean_iou", "mean_dice", "presence_accuracy", "pixel_accuracy"):
        assert isinstance(metrics[key], float)
        assert 0.0 <= metrics[key] <= 1.0, key
    assert set(metrics["iou"]) == {"inclusion", "patches", "scratches"}
    assert all(0.0 <= value <= 1.0 for value in metrics["iou"].values())


def test_train_export_evaluate(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "weights" / "model.onnx"
    summary = train.main([*_train_args(dataset, out), "--report", str(tmp_path / "r.json")])

    assert out.is_file() and out.stat().st_size > 0
    assert (tmp_path / "r.json").is_file()
    assert not out.with_name(out.name + ".partial").exists()
    assert summary["export_max_abs_diff"] <= train.EXPORT_TOLERANCE
    assert summary["epochs_run"] >= 1 and summary["parameters"] > 0
    assert [stage["stage"]["name"] for stage in summary["stages"]] == ["scratch", "finetune"]
    _assert_metrics(summary["val"])
    _assert_metrics(summary["test"])
    assert summary["test"]["images"] == SPLITS["test"]

    metrics = evaluate.main(
        ["--data", str(dataset), "--model", str(out), "--split", "val", "--cpu", "--json", str(tmp_path / "val.json")]
    )
    _assert_metrics(metrics)
    assert metrics["images"] == SPLITS["val"]
    assert (tmp_path / "val.json").is_file()

    # The exported model carries its input size and works with the service module.
    segmenter = DefectSegmenter(out, providers=["CPUExecutionProvider"])
    assert segmenter.input_size == (SIZE, SIZE)
    results = segmenter.predict_batch([np.full((30, 50), 128, np.uint8)] * 5)
    assert [r.mask.shape for r in results] == [(30, 50)] * 5


def test_export_mismatch_fails_loudly(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "model.onnx"
    monkeypatch.setattr(train, "max_export_difference", lambda *args: 0.5)
    with pytest.raises(train.ExportMismatchError):
        train.main([*_train_args(dataset, out), "--epochs", "1", "--test-split", "none"])
    assert not out.exists()
    assert not out.with_name(out.name + ".partial").exists()


def test_metric_accumulator_definitions() -> None:
    target = np.zeros((2, 4, 4), np.uint8)
    target[0, :2, :2] = 1  # image 0: inclusion only
    predicted = target.copy()
    predicted[0, 0, 0] = 0  # 3 of 4 inclusion pixels found
    predicted[1, 3, 3] = 3  # false scratch in image 1

    accumulator = MetricAccumulator()
    accumulator.update(predicted, target)
    metrics = accumulator.result()

    assert metrics["iou"] == {"inclusion": 0.75, "patches": 1.0, "scratches": 0.0}
    # (image, class) dice: inclusion 6/7 and 1; patches 1 and 1; scratches 1 and 0.
    assert metrics["mean_dice"] == pytest.approx(round((6 / 7 + 1 + 1 + 1 + 1 + 0) / 6, 4))
    assert metrics["presence_accuracy"] == pytest.approx(round(5 / 6, 4))


def test_lovasz_softmax_is_the_jaccard_loss_on_hard_predictions() -> None:
    truth = torch.zeros(1, 2, 4, 4)
    truth[0, 0, :2, :2] = 1  # class 0: 4 pixels
    truth[0, 1, 3, :] = 1  # class 1: 4 pixels
    probs = truth.clone()
    probs[0, 0, 0, 0] = 0  # class 0: 3 of 4 found ...
    probs[0, 0, 2, 2] = 1  # ... plus one false pixel: IoU 3/5
    # class 1 exact: IoU 1
    assert float(train.lovasz_softmax(probs, truth)) == pytest.approx(((1 - 3 / 5) + 0.0) / 2)
    # A class absent from the batch is skipped, not scored as a perfect (or failed) IoU.
    assert float(train.lovasz_softmax(probs[:, :1], truth[:, :1])) == pytest.approx(1 - 3 / 5)
    assert float(train.lovasz_softmax(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))) == 0.0


def test_segmentation_loss_prefers_the_right_answer_and_has_gradients() -> None:
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[0, 2:5, 2:5] = 1
    target[1, :, 3] = 3
    weights = torch.tensor(train.CLASS_WEIGHTS)
    right = (torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float() * 8.0).requires_grad_()
    wrong = torch.zeros(2, 4, 8, 8, requires_grad=True)
    right_loss = train.segmentation_loss(right, target, weights)
    wrong_loss = train.segmentation_loss(wrong, target, weights)
    assert float(right_loss.detach()) < 0.05 < float(wrong_loss.detach())
    wrong_loss.backward()
    assert wrong.grad is not None and float(wrong.grad.abs().sum()) > 0


def test_folded_network_computes_the_same_and_keeps_its_statistics() -> None:
    torch.manual_seed(0)
    model = DefectUNet(widths=(8, 16, 32, 48))
    model.train()
    for _ in range(3):  # give BatchNorm statistics that are not the identity
        model(torch.rand(4, 1, 40, 40) * 3)
    model.eval()
    inputs = torch.rand(2, 1, 40, 40)
    with torch.no_grad():
        expected = model(inputs)
        folded = fold_batchnorm(model)
        assert not any(type(m) is torch.nn.BatchNorm2d for m in folded.modules())
        assert torch.allclose(folded(inputs), expected, atol=1e-4)
        folded.train()  # frozen: training mode changes nothing
        assert torch.allclose(folded(inputs), expected, atol=1e-4)


def test_finetune_from_an_exported_model(dataset: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.onnx"
    train.main([*_train_args(dataset, first), "--finetune-minutes", "0", "--test-split", "none"])
    # The exported weights load back into the network exactly.
    model = load_exported_weights(DefectUNet(widths=(8, 16, 32, 48)), first).eval()
    inputs = np.random.default_rng(0).random((2, 1, SIZE, SIZE), dtype=np.float32)
    assert train.max_export_difference(SoftmaxWrapper(model), first, inputs) <= train.EXPORT_TOLERANCE

    second = tmp_path / "second.onnx"
    summary = train.main([*_train_args(dataset, second), "--init-from", str(first), "--test-split", "none"])
    assert [stage["stage"]["name"] for stage in summary["stages"]] == ["finetune"]
    assert second.is_file()
    with pytest.raises(ValueError, match="convolution"):  # other widths: refused, not half-loaded
        load_exported_weights(DefectUNet(widths=(8, 16, 32, 64)), first)
