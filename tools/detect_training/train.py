"""Train the defect segmentation model and export it to ONNX.

    python -m tools.detect_training.train --data ../shared/datasets/neu-seg \
        --out services/detect/weights/defect_seg.onnx --seed 0

Trains on the ``train`` split in two stages: from scratch (``--epochs``, ``--max-minutes``),
then a fine-tuning stage with BatchNorm folded and frozen, Lovasz-softmax added to the loss,
whole images late and a moving average of the weights (``--finetune-*``; ``--init-from``
starts it from an exported model instead of the first stage). Each stage keeps the weights
that score best on ``val`` (see :func:`~tools.detect_training.evaluate.selection_score`).
The result is exported with a dynamic batch axis, onnxruntime is checked against PyTorch on
a few inputs (the file is not written if they disagree), and the exported file is scored on
``test`` through the service's inference path. A JSON summary goes to stdout (and ``--report``).

In each stage the learning rate follows a cosine over *progress*, the larger of the step
fraction and the elapsed fraction of the stage's time budget: a slow or busy machine finishes a shortened but
complete schedule instead of stopping at a high learning rate. Runs that stay within the
time limit are reproducible for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from services.detect.segmenter import (
    CLASS_NAMES,
    MIN_REGION_AREA,
    MIN_REGION_CONFIDENCE,
    clean_mask,
    normalize,
)
from tools.detect_training.data import SplitArrays, load_split
from tools.detect_training.evaluate import MetricAccumulator, evaluate_onnx, selection_score
from tools.detect_training.model import (
    DEFAULT_WIDTHS,
    DefectUNet,
    SoftmaxWrapper,
    count_parameters,
    fold_batchnorm,
    load_exported_weights,
)

logger = logging.getLogger("detect.train")

# Cross-entropy weights ~ (pixel share)^-1/4 on NEU-Seg (88 / 2.2 / 7.2 / 2.6 %): enough to
# stop the rare classes being ignored without the false alarms inverse-frequency weights cause.
CLASS_WEIGHTS = (1.0, 2.5, 1.9, 2.4)
WARMUP_FRACTION = 0.03
FINAL_LR_FACTOR = 0.01
EXPORT_TOLERANCE = 1e-4
ONNX_OPSET = 17


# Training from scratch: cross-entropy + Dice on random crops, the last weights.
SCRATCH_RECIPE = {"lovasz_weight": 0.0, "full_size_from": 1.0, "ema_decay": 0.0, "fold_batchnorm": False}
# Fine-tuning (BatchNorm folded and frozen): Lovasz-softmax joins the loss for the pooled IoU,
# whole images for the second half, and an average of the weights (horizon ~1000 steps).
FINETUNE_RECIPE = {"lovasz_weight": 1.0, "full_size_from": 0.5, "ema_decay": 0.999, "fold_batchnorm": True}


class ExportMismatchError(RuntimeError):
    """onnxruntime and PyTorch disagree on the exported model."""


@dataclass(frozen=True)
class Stage:
    """One run of the training loop: its length, learning rate, loss and inputs."""

    name: str
    epochs: int
    max_minutes: float
    lr: float
    lovasz_weight: float  # 0: cross-entropy + Dice only
    full_size_from: float  # progress from which whole images replace the crops (1: never)
    ema_decay: float  # weight averaging per step; 0 keeps the last weights
    fold_batchnorm: bool  # start by folding BatchNorm into the convolutions and freezing it


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    out: Path
    seed: int
    limit_images: int | None
    batch_size: int
    weight_decay: float
    image_size: int
    crop: int
    widths: tuple[int, ...]
    threads: int
    validate_from: float
    test_split: str | None
    init_from: Path | None
    stages: tuple[Stage, ...]


# --------------------------------------------------------------------------- batches


def augment(image: np.ndarray, mask: np.ndarray, crop: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random crop plus one of the 8 flips/rotations: steel texture has no preferred
    orientation, so all eight are equally plausible photos."""
    height, width = image.shape
    if crop < height or crop < width:
        top = int(rng.integers(0, height - crop + 1))
        left = int(rng.integers(0, width - crop + 1))
        image = image[top : top + crop, left : left + crop]
        mask = mask[top : top + crop, left : left + crop]
    turns = int(rng.integers(0, 4))
    image, mask = np.rot90(image, turns), np.rot90(mask, turns)
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def training_batch(
    data: SplitArrays, indices: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [augment(data.images[i], data.masks[i], crop, rng) for i in indices]
    images = normalize(np.stack([p[0] for p in pairs]))
    # Gamma jitter: exposure curves differ between cameras; per-image standardisation in the
    # model already absorbs linear gain/offset, not this.
    gammas = np.exp(rng.uniform(-0.25, 0.25, size=(len(pairs), 1, 1))).astype(np.float32)
    images = np.power(images, gammas)
    masks = np.stack([p[1] for p in pairs]).astype(np.int64)
    return torch.from_numpy(images[:, None]), torch.from_numpy(masks)


# --------------------------------------------------------------------------- loss & schedule


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, lovasz_weight: float = 1.0
) -> torch.Tensor:
    """Weighted cross-entropy plus batch soft-Dice and Lovasz-softmax over the defect classes.

    Dice targets the overlap metrics directly and is insensitive to the 88 % background;
    Lovasz-softmax is a tight surrogate of the IoU itself, which matters most for the thin
    inclusion class, where a pixel of boundary is a large share of each region.
    """
    ce = F.cross_entropy(logits, target, weight=weights)
    probs = torch.softmax(logits, dim=1)[:, 1:]
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype)
    overlap = (probs * one_hot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
    dice = (2.0 * overlap + 1.0) / (total + 1.0)
    loss = ce + (1.0 - dice.mean())
    return loss + lovasz_weight * lovasz_softmax(probs, one_hot) if lovasz_weight else loss


def lovasz_softmax(probs: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """Lovasz-softmax loss (Berman et al., CVPR 2018) over the classes present in the batch.

    ``probs`` and ``one_hot`` are ``(N, K, H, W)``; every pixel of the batch counts, so the
    loss follows the pooled IoU the evaluation reports.
    """
    losses = []
    for k in range(probs.shape[1]):
        truth = one_hot[:, k].reshape(-1)
        if not truth.any():
            continue
        errors = (truth - probs[:, k].reshape(-1)).abs()
        errors, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors, _lovasz_gradient(truth[order])))
    return torch.stack(losses).mean() if losses else probs.sum() * 0.0


