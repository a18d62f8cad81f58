"""Orientation, EXIF and the face-quality gate on real photos from package files and generated variants."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from services.face import model_files
from services.face.calibration import for_model
from services.face.engine import FaceEngine, NoFaceFound, NoPlausibleFace, decode_image_bytes
from services.face.quality import (
    BLURRED,
    TILTED,
    TOO_SMALL,
    TURNED,
    UNCLEAR,
    FaceQuality,
    QualityThresholds,
    refusal,
    shape,
)
from services.face.settings import FaceSettings
from tests.fixtures.face_photos import REPO_ROOT, face_photo_dir

pytestmark = pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning")

DEFAULTS = FaceSettings().quality_thresholds()
GOOD = FaceQuality(eye_distance=60.0, score=0.94, sharpness=800.0, yaw=5.0, roll=-3.0)


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    directory = Path(os.environ.get(model_files.MODEL_DIR_ENV) or REPO_ROOT / "var" / "models")
    model_files.fetch(directory)
    return FaceEngine(model_files.verify(directory))


def photo(name: str) -> np.ndarray:
    return decode_image_bytes((face_photo_dir() / name).read_bytes())


def upright_vector(engine: FaceEngine, image: np.ndarray) -> np.ndarray:
    upright = engine.upright_face(image)
    return engine.embed_faces([(upright.image, upright.face)])[0]


@pytest.mark.parametrize("turn", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE])
@pytest.mark.parametrize("name", ["person_a_2.jpg", "person_b_1.jpg", "impostor_1.jpg"])
def test_a_turned_photo_is_turned_back_and_matches_its_upright_self(engine, name, turn):
    image = photo(name)
    original = upright_vector(engine, image)
    upright = engine.upright_face(cv2.rotate(image, turn))
    # The photo is turned back the other way round: 90 clockwise is undone by 270 clockwise.
    assert (
        upright.turned == {cv2.ROTATE_90_CLOCKWISE: 270, cv2.ROTATE_180: 180, cv2.ROTATE_90_COUNTERCLOCKWISE: 90}[turn]
    )
    vector = engine.embed_faces([(upright.image, upright.face)])[0]
    assert for_model(engine.model_name).is_same_person(float(vector @ original))
    assert float(vector @ original) > 0.9


def test_an_upright_photo_is_taken_as_sent(engine):
    upright = engine.upright_face(photo("person_b_1.jpg"))
    assert upright.turned == 0 and upright.face.score >= 0.93


def test_exif_orientation_is_honoured_by_the_decoder():
    source = Image.open(face_photo_dir() / "person_b_1.jpg").convert("RGB")
    for orientation, stored in (
        (6, source.transpose(Image.Transpose.ROTATE_90)),
        (3, source.transpose(Image.Transpose.ROTATE_180)),
        (8, source.transpose(Image.Transpose.ROTATE_270)),
    ):
        exif = Image.Exif()
        exif[0x0112] = orientation
        out = io.BytesIO()
        stored.save(out, "PNG", exif=exif)
        decoded = decode_image_bytes(out.getvalue())
        assert decoded.shape[:2] == (source.height, source.width), orientation
        assert np.array_equal(decoded[:, :, ::-1], np.asarray(source)), orientation


def test_landmarks_in_order_are_plausible_and_out_of_order_are_not():
    # Right eye, left eye, nose, right and left mouth corners of an upright face 100 px wide.
    upright = np.array([[35, 45], [75, 45], [55, 65], [40, 85], [70, 85]], dtype=np.float32)
    face = shape(upright, 100)
    assert face.ordered and face.eye_distance == 40 and abs(face.roll) < 1e-6 and abs(face.yaw) < 1e-6
    upside_down = np.array([[75, 85], [35, 85], [55, 65], [70, 45], [40, 45]], dtype=np.float32)
    assert not shape(upside_down, 100).ordered
    mouth_above_nose = upright.copy()
    mouth_above_nose[2, 1] = 95  # the nose below the mouth
    assert not shape(mouth_above_nose, 100).ordered
    assert not shape(upright, 400).ordered  # eyes 40 px apart in a 400 px box: not a face's proportions
    turned_aside = upright.copy()
    turned_aside[2, 0] = 70  # the nose near the left eye: a head turned by about 50 degrees
    assert shape(turned_aside, 100).yaw > 45


def test_each_failed_check_is_named_with_its_measurement():
    assert refusal(GOOD, DEFAULTS) is None
    cases = [
        (FaceQuality(11.0, 0.94, 800.0, 5.0, 0.0), TOO_SMALL, "11 px between the eyes"),
        (FaceQuality(60.0, 0.75, 800.0, 5.0, 0.0), UNCLEAR, "detector score 0.75"),
        (FaceQuality(60.0, 0.94, 5.0, 5.0, 0.0), BLURRED, "sharpness 5"),
        (FaceQuality(60.0, 0.94, 800.0, -60.0, 0.0), TURNED, "yaw about 60 degrees"),
        (FaceQuality(60.0, 0.94, 800.0, 5.0, 40.0), TILTED, "roll 40 degrees"),
    ]
    for quality, reason, words in cases:
        found = refusal(quality, DEFAULTS)
        assert found is not None and found[0] == reason and words in found[1], (quality, found)
    lenient = QualityThresholds(min_eye_distance=5, min_score=0.5, min_sharpness=1, max_yaw=80, max_roll=80)
    assert all(refusal(quality, lenient) is None for quality, _, _ in cases)


def test_blank_and_noise_have_no_plausible_face(engine):
    with pytest.raises(NoFaceFound) as caught:
        engine.upright_face(np.full((240, 320, 3), 128, np.uint8))
    assert not isinstance(caught.value, NoPlausibleFace)
    assert issubclass(NoPlausibleFace, NoFaceFound)  # callers that only know "no face" still refuse it
