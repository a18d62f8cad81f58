"""Measure the face engine on the shared evaluation photos (not shipped; absent from a fresh clone).

    python -m tools.face_evaluation [--faces-dir ../shared/faces] [--pairs-csv pairs.csv] [--quick]

Reports:

* detection: ``compreface/NNN_k.jpg`` holds exactly k faces; prints found vs expected per photo.
* verification: all pairs of ``compreface/NNN_X.jpg`` (X names the person: A, B or C), and the 300
  labelled pairs of ``deepface/master.csv`` (``file_x,file_y,Decision``). Each photo's largest plausible
  face is embedded once and pairs are decided by the model's calibration (``services.face.calibration``).
  Also prints the best cut the data allows and a logistic fit, so that a calibration change can be checked
  against the same numbers; ``--pairs-csv`` saves the deepface cosines for ``calibration fit``. These are
  the pairs the decision threshold was chosen on.
* held-out calibration: pairs that played no part in choosing the threshold, the false-accept and
  false-reject rates at it: ``face_recognition/`` photos of one person each, named by file (duplicates and
  re-encodings of one photo counted once), all pairs; and every pair of faces within one of the
  ``compreface/NNN_k.jpg`` group photos (different people).
* orientation (skipped by ``--quick``): every single-face photo turned by 90, 180 and 270 degrees, enrolled
  as enrolment does it (orientation, then the quality gate): recognised (the same person as the upright
  photo), refused, or enrolled as a template that does not match its own upright photo; and the same
  without the orientation search (the engine before it), for comparison.
* quality (skipped by ``--quick``): the gate's measurements on the upright photos, and how matching decays
  as the face shrinks (photo scaled to a given inter-eye distance) and as it blurs (Gaussian blur of the
  photo, sigma in pixels of the aligned crop): the figures the gate's defaults come from.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import math
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from services.face.calibration import Calibration, fit, for_model, format_report
from services.face.engine import FaceEngine, ImageDecodeError, NoFaceFound, OrientationSettings, decode_image_bytes
from services.face.model_files import ModelFilesMissing
from services.face.quality import FaceQuality, QualityThresholds, measure, refusal
from services.face.settings import FaceSettings

DEFAULT_FACES_DIR = Path(__file__).resolve().parents[2] / "shared" / "faces"
_COUNT_NAME = re.compile(r"^\d+_(\d)\.jpe?g$", re.IGNORECASE)
_IDENTITY_NAME = re.compile(r"^\d+_([A-Z])\.jpe?g$")
# face_recognition/: who each photo of one person shows, by a part of its file name. Photos of several
# people (obama_and_biden, kit_with_rose, two_people) and the unnamed 32bit.png are left out.
_HELD_OUT_PEOPLE = {"alex_lacamoire": "Alex Lacamoire", "alex-lacamoire": "Alex Lacamoire", "biden_biden": "Biden",
                    "examples_biden": "Biden", "images_biden": "Biden", "kit_harington": "Kit Harington",
                    "johnsnow": "Kit Harington", "rose_leslie": "Rose Leslie", "lin-manuel": "Lin-Manuel Miranda",
                    "obama": "Obama"}  # fmt: skip
_GROUPS = ("obama_and_biden", "kit_with_rose", "two_people")
# Two photos of one person this close are one photo resized or re-encoded (obama-240p ... 1080p): one pair
# of them would be a copy, not a second photo.
_SAME_PHOTO_COSINE = 0.95
_TURNS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
# The ArcFace template's eyes are 35.2 pixels apart in the 112x112 crop.
_ALIGNED_EYE_DISTANCE = 73.5318 - 38.2946


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


# --- held-out calibration ------------------------------------------------------------------------


def _held_out_person(name: str) -> str | None:
    if any(group in name for group in _GROUPS):
        return None
    return next((person for part, person in _HELD_OUT_PEOPLE.items() if part in name), None)


def evaluate_held_out_people(engine: FaceEngine, folder: Path) -> list[Pair]:
    """All pairs of the face_recognition/ photos of one known person, each photo once."""
    people: dict[str, str] = {}
    digests: set[str] = set()
    for path in sorted(folder.iterdir()):
        person = _held_out_person(path.name)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if person is not None and digest not in digests:
            digests.add(digest)
            people[path.name] = person
    vectors = _embed_all(engine, folder, people)
    kept: list[str] = []
    for name in sorted(people):
        vector = vectors[name]
        copies = [
            k
            for k in kept
            if people[k] == people[name]
            and vector is not None
            and vectors[k] is not None
            and float(vector @ vectors[k]) >= _SAME_PHOTO_COSINE
        ]  # type: ignore[operator]
        if not copies:
            kept.append(name)
    pairs = []
    for left, right in itertools.combinations(kept, 2):
        a, b = vectors[left], vectors[right]
        cosine = None if a is None or b is None else float(a @ b)
        pairs.append(Pair(left, right, people[left] == people[right], cosine))
    return pairs


def evaluate_group_strangers(engine: FaceEngine, folder: Path) -> list[Pair]:
    """Every pair of faces within one compreface/NNN_k.jpg group photo: different people."""
    pairs = []
    for path in sorted(folder.iterdir()):
        match = _COUNT_NAME.match(path.name)
        if not match or int(match.group(1)) < 2:
            continue
        image = _load(path)
        faces = engine.detect(image)
        vectors = engine.embed_faces([(image, face) for face in faces])
        for i, j in itertools.combinations(range(len(faces)), 2):
            pairs.append(Pair(f"{path.name}#{i}", f"{path.name}#{j}", False, float(vectors[i] @ vectors[j])))
    return pairs


def _upper_bound(errors: int, trials: int, z: float = 1.96) -> float:
    """The upper end of the 95% Wilson interval of a rate of errors/trials."""
    if trials == 0:
        return 1.0
    rate = errors / trials
    centre = rate + z * z / (2 * trials)
    spread = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    return min(1.0, (centre + spread) / (1 + z * z / trials))


def _rate_lines(title: str, pairs: Sequence[Pair], calibration: Calibration) -> list[str]:
    same = [p for p in pairs if p.same]
    different = [p for p in pairs if not p.same]
    # A pair with an undetectable face cannot be accepted: it is a reject.
    accepted = {id(p) for p in pairs if p.cosine is not None and calibration.is_same_person(p.cosine)}
    false_accepts = [p for p in different if id(p) in accepted]
    false_rejects = [p for p in same if id(p) not in accepted]
    lines = [
        f"held-out calibration, {title}: {len(pairs)} pairs ({len(same)} same-person, {len(different)} "
        f"different), threshold cosine {calibration.threshold_cosine:.3f}"
    ]
    if different:
        worst = max((p.cosine for p in different if p.cosine is not None), default=float("nan"))
        lines.append(
            f"  FAR {len(false_accepts)}/{len(different)} = {len(false_accepts) / len(different):.4f} "
            f"(95% upper bound {_upper_bound(len(false_accepts), len(different)):.4f}); "
            f"highest different-person cosine {worst:.3f}"
        )
    if same:
        lowest = min((p.cosine for p in same if p.cosine is not None), default=float("nan"))
        lines.append(
            f"  FRR {len(false_rejects)}/{len(same)} = {len(false_rejects) / len(same):.4f} "
            f"(95% upper bound {_upper_bound(len(false_rejects), len(same)):.4f}); "
            f"lowest same-person cosine {lowest:.3f}"
        )
    lines += [f"  error: {p.left} {p.right} same={p.same} cosine={p.cosine}" for p in false_accepts + false_rejects]
    return lines


# --- orientation and quality ---------------------------------------------------------------------


@dataclass(frozen=True)
class Upright:
    name: str
    image: np.ndarray
    vector: np.ndarray
    quality: FaceQuality


def single_face_photos(engine: FaceEngine, faces_dir: Path, orientation: OrientationSettings) -> list[Upright]:
    """The photos of one person (deepface, compreface A/B/C, face_recognition), as enrolment sees them."""
    paths = sorted((faces_dir / "deepface").glob("img*.jpg"))
    paths += [p for p in sorted((faces_dir / "compreface").iterdir()) if _IDENTITY_NAME.match(p.name)]
    paths += [p for p in sorted((faces_dir / "face_recognition").iterdir()) if _held_out_person(p.name)]
    photos, digests = [], set()
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in digests:
            continue
        digests.add(digest)
        image = _load(path)
        try:
            upright = engine.upright_face(image, orientation)
        except NoFaceFound:
            continue
        aligned = engine.align(upright.image, upright.face)
        face = upright.face
        photos.append(
            Upright(
                f"{path.parent.name}/{path.name}",
                upright.image,
                engine.embed_aligned([aligned])[0],
                measure(face.landmark_array(), face.width, face.score, aligned),
            )
        )
    return photos


def _enrol(
    engine: FaceEngine, image: np.ndarray, orientation: OrientationSettings, thresholds: QualityThresholds
) -> tuple[np.ndarray | None, str, FaceQuality | None]:
    """What enrolment does with a photo: (vector or None, why not, the face's quality)."""
    try:
        upright = engine.upright_face(image, orientation)
    except NoFaceFound as exc:
        return None, type(exc).__name__, None
    aligned = engine.align(upright.image, upright.face)
    face = upright.face
    quality = measure(face.landmark_array(), face.width, face.score, aligned)
    refused = refusal(quality, thresholds)
    if refused is not None:
        return None, refused[0], quality
    return engine.embed_aligned([aligned])[0], "", quality


def _orientation_lines(
    engine: FaceEngine,
    photos: Sequence[Upright],
    orientation: OrientationSettings,
    thresholds: QualityThresholds,
    calibration: Calibration,
) -> list[str]:
    lines = [f"orientation: {len(photos)} upright photos of one person, each turned by 90, 180 and 270 degrees"]
    for turned, code in _TURNS.items():
        now = {"recognised": 0, "refused": 0, "enrolled, matching nobody": 0}
        before = dict(now)
        for photo in photos:
            image = cv2.rotate(photo.image, code)
            vector, _, _ = _enrol(engine, image, orientation, thresholds)
            if vector is None:
                now["refused"] += 1
            else:
                now[
                    "recognised"
                    if calibration.is_same_person(float(vector @ photo.vector))
                    else "enrolled, matching nobody"
                ] += 1
            faces = engine.detect(image)  # the engine before the orientation search: largest face as sent
            if not faces:
                before["refused"] += 1
            else:
                old = engine.embed_faces([(image, max(faces, key=lambda face: face.area))])[0]
                before[
                    "recognised"
                    if calibration.is_same_person(float(old @ photo.vector))
                    else "enrolled, matching nobody"
                ] += 1
        lines.append(
            f"  {turned:3d} degrees: "
            + ", ".join(f"{k} {v}" for k, v in now.items())
            + "  (without the orientation search: "
            + ", ".join(f"{k} {v}" for k, v in before.items())
            + ")"
        )
    return lines


def _spread(values: Sequence[float]) -> str:
    array = np.asarray(values, dtype=np.float64)
    return " ".join(
        f"{label} {np.percentile(array, q):.2f}"
        for label, q in (("min", 0), ("p5", 5), ("median", 50), ("p95", 95), ("max", 100))
    )


def _quality_lines(
    engine: FaceEngine,
    photos: Sequence[Upright],
    orientation: OrientationSettings,
    thresholds: QualityThresholds,
    calibration: Calibration,
) -> list[str]:
    qualities = [photo.quality for photo in photos]
    passed = [photo for photo in photos if refusal(photo.quality, thresholds) is None]
    lines = [
        f"quality of the {len(photos)} upright photos: {len(passed)} pass the gate ({thresholds})",
        f"  eye distance px: {_spread([q.eye_distance for q in qualities])}",
        f"  detector score:  {_spread([q.score for q in qualities])}",
        f"  sharpness:       {_spread([q.sharpness for q in qualities])}",
        f"  |yaw| degrees:   {_spread([abs(q.yaw) for q in qualities])}",
        f"  |roll| degrees:  {_spread([abs(q.roll) for q in qualities])}",
    ]
    lines += [f"  refused: {p.name} {refusal(p.quality, thresholds)}" for p in photos if p not in passed]
    lines.append(
        "size: each photo scaled down to this inter-eye distance; detected, median score and sharpness, "
        "and how many still match their full-size photo"
    )
    for eyes in (8, 12, 16, 20, 24, 32):
        shrunk = [(p, eyes / p.quality.eye_distance) for p in photos if p.quality.eye_distance > eyes]
        images = [(p, cv2.resize(p.image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)) for p, f in shrunk]
        lines.append("  " + _decay_line(f"eyes {eyes:2d} px", engine, images, orientation, thresholds, calibration))
    lines.append("blur: Gaussian blur of the photo, sigma in pixels of the aligned 112x112 crop")
    for sigma in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0):
        images = [
            (p, cv2.GaussianBlur(p.image, (0, 0), sigma * p.quality.eye_distance / _ALIGNED_EYE_DISTANCE))
            for p in photos
        ]
        lines.append("  " + _decay_line(f"sigma {sigma:3.1f}", engine, images, orientation, thresholds, calibration))
    return lines