def _lovasz_gradient(sorted_truth: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss at the sorted errors."""
    positives = sorted_truth.sum()
    intersection = positives - sorted_truth.cumsum(0)
    union = positives + (1.0 - sorted_truth).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lr_factor(progress: float) -> float:
    if progress < WARMUP_FRACTION:
        return max(progress / WARMUP_FRACTION, 0.05)
    cosine = (progress - WARMUP_FRACTION) / (1.0 - WARMUP_FRACTION)
    return FINAL_LR_FACTOR + (1.0 - FINAL_LR_FACTOR) * 0.5 * (1.0 + math.cos(math.pi * cosine))


# --------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(model: nn.Module, data: SplitArrays, batch_size: int = 32) -> dict[str, object]:
    """Score like the service: argmax, then the service's region filter."""
    model.eval()
    accumulator = MetricAccumulator(len(CLASS_NAMES))
    for start in range(0, len(data.ids), batch_size):
        images = torch.from_numpy(normalize(data.images[start : start + batch_size])[:, None])
        probs = torch.softmax(model(images), dim=1).numpy()
        cleaned = np.stack(
            [clean_mask(p.argmax(axis=0).astype(np.uint8), MIN_REGION_AREA, p, MIN_REGION_CONFIDENCE)[0] for p in probs]
        )
        accumulator.update(cleaned, data.masks[start : start + batch_size])
    model.train()
    return accumulator.result()


# --------------------------------------------------------------------------- training


def train(
    config: TrainConfig, stage: Stage, train_data: SplitArrays, val_data: SplitArrays, model: nn.Module | None = None
) -> tuple[nn.Module, dict[str, object]]:
    """Runs ``stage`` from a fresh network, or on ``model``; returns the best-on-val weights
    (of the moving average, when ``stage.ema_decay`` is set) and a history summary."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if model is None:
        model = DefectUNet(len(CLASS_NAMES), config.widths)
    # With a decay, the average of the recent weights (BatchNorm statistics included) is what
    # gets validated and exported: it beats the last weights of a noisy small-batch run.
    average = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(stage.ema_decay), use_buffers=True
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=stage.lr, weight_decay=config.weight_decay)
    weights = torch.tensor(CLASS_WEIGHTS, dtype=torch.float32)
    steps_per_epoch = max(1, math.ceil(len(train_data.ids) / config.batch_size))
    total_steps = steps_per_epoch * stage.epochs
    budget = stage.max_minutes * 60.0

    best_score, best_state, best_metrics, best_epoch = -1.0, None, {}, 0
    step, epoch, progress = 0, 0, 0.0
    started = time.monotonic()
    model.train()
    while progress < 1.0:
        epoch += 1
        order = rng.permutation(len(train_data.ids))
        running = 0.0
        batches = 0
        for first in range(0, len(order), config.batch_size):
            progress = max(step / total_steps, (time.monotonic() - started) / budget)
            if progress >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = stage.lr * lr_factor(progress)
            # Small crops make early steps cheap; whole images late in training let the model see
            # defects in the full context it gets at inference.
            crop = config.image_size if progress >= stage.full_size_from else min(config.crop, config.image_size)
            images, masks = training_batch(train_data, order[first : first + config.batch_size], crop, rng)
            loss = segmentation_loss(model(images), masks, weights, stage.lovasz_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            average.update_parameters(model)
            running += float(loss.detach())
            batches += 1
            step += 1
        if batches == 0 and best_state is not None:
            epoch -= 1  # the time budget ran out right at an epoch boundary
            break
        progress = max(step / total_steps, (time.monotonic() - started) / budget)
        line = (
            f"{stage.name}: epoch {epoch:3d} step {step:6d} loss {running / max(batches, 1):.4f} "
            f"lr {optimizer.param_groups[0]['lr']:.2e} "
            f"elapsed {time.monotonic() - started:7.1f}s progress {progress:.3f}"
        )
        if progress >= config.validate_from or progress >= 1.0:
            metrics = validate(average.module, val_data)
            score = selection_score(metrics)
            line += f" | val mIoU {metrics['mean_iou']:.4f} dice {metrics['mean_dice']:.4f} iou {metrics['iou']}"
            if score > best_score:
                best_score, best_metrics, best_epoch = score, metrics, epoch
                best_state = copy.deepcopy(average.module.state_dict())
                line += " *"
        logger.info(line)

    assert best_state is not None  # the loop always validates once progress reaches 1
    model.load_state_dict(best_state)
    model.eval()
    return model, {
        "stage": vars(stage),
        "epochs_run": epoch,
        "steps": step,
        "train_seconds": round(time.monotonic() - started, 1),
        "best_epoch": best_epoch,
        "val": best_metrics,
    }


def start_from_export(config: TrainConfig, val_data: SplitArrays) -> nn.Module:
    """The network of an exported model (BatchNorm folded), checked to compute what the file does."""
    assert config.init_from is not None
    torch.manual_seed(config.seed)
    model = load_exported_weights(DefectUNet(len(CLASS_NAMES), config.widths), config.init_from).eval()
    difference = max_export_difference(
        SoftmaxWrapper(model), config.init_from, export_check_inputs(val_data, config.image_size, config.seed)
    )
    if not difference <= EXPORT_TOLERANCE:
        raise ValueError(
            f"{config.init_from} is not a DefectUNet of widths {config.widths} (differs by {difference:.3g})"
        )
    logger.info("starting from %s (max abs diff to its onnxruntime output %.2e)", config.init_from, difference)
    return model


# --------------------------------------------------------------------------- export


def export_onnx(
    model: nn.Module, out: Path, image_size: int, metadata: dict[str, str], check_inputs: np.ndarray
) -> float:
    """Export with a dynamic batch axis, verify against PyTorch, then move into place.

    Returns the max abs difference of the probabilities. Raises :class:`ExportMismatchError`
    (leaving ``out`` untouched) when onnxruntime disagrees with PyTorch.
    """
    import onnx

    wrapper = SoftmaxWrapper(model).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".partial")
    dummy = torch.zeros(2, 1, image_size, image_size)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated, but the dynamo one needs onnxscript and
        # gains nothing for a plain conv net.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(staging),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["image"],
            output_names=["probs"],
            dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}},
            do_constant_folding=True,
        )
    proto = onnx.load(str(staging))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(staging))
    try:
        difference = max_export_difference(wrapper, staging, check_inputs)
    except Exception:
        staging.unlink(missing_ok=True)
        raise
    if not difference <= EXPORT_TOLERANCE:  # also catches NaN
        staging.unlink(missing_ok=True)
        raise ExportMismatchError(
            f"onnxruntime output differs from PyTorch by {difference:.3g} "
            f"(tolerance {EXPORT_TOLERANCE}); not writing {out}"
        )
    os.replace(staging, out)
    return difference


@torch.no_grad()
def max_export_difference(wrapper: nn.Module, onnx_path: Path, inputs: np.ndarray) -> float:
    """Max abs probability difference over ``inputs``, run as one batch and one by one
    (the second exercises the dynamic batch axis)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = wrapper(torch.from_numpy(inputs)).numpy()
    batched = session.run(None, {"image": inputs})[0]
    single = np.concatenate([session.run(None, {"image": inputs[i : i + 1]})[0] for i in range(len(inputs))])
    if batched.shape != expected.shape or single.shape != expected.shape:
        raise ExportMismatchError(f"shape {batched.shape} / {single.shape} vs {expected.shape}")
    return float(max(np.abs(batched - expected).max(), np.abs(single - expected).max()))


def export_check_inputs(val_data: SplitArrays, image_size: int, seed: int) -> np.ndarray:
    """A few real images plus synthetic extremes (noise, flat gray, black)."""
    rng = np.random.default_rng(seed)
    real = normalize(val_data.images[:3])
    noise = rng.random((1, image_size, image_size), dtype=np.float32)
    flat = np.full((1, image_size, image_size), 0.5, np.float32)
    black = np.zeros((1, image_size, image_size), np.float32)
    return np.concatenate([real, noise, flat, black])[:, None]


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train the detect service's segmentation model.")
    parser.add_argument("--data", type=Path, required=True, help="NEU-Seg style dataset root")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--epochs", type=int, default=24, help="training from scratch: epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=38.0,
        help="training from scratch: time budget; the LR schedule compresses to fit it",
    )
    parser.add_argument("--lr", type=float, default=3e-3, help="training from scratch: peak learning rate")
    parser.add_argument("--finetune-epochs", type=int, default=40, help="fine-tuning: epochs")
    parser.add_argument(
        "--finetune-minutes", type=float, default=72.0, help="fine-tuning: time budget (0 skips fine-tuning)"
    )
    parser.add_argument("--finetune-lr", type=float, default=5e-4, help="fine-tuning: peak learning rate")
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="skip training from scratch: fine-tune the weights of this exported model (same --widths)",
    )
    parser.add_argument(
        "--limit-images", type=int, default=None, help="use only the first K images of each split (smoke tests)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--image-size", type=int, default=200, help="model input side")
    parser.add_argument("--crop", type=int, default=128, help="training crop side")
    parser.add_argument(
        "--widths", default=",".join(map(str, DEFAULT_WIDTHS)), help="channels per U-Net level, comma separated"
    )
    # One thread by default: on a shared 2-core machine, a second OpenMP thread that gets
    # descheduled makes every parallel region wait (measured 4x slower per step, not 2x faster).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--validate-from", type=float, default=0.6, help="validate after each epoch once this much progress is made"
    )
    parser.add_argument("--test-split", default="test", help="split to score the exported model on ('none' to skip)")
    parser.add_argument("--report", type=Path, default=None, help="also write the summary here")
    return parser


