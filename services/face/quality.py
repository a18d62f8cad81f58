"""Is a detected face usable: plausible (really a face the right way up) and good enough to enrol?

YuNet places its five landmarks where an upright face would have them even when the photo is turned by
90 or 180 degrees, so a sideways face still yields "eyes above the nose above the mouth"; what gives a
turned photo away is the detector's score (upright faces of the evaluation photos score 0.89-0.96, the same
faces turned 0.70-0.91, always below the upright score of the same face) and a short inter-eye distance
for the size of the box. So plausibility is the landmarks' order and proportions plus a detector score, and
the engine (``FaceEngine.upright_face``) compares the orientations when the first one is not convincing.

The quality gate that enrolment and face login apply measures, on the face that orientation picked:

* size: the distance between the eyes, in pixels of the decoded photo;
* the detector's score;
* sharpness: the variance of the Laplacian of the aligned 112x112 crop in grey levels (a blurred face has
  few edges left);
* pose from the landmarks: roll (the eye line's angle) and an estimate of yaw (how far the nose sits off
  the eyes' midpoint).

The default thresholds come from ``python -m tools.face_evaluation --quality`` (README, "Face quality").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

__all__ = ["FaceQuality", "QualityThresholds", "Shape", "measure", "refusal", "shape"]

# Why a face is refused: the `reason` of an ImageProblem, shown in 002's `invalid_reason` with spaces.
TOO_SMALL, UNCLEAR, BLURRED, TURNED, TILTED = (
    "face_too_small",
    "face_unclear",
    "face_blurred",
    "face_turned",
    "face_tilted",
)

# Inter-eye distance over box width: 0.39-0.56 for the upright evaluation faces, 0.18-0.40 for the same
# faces turned by 90 degrees; a profile (yaw near 90) also falls below the lower bound.
_EYES_PER_BOX_WIDTH = (0.25, 0.80)


@dataclass(frozen=True)
class Shape:
    """What the landmarks alone say about a face."""

    eye_distance: float  # pixels
    roll: float  # degrees, the eye line against the horizontal; + when the subject's left eye is lower
    yaw: float  # degrees, an estimate; + when the nose points to the photo's right
    ordered: bool  # eyes above the nose above the mouth, right eye on the photo's left, sensible proportions


def shape(landmarks: np.ndarray, box_width: float) -> Shape:
    """``landmarks``: (5, 2) right eye, left eye, nose tip, right and left mouth corners (the subject's)."""
    right_eye, left_eye, nose, right_mouth, left_mouth = np.asarray(landmarks, dtype=np.float64)
    across = left_eye - right_eye
    eye_distance = float(np.hypot(*across))
    roll = math.degrees(math.atan2(across[1], across[0]))
    if eye_distance < 1e-6:
        return Shape(eye_distance, roll, 0.0, False)
    # In the face's own frame (x along the eyes, y down the face), so that roll does not count as yaw.
    unit_x = across / eye_distance
    unit_y = np.array([-unit_x[1], unit_x[0]])
    eye_mid, mouth_mid = (right_eye + left_eye) / 2, (right_mouth + left_mouth) / 2

    def frame(point: np.ndarray) -> tuple[float, float]:
        offset = point - eye_mid
        return float(offset @ unit_x), float(offset @ unit_y)

    nose_x, nose_y = frame(nose)
    _, mouth_y = frame(mouth_mid)
    # The nose tip sits about half an inter-eye distance in front of the eyes' plane; turning the head by
    # yaw moves it sideways by that depth times sin(yaw).
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, nose_x / (0.5 * eye_distance)))))
    low, high = _EYES_PER_BOX_WIDTH
    ordered = (
        abs(roll) < 90.0
        and 0.0 < nose_y < mouth_y
        and mouth_y < 3.0 * eye_distance
        and (box_width <= 0 or low <= eye_distance / box_width <= high)
    )
    return Shape(eye_distance, roll, yaw, ordered)


def sharpness(aligned_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned crop's grey levels: low for a blurred face."""
    grey = cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@dataclass(frozen=True)
class FaceQuality:
    eye_distance: float
    score: float
    sharpness: float
    yaw: float
    roll: float

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in asdict(self).items()}


def measure(landmarks: np.ndarray, box_width: float, score: float, aligned_bgr: np.ndarray) -> FaceQuality:
    face_shape = shape(landmarks, box_width)
    return FaceQuality(face_shape.eye_distance, score, sharpness(aligned_bgr), face_shape.yaw, face_shape.roll)


@dataclass(frozen=True)
class QualityThresholds:
    """What a face needs to be enrolled or to log in (defaults: FaceSettings, README "Face quality")."""

    min_eye_distance: float
    min_score: float
    min_sharpness: float
    max_yaw: float
    max_roll: float


def refusal(quality: FaceQuality, thresholds: QualityThresholds) -> tuple[str, str] | None:
    """(reason, detail) of the first check the face fails, or None when it passes them all. The detector's
    score comes last: a small, blurred or turned face also scores lower, and its own reason says more."""
    checks = [
        (quality.eye_distance < thresholds.min_eye_distance, TOO_SMALL,
         f"face too small: {quality.eye_distance:.0f} px between the eyes, at least "
         f"{thresholds.min_eye_distance:g} needed"),
        (quality.sharpness < thresholds.min_sharpness, BLURRED,
         f"face blurred: sharpness {quality.sharpness:.0f}, at least {thresholds.min_sharpness:g} needed"),
        (abs(quality.yaw) > thresholds.max_yaw, TURNED,
         f"face turned aside: yaw about {abs(quality.yaw):.0f} degrees, at most {thresholds.max_yaw:g} allowed"),
        (abs(quality.roll) > thresholds.max_roll, TILTED,
         f"face tilted: roll {abs(quality.roll):.0f} degrees, at most {thresholds.max_roll:g} allowed"),
        (quality.score < thresholds.min_score, UNCLEAR,
         f"face unclear: detector score {quality.score:.2f}, at least {thresholds.min_score:g} needed"),
    ]  # fmt: skip
    return next(((reason, detail) for failed, reason, detail in checks if failed), None)