def _decay_line(
    label: str,
    engine: FaceEngine,
    images: Sequence[tuple[Upright, np.ndarray]],
    orientation: OrientationSettings,
    thresholds: QualityThresholds,
    calibration: Calibration,
) -> str:
    open_gate = QualityThresholds(0.0, 0.0, 0.0, 90.0, 180.0)
    found, matched, gated, gated_matched, scores, sharpness, cosines = 0, 0, 0, 0, [], [], []
    for photo, image in images:
        vector, _, quality = _enrol(engine, image, orientation, open_gate)
        if vector is None or quality is None:
            continue
        found += 1
        scores.append(quality.score)
        sharpness.append(quality.sharpness)
        cosines.append(float(vector @ photo.vector))
        same = calibration.is_same_person(cosines[-1])
        matched += same
        if refusal(quality, thresholds) is None:
            gated += 1
            gated_matched += same
    median = lambda values: float(np.median(values)) if values else float("nan")  # noqa: E731
    return (
        f"{label}: {len(images)} photos, detected {found}, match {matched} (cosine to the original: median "
        f"{median(cosines):.2f}, p5 {np.percentile(cosines, 5) if cosines else float('nan'):.2f}); median score "
        f"{median(scores):.2f}, sharpness {median(sharpness):.0f}; pass the gate {gated} "
        f"(of which match {gated_matched})"
    )


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
    parser = argparse.ArgumentParser(prog="python -m tools.face_evaluation", description=__doc__.split("\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES_DIR)
    parser.add_argument("--pairs-csv", type=Path, help="also write the deepface pair cosines here")
    parser.add_argument("--quick", action="store_true", help="skip the orientation and quality sections")
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
    people = evaluate_held_out_people(engine, args.faces_dir / "face_recognition")
    strangers = evaluate_group_strangers(engine, args.faces_dir / "compreface")
    lines += _rate_lines("face_recognition/ photos of one person", people, calibration)
    lines += _rate_lines("faces within one compreface group photo", strangers, calibration)
    lines += _rate_lines("both together", people + strangers, calibration)
    print("\n".join(lines), flush=True)
    if not args.quick:
        settings = FaceSettings()
        orientation, thresholds = settings.orientation(), settings.quality_thresholds()
        photos = single_face_photos(engine, args.faces_dir, orientation)
        lines = _orientation_lines(engine, photos, orientation, thresholds, calibration)
        lines += _quality_lines(engine, photos, orientation, thresholds, calibration)
        print("\n".join(lines))
    print(f"took {time.perf_counter() - started:.1f}s")
    if args.pairs_csv:
        _write_pairs(args.pairs_csv, pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