def parse_config(argv: Sequence[str] | None) -> tuple[TrainConfig, Path | None]:
    args = build_parser().parse_args(argv)
    stages = []
    if args.init_from is None:
        stages.append(Stage("scratch", args.epochs, args.max_minutes, args.lr, **SCRATCH_RECIPE))
    if args.finetune_minutes > 0 and args.finetune_epochs > 0:
        stages.append(
            Stage("finetune", args.finetune_epochs, args.finetune_minutes, args.finetune_lr, **FINETUNE_RECIPE)
        )
    if not stages:
        raise SystemExit("nothing to do: --init-from without fine-tuning")
    config = TrainConfig(
        data=args.data,
        out=args.out,
        seed=args.seed,
        limit_images=args.limit_images,
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        image_size=args.image_size,
        crop=args.crop,
        widths=tuple(int(w) for w in args.widths.split(",")),
        threads=args.threads,
        validate_from=args.validate_from,
        test_split=None if args.test_split.lower() == "none" else args.test_split,
        init_from=args.init_from,
        stages=tuple(stages),
    )
    return config, args.report


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    config, report_path = parse_config(argv)
    torch.set_num_threads(config.threads)
    # Denormal floats in late-training gradients make CPU steps several times slower. The flag is
    # the thread's, so it is set for this run only: a caller in the same process (the test suite,
    # whose fuzzer generates subnormal floats) gets IEEE floats back.
    torch.set_flush_denormal(True)
    try:
        return _run(config, report_path)
    finally:
        torch.set_flush_denormal(False)


