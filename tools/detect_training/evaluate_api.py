"""Score the deployed model on a dataset split *through the API*, next to the same model in-process.

    python -m tools.detect_training.evaluate_api --data ../shared/datasets/neu-seg --split test
    python -m tools.detect_training.evaluate_api --data ... --gateway http://127.0.0.1:8000 --api-key KEY

Every image of the split is posted (its file bytes as stored, ``--batch-size`` images per request)
to ``POST /api/detect``. Without ``--gateway`` a throw-away platform (auth, detect, stats; a fresh
database and Redis namespace, as the benchmarks use, see ``bench/common.py``) is started and an API
key is created for the run as the platform's admin.

The API answers labels, ``defect_count`` and a ``dice`` confidence per image, not masks, so what it
can be scored on is class presence:

- presence accuracy: share of (image, defect class) pairs where "class in ``labels``" equals "class
  present in the ground-truth mask": the definition of ``presence_accuracy`` in
  :mod:`tools.detect_training.evaluate`;
- per class, presence precision and recall;
- the mean of the ``dice`` confidence.

The same images also go through :class:`DefectSegmenter` in this process; the report gives the rate
at which API and in-process agree on labels, ``defect_count`` and ``dice`` (same model, same
post-processing: it should be 100 %), and the in-process pixel metrics (IoU, Kaggle mean dice) from
:class:`~tools.detect_training.evaluate.MetricAccumulator`, the model card's table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from services.detect.segmenter import (
    CLASS_NAMES,
    DEFAULT_MODEL_PATH,
    DEFECT_CLASS_IDS,
    DefectSegmenter,
)
from tools.detect_training.data import image_path, iter_samples
from tools.detect_training.evaluate import MetricAccumulator

DEFECT_NAMES: tuple[str, ...] = tuple(CLASS_NAMES[c] for c in DEFECT_CLASS_IDS)
API_KEY_HEADER = "X-API-Key"
# services/detect/weights/MODEL_CARD.md, test split, service output: what this script must reproduce for the
# shipped model.
MODEL_CARD_PRESENCE = 0.981


# The API -----------------------------------------------------------------------------------------


async def admin_api_key(gateway_url: str, user: str, password: str, name: str = "detect-evaluation") -> str:
    """Logs in as an admin (003's login) and creates an API key (`POST /user/api_keys`)."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        response = await client.post("/user/login", json={"user_name": user, "password": password})
        if response.status_code != 200 or response.json().get("code") != 0:
            raise RuntimeError(f"admin login failed: {response.status_code} {response.text[:300]}")
        response = await client.post("/user/api_keys", json={"name": name})
        body = response.json()
        if response.status_code != 200 or body.get("code") != 0:
            raise RuntimeError(f"could not create an API key: {response.status_code} {response.text[:300]}")
        return str(body["data"]["key"])


def detect_files(images: Sequence[tuple[str, bytes]]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The multipart form of `POST /api/detect`: one `images` part per (file name, bytes)."""
    types = {".png": "image/png", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}
    return [("images", (name, data, types.get(Path(name).suffix.lower(), "image/jpeg"))) for name, data in images]


async def post_detect(
    client: httpx.AsyncClient, url: str, images: Sequence[tuple[str, bytes]], headers: dict[str, str]
) -> list[dict[str, Any]]:
    response = await client.post(url, files=detect_files(images), headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"POST /api/detect answered {response.status_code}: {response.text[:300]}")
    answers = response.json()
    if [a["name"] for a in answers] != [name for name, _ in images]:
        raise RuntimeError("the API answered for other images than those sent")
    return answers


# Scoring -----------------------------------------------------------------------------------------


@dataclass
class PresenceScore:
    """Class presence from `labels` against the ground truth, per (image, defect class) pair."""

    true_positive: np.ndarray  # per defect class
    false_positive: np.ndarray
    false_negative: np.ndarray
    hits: int = 0
    pairs: int = 0

    @classmethod
    def empty(cls) -> PresenceScore:
        return cls(*(np.zeros(len(DEFECT_NAMES), dtype=np.int64) for _ in range(3)))

    def update(self, labels: Sequence[str], truth: np.ndarray) -> None:
        for i, (name, class_id) in enumerate(zip(DEFECT_NAMES, DEFECT_CLASS_IDS, strict=True)):
            predicted, present = name in labels, bool(np.any(truth == class_id))
            self.true_positive[i] += predicted and present
            self.false_positive[i] += predicted and not present
            self.false_negative[i] += present and not predicted
            self.hits += predicted == present
            self.pairs += 1

    @property
    def accuracy(self) -> float:
        return self.hits / self.pairs

    def precision(self, i: int) -> float:
        predicted = self.true_positive[i] + self.false_positive[i]
        return float(self.true_positive[i] / predicted) if predicted else float("nan")

    def recall(self, i: int) -> float:
        present = self.true_positive[i] + self.false_negative[i]
        return float(self.true_positive[i] / present) if present else float("nan")


@dataclass
class Report:
    split: str
    images: int
    requests: int
    api_seconds: float
    api_presence: PresenceScore
    api_dice: list[float]
    local_presence: PresenceScore
    local_dice: list[float]
    local_metrics: dict[str, object]
    local_seconds: float
    agree_labels: int
    agree_count: int
    agree_dice: int
    disagreements: list[str]
    providers: list[str]

    def as_json(self) -> dict[str, object]:
        def presence(score: PresenceScore) -> dict[str, object]:
            return {
                "accuracy": round(score.accuracy, 4),
                "precision": {n: round(score.precision(i), 4) for i, n in enumerate(DEFECT_NAMES)},
                "recall": {n: round(score.recall(i), 4) for i, n in enumerate(DEFECT_NAMES)},
            }

        return {
            "split": self.split,
            "images": self.images,
            "requests": self.requests,
            "api": {
                **presence(self.api_presence),
                "mean_dice_confidence": round(float(np.mean(self.api_dice)), 4),
                "seconds": round(self.api_seconds, 2),
            },
            "in_process": {
                **presence(self.local_presence),
                "mean_dice_confidence": round(float(np.mean(self.local_dice)), 4),
                "metrics": self.local_metrics,
                "providers": self.providers,
                "seconds": round(self.local_seconds, 2),
            },
            "agreement": {
                "labels": self.agree_labels / self.images,
                "defect_count": self.agree_count / self.images,
                "dice": self.agree_dice / self.images,
            },
            "disagreements": self.disagreements,
        }

    def table(self) -> str:
        from bench.common import format_table

        rows: list[list[object]] = [
            [
                "presence accuracy (image x class pairs)",
                f"{self.api_presence.accuracy:.4f}",
                f"{self.local_presence.accuracy:.4f}",
            ],
            ["  the same from the masks (evaluate.py)", "-", f"{self.local_metrics['presence_accuracy']:.4f}"],
        ]
        for i, name in enumerate(DEFECT_NAMES):
            rows.append(
                [
                    f"  {name}: presence precision / recall",
                    f"{self.api_presence.precision(i):.3f} / {self.api_presence.recall(i):.3f}",
                    f"{self.local_presence.precision(i):.3f} / {self.local_presence.recall(i):.3f}",
                ]
            )
        rows.append(["mean `dice` confidence", f"{np.mean(self.api_dice):.4f}", f"{np.mean(self.local_dice):.4f}"])
        m = self.local_metrics
        iou, dice = m["iou"], m["dice"]
        assert isinstance(iou, dict) and isinstance(dice, dict)
        rows += [
            ["IoU inclusion / patches / scratches", "-", " / ".join(f"{iou[n]:.3f}" for n in DEFECT_NAMES)],
            ["mean IoU", "-", f"{m['mean_iou']:.4f}"],
            ["Kaggle mean dice", "-", f"{m['mean_dice']:.4f}"],
            ["pixel accuracy", "-", f"{m['pixel_accuracy']:.4f}"],
            ["wall time", f"{self.api_seconds:.1f}s ({self.requests} requests)", f"{self.local_seconds:.1f}s"],
        ]
        agreement = ", ".join(
            f"{what} {n}/{self.images} ({100 * n / self.images:.1f} %)"
            for what, n in (
                ("labels", self.agree_labels),
                ("defect_count", self.agree_count),
                ("dice", self.agree_dice),
            )
        )
        lines = [
            format_table(["", "API", "in-process"], rows),
            "",
            f"API vs in-process agreement over {self.images} images: {agreement}",
        ]
        lines += [f"  differs: {d}" for d in self.disagreements[:10]]
        if len(self.disagreements) > 10:
            lines.append(f"  ... and {len(self.disagreements) - 10} more")
        return "\n".join(lines)


async def evaluate_api(
    gateway_url: str,
    api_key: str,
    data_root: Path,
    split: str,
    *,
    batch_size: int = 8,
    limit: int | None = None,
    model_path: Path = DEFAULT_MODEL_PATH,
) -> Report:
    samples = list(iter_samples(data_root, split, limit))
    if not samples:
        raise ValueError(f"no images in split {split!r} of {data_root}")
    files = [image_path(data_root, split, s.image_id) for s in samples]
    uploads = [(path.name, path.read_bytes()) for path in files]

    # Through the API.
    answers: list[dict[str, Any]] = []
    headers = {API_KEY_HEADER: api_key}
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as client:
        for first in range(0, len(uploads), batch_size):
            answers += await post_detect(
                client, f"{gateway_url}/api/detect", uploads[first : first + batch_size], headers
            )
    api_seconds = time.perf_counter() - started

    # In-process, on the same images (as evaluate.py reads them), with the same batch size.
    segmenter = DefectSegmenter(model_path)
    accumulator = MetricAccumulator(len(segmenter.class_names))
    local = []
    started = time.perf_counter()
    for first in range(0, len(samples), batch_size):
        batch = samples[first : first + batch_size]
        results = await asyncio.to_thread(segmenter.predict_batch, [s.image for s in batch])
        for sample, result in zip(batch, results, strict=True):
            accumulator.update(result.mask, sample.mask)
        local += results
    local_seconds = time.perf_counter() - started

    api_presence, local_presence = PresenceScore.empty(), PresenceScore.empty()
    agree_labels = agree_count = agree_dice = 0
    disagreements = []
    for sample, answer, result in zip(samples, answers, local, strict=True):
        api_presence.update(answer["labels"], sample.mask)
        local_presence.update(result.labels, sample.mask)
        same = (
            answer["labels"] == result.labels,
            answer["defect_count"] == result.defect_count,
            abs(answer["dice"] - result.dice) < 1e-4,
        )
        agree_labels += same[0]
        agree_count += same[1]
        agree_dice += same[2]
        if not all(same):
            disagreements.append(
                f"{sample.image_id}: API {answer['labels']} {answer['defect_count']} "
                f"{answer['dice']}, in-process {result.labels} {result.defect_count} {result.dice}"
            )
    return Report(
        split,
        len(samples),
        -(-len(samples) // batch_size),
        api_seconds,
        api_presence,
        [float(a["dice"]) for a in answers],
        local_presence,
        [r.dice for r in local],
        accumulator.result(),
        local_seconds,
        agree_labels,
        agree_count,
        agree_dice,
        disagreements,
        segmenter.providers,
    )


# CLI ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="NEU-Seg style dataset root")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--gateway", default=None, help="a running deployment's gateway URL (default: start a throw-away platform)"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("LABELHIVE_API_KEY"),
        help="X-API-Key for --gateway (default: $LABELHIVE_API_KEY)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="images per request (and in-process call)")
    parser.add_argument("--limit", type=int, default=None, help="only the first K images")
    parser.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL_PATH,
        help="the model the in-process reference runs (the service runs its own)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser


async def run(args: argparse.Namespace) -> Report:
    async with AsyncExitStack() as stack:
        gateway_url, api_key = args.gateway, args.api_key
        if gateway_url is None:
            from bench.common import running_platform

            bench = await stack.enter_async_context(running_platform(["auth", "detect", "stats"], name="evaluate"))
            gateway_url = bench.gateway_url
            api_key = await admin_api_key(gateway_url, bench.admin_user, bench.admin_password)
        elif not api_key:
            raise SystemExit("--gateway needs --api-key (or LABELHIVE_API_KEY)")
        gateway_url = gateway_url.rstrip("/")
        print(
            f"scoring split {args.split!r} of {args.data} through {gateway_url}/api/detect, "
            f"{args.batch_size} images per request",
            flush=True,
        )
        return await evaluate_api(
            gateway_url,
            api_key,
            args.data,
            args.split,
            batch_size=args.batch_size,
            limit=args.limit,
            model_path=args.model,
        )


def main(argv: Sequence[str] | None = None) -> Report:
    args = build_parser().parse_args(argv)
    report = asyncio.run(run(args))
    print()
    print(f"{report.split} split, {report.images} images; in-process providers {report.providers}")
    print(report.table())
    shipped = Path(args.model).resolve() == DEFAULT_MODEL_PATH.resolve()
    if args.split == "test" and "neu-seg" in str(args.data).lower() and shipped and not args.limit:
        verdict = "matches" if round(report.api_presence.accuracy, 3) == MODEL_CARD_PRESENCE else "DIFFERS FROM"
        print(
            f"API presence accuracy {report.api_presence.accuracy:.3f} {verdict} the model card's "
            f"{MODEL_CARD_PRESENCE} (NEU-Seg test split)"
        )
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
