"""Measure the face engine on the shared evaluation photos (not shipped; absent from a fresh clone).

    python -m services.face.evaluation [--faces-dir ../shared/faces] [--pairs-csv pairs.csv]

Reports:

* detection: ``compreface/NNN_k.jpg`` holds exactly k faces; prints found vs expected per photo.
* verification: all pairs of ``compreface/NNN_X.jpg`` (X names the person: A, B or C), and the 300
  labelled pairs of ``deepface/master.csv`` (``file_x,file_y,Decision``). Each photo's largest face is
  embedded once and pairs are decided by the model's calibration (``services.face.calibration``). Also
  prints the best cut the data allows and a logistic fit, so that a calibration change can be checked
  against the same numbers; ``--pairs-csv`` saves the deepface cosines for ``calibration fit``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.face.calibration import Calibration, fit, for_model, format_report
from services.face.engine import FaceEngine, ImageDecodeError, NoFaceFound, decode_image_bytes
from services.face.model_files import ModelFilesMissing

DEFAULT_FACES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "faces"
_COUNT_NAME = re.compile(r"^\d+_(\d)\.jpe?g$", re.IGNORECASE)
_IDENTITY_NAME = re.compile(r"^\d+_([A-Z])\.jpe?g$")


@dataclass(frozen=True)
class DetectionResult:
    name: str
    expected: int
    found: int


@dataclass(frozen=True)
class Pair:
    left: str
    right: str
    same: bool
    cosine: float | None  # None when a photo had no detectable face


def _load(path: Path) -> np.ndarray:
    return decode_image_bytes(path.read_bytes(), max_bytes=64 * 1024 * 1024)


def evaluate_detection(engine: FaceEngine, folder: Path) -> list[DetectionResult]:
    results = []
    for path in sorted(folder.iterdir()):
        match = _COUNT_NAME.match(path.name)
        if match:
            results.append(DetectionResult(path.name, int(match.group(1)), len(engine.detect(_load(path)))))
    return results


def _embed_all(engine: FaceEngine, folder: Path, names: Iterable[str]) -> dict[str, np.ndarray | None]:
    vectors: dict[str, np.ndarray | None] = {}
    for name in sorted(set(names)):
        try:
            vectors[name] = engine.embed_largest(_load(folder / name))
        except (NoFaceFound, ImageDecodeError):
            vectors[name] = None
    return vectors


def evaluate_pairs(engine: FaceEngine, folder: Path) -> list[Pair]:
    with (folder / "master.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    vectors = _embed_all(engine, folder, [r["file_x"] for r in rows] + [r["file_y"] for r in rows])
    pairs = []
    for row in rows:
        left, right = vectors[row["file_x"]], vectors[row["file_y"]]
        cosine = None if left is None or right is None else float(left @ right)
        pairs.append(Pair(row["file_x"], row["file_y"], row["Decision"].strip().lower() == "yes", cosine))
    return pairs


def evaluate_identities(engine: FaceEngine, folder: Path) -> list[Pair]:
    """Every pair of ``compreface/NNN_X.jpg`` photos; the letter X names the person."""
    people = {p.name: m.group(1) for p in sorted(folder.iterdir()) if (m := _IDENTITY_NAME.match(p.name))}
    vectors = _embed_all(engine, folder, people)
    pairs = []
    for left, right in itertools.combinations(sorted(people), 2):
        a, b = vectors[left], vectors[right]
        cosine = None if a is None or b is None else float(a @ b)
        pairs.append(Pair(left, right, people[left] == people[right], cosine))
    return pairs


def _detection_lines(results: Sequence[DetectionResult]) -> list[str]:
    exact = sum(r.found == r.expected for r in results)
    lines = [f"detection: {exact}/{len(results)} photos with the exact face count"]
    lines += [
        f"  {r.name:12s} expected {r.expected} found {r.found}{'' if r.found == r.expected else '  <--'}"
        for r in results
    ]
    lines.append(
        f"  faces expected {sum(r.expected for r in results)}, found {sum(r.found for r in results)}, "
        f"absolute error {sum(abs(r.found - r.expected) for r in results)}"
    )
    return lines


def _verification_lines(title: str, pairs: Sequence[Pair], calibration: Calibration) -> list[str]:
    scored = [p for p in pairs if p.cosine is not None]
    cosines = np.array([p.cosine for p in scored], dtype=np.float64)
    same = np.array([p.same for p in scored])
    # A pair with an undetectable face cannot be accepted: it counts as "different".
    decided = [(p.cosine is not None and calibration.is_same_person(p.cosine)) == p.same for p in pairs]
    errors = [p for p, ok in zip(pairs, decided) if not ok]
    lines = [
        (
            f"verification, {title}: {len(pairs)} pairs ({sum(p.same for p in pairs)} same-person), "
            f"{len(pairs) - len(scored)} with an undetected face"
        ),
        (
            f"  calibration: score = 1/(1+exp(-{calibration.slope:g}*(cosine-{calibration.midpoint:g}))), "
            f"same person when score >= 0.5 (cosine >= {calibration.threshold_cosine:.3f})"
        ),
        (
            f"  accuracy {np.mean(decided):.4f} ({len(pairs) - len(errors)}/{len(pairs)}); "
            f"false accepts {sum(not p.same for p in errors)}, false rejects {sum(p.same for p in errors)}"
        ),
    ]
    if len(scored) and 0 < same.sum() < len(same):
        lines.append(f"  same-person cosine range {cosines[same].min():.3f}..{cosines[same].max():.3f}; "
                     f"different-person {cosines[~same].min():.3f}..{cosines[~same].max():.3f}")  # fmt: skip
        lines += ["  " + line for line in format_report(fit(cosines, same)).splitlines()]
    lines += [f"  error: {p.left} {p.right} same={p.same} cosine={p.cosine}" for p in errors]
    return lines


def _write_pairs(path: Path, pairs: Sequence[Pair]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["left", "right", "cosine", "same"])
        writer.writerows([p.left, p.right, p.cosine, int(p.same)] for p in pairs if p.cosine is not None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.face.evaluation", description=__doc__.split("\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES_DIR)
    parser.add_argument("--pairs-csv", type=Path, help="also write the deepface pair cosines here")
    args = parser.parse_args(argv)
    if not args.faces_dir.is_dir():
        print(f"no evaluation photos at {args.faces_dir}: nothing to measure", file=sys.stderr)
        return 2
    try:
        engine = FaceEngine()
    except ModelFilesMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"engine {engine.model_name} (dim {engine.dim}), providers {engine.providers}")
    started = time.perf_counter()
    lines = _detection_lines(evaluate_detection(engine, args.faces_dir / "compreface"))
    pairs = evaluate_pairs(engine, args.faces_dir / "deepface")
    calibration = for_model(engine.model_name)
    lines += _verification_lines("deepface master.csv", pairs, calibration)
    lines += _verification_lines(
        "compreface A/B/C photos", evaluate_identities(engine, args.faces_dir / "compreface"), calibration
    )
    print("\n".join(lines))
    print(f"took {time.perf_counter() - started:.1f}s")
    if args.pairs_csv:
        _write_pairs(args.pairs_csv, pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