def _run(config: TrainConfig, report_path: Path | None) -> dict[str, object]:
    wall_started, cpu_started = time.monotonic(), time.process_time()

    train_data = load_split(config.data, "train", config.image_size, config.limit_images)
    val_data = load_split(config.data, "val", config.image_size, config.limit_images)
    logger.info("loaded %d train / %d val images", len(train_data.ids), len(val_data.ids))
    model = None if config.init_from is None else start_from_export(config, val_data)
    histories = []
    for stage in config.stages:
        if stage.fold_batchnorm and model is not None:
            model = fold_batchnorm(model)  # a no-op on a model loaded with --init-from
        model, history = train(config, stage, train_data, val_data, model)
        histories.append(history)
    assert model is not None

    metadata = {
        "class_names": ",".join(CLASS_NAMES),
        "input": f"image: float32 (N,1,{config.image_size},{config.image_size}) gray 0..1",
        "output": "probs: float32 (N,4,H,W) softmax over class_names",
        "seed": str(config.seed),
        "widths": ",".join(map(str, config.widths)),
        "stages": ",".join(stage.name for stage in config.stages),
        "best_epoch": str(histories[-1]["best_epoch"]),
    }
    if config.init_from is not None:
        metadata["init_from_sha256"] = hashlib.sha256(config.init_from.read_bytes()).hexdigest()
    difference = export_onnx(
        model, config.out, config.image_size, metadata, export_check_inputs(val_data, config.image_size, config.seed)
    )
    logger.info("exported %s (onnxruntime vs PyTorch max abs diff %.2e)", config.out, difference)

    summary: dict[str, object] = {
        "out": str(config.out),
        "onnx_bytes": config.out.stat().st_size,
        "parameters": count_parameters(model),
        "export_max_abs_diff": difference,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {config.threads} threads",
        "stages": histories,
        **histories[-1],
    }
    if config.test_split:
        summary["test"] = evaluate_onnx(
            config.out, config.data, config.test_split, limit=config.limit_images, providers=["CPUExecutionProvider"]
        )
    summary["wall_seconds"] = round(time.monotonic() - wall_started, 1)
    summary["cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if report_path:
        report_path.write_text(text + "\n")
    return summary


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ExportMismatchError as error:
        sys.exit(f"export check FAILED: {error}")
