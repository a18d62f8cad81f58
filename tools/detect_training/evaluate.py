"""Score an exported ONNX model on a dataset split, through the service's inference path.

    python -m tools.detect_training.evaluate --data ../shared/datasets/neu-seg \
        --model services/detect/weights/defect_seg.onnx --split test

Metrics (defect classes only, background is never scored):
- ``iou``: per class, intersection over union of all the split's pixels pooled together
  (1.0 for a class absent from both prediction and truth); ``mean_iou`` averages the three.
- ``mean_dice``: Kaggle-style, Dice per (image, class) pair with empty-vs-empty counted as 1,
  averaged over all pairs; ``dice`` gives the per-class averages.
- ``presence_accuracy``: share of (image, class) pairs where "class present in prediction"
  equals "class present in ground truth".

The same :class:`MetricAccumulator` scores validation during training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from services.detect.segmenter import (
    CLASS_NAMES,
    DEFAULT_MODEL_PATH,
    DEFECT_CLASS_IDS,
    MIN_REGION_AREA,
    MIN_REGION_CONFIDENCE,
    DefectSegmenter,
)
from tools.detect_training.data import iter_samples


class MetricAccumulator:
    """Accumulates segmentation metrics over predicted/true class maps."""

    def __init__(self, num_classes: int = len(CLASS_NAMES)) -> None:
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self._dice: dict[int, list[np.ndarray]] = {c: [] for c in DEFECT_CLASS_IDS}
        self._presence_hits = 0
        self._presence_total = 0
        self.images = 0

    def update(self, predicted: np.ndarray, target: np.ndarray) -> None:
        """Add one ``HxW`` map pair or a batch ``(N, H, W)`` of them."""
        if predicted.shape != target.shape:
            raise ValueError(f"shape mismatch: {predicted.shape} vs {target.shape}")
        if predicted.ndim == 2:
            predicted, target = predicted[None], target[None]
        pred = predicted.reshape(len(predicted), -1).astype(np.int64)
        true = target.reshape(len(target), -1).astype(np.int64)
        self.confusion += np.bincount((true * self.num_classes + pred).ravel(), minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )
        for class_id in DEFECT_CLASS_IDS:
            p, t = pred == class_id, true == class_id
            overlap = (p & t).sum(axis=1)
            total = p.sum(axis=1) + t.sum(axis=1)
            self._dice[class_id].append(np.where(total == 0, 1.0, 2.0 * overlap / np.maximum(total, 1)))
            self._presence_hits += int((p.any(axis=1) == t.any(axis=1)).sum())
            self._presence_total += len(pred)
        self.images += len(pred)

    def result(self) -> dict[str, object]:
        if not self._presence_total:
            raise ValueError("no predictions were added")
        named = [(CLASS_NAMES[c], c) for c in DEFECT_CLASS_IDS]
        diag = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(axis=0) + self.confusion.sum(axis=1) - diag
        iou = np.where(union > 0, diag / np.maximum(union, 1), 1.0)
        dice = {c: np.concatenate(self._dice[c]) for c in DEFECT_CLASS_IDS}
        return {
            "images": self.images,
            "iou": {n: round(float(iou[c]), 4) for n, c in named},
            "mean_iou": round(float(np.mean([iou[c] for c in DEFECT_CLASS_IDS])), 4),
            "dice": {n: round(float(dice[c].mean()), 4) for n, c in named},
            "mean_dice": round(float(np.concatenate(list(dice.values())).mean()), 4),
            "presence_accuracy": round(self._presence_hits / self._presence_total, 4),
            "pixel_accuracy": round(float(diag.sum() / self.confusion.sum()), 4),
        }


def selection_score(metrics: dict[str, object]) -> float:
    """Single number for model selection: the two headline metrics weighted equally."""
    return (float(metrics["mean_iou"]) + float(metrics["mean_dice"])) / 2.0  # type: ignore[arg-type]


def evaluate_onnx(
    model_path: Path,
    data_root: Path,
    split: str,
    *,
    batch_size: int = 8,
    min_area: int = MIN_REGION_AREA,
    min_confidence: float = MIN_REGION_CONFIDENCE,
    limit: int | None = None,
    providers: Sequence[str] | None = None,
) -> dict[str, object]:
    """Run :class:`DefectSegmenter` over a split and score its full-size masks."""
    segmenter = DefectSegmenter(
        model_path, providers=providers, min_region_area=min_area, min_region_confidence=min_confidence
    )
    accumulator = MetricAccumulator(len(segmenter.class_names))
    seconds = 0.0
    batch: list = []

    def flush() -> None:
        nonlocal seconds
        started = time.perf_counter()
        results = segmenter.predict_batch([sample.image for sample in batch])
        seconds += time.perf_counter() - started
        for sample, result in zip(batch, results, strict=True):
            accumulator.update(result.mask, sample.mask)
        batch.clear()

    for sample in iter_samples(data_root, split, limit):
        batch.append(sample)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    metrics = accumulator.result()
    metrics.update(
        split=split,
        model=str(model_path),
        min_region_area=min_area,
        min_region_confidence=min_confidence,
        providers=segmenter.providers,
        batch_size=batch_size,
        ms_per_image=round(1000.0 * seconds / accumulator.images, 2),
    )
    return metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="NEU-Seg style dataset root")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--min-area", type=int, default=MIN_REGION_AREA, help="drop regions below this many model pixels"
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=MIN_REGION_CONFIDENCE,
        help="drop regions whose mean class probability is lower "
        "(with --min-area 0 and this 0 the raw argmax is scored)",
    )
    parser.add_argument("--limit", type=int, default=None, help="score only the first K images")
    parser.add_argument("--cpu", action="store_true", help="force the CPU provider")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics here")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    args = build_parser().parse_args(argv)
    metrics = evaluate_onnx(
        args.model,
        args.data,
        args.split,
        batch_size=args.batch_size,
        min_area=args.min_area,
        min_confidence=args.min_confidence,
        limit=args.limit,
        providers=["CPUExecutionProvider"] if args.cpu else None,
    )
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
