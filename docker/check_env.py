"""Build-time check of the image's Python environment (run by the Dockerfile; fails the build on error).

    python docker/check_env.py gpu|cpu

- gpu: ``onnxruntime-gpu`` is the only onnxruntime distribution (insightface's declared CPU
  ``onnxruntime`` would silently replace the CUDA provider), it lists ``CUDAExecutionProvider``, and the
  CUDA/cuDNN libraries its CUDA provider loads resolve through LD_LIBRARY_PATH. Only ``libcuda.so.1``
  may be missing: the NVIDIA container runtime mounts the host driver's copy at run time.
- cpu: ``onnxruntime`` without ``onnxruntime-gpu``.
- both: insightface's alignment, faiss and OpenCV import.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

DRIVER_LIBRARIES = {"libcuda.so.1"}


def _distributions() -> set[str]:
    return {(dist.metadata["Name"] or "").lower().replace("_", "-") for dist in importlib.metadata.distributions()}


def _missing_cuda_libraries(onnxruntime_dir: Path) -> list[str]:
    provider = onnxruntime_dir / "capi" / "libonnxruntime_providers_cuda.so"
    if not provider.is_file():
        return [f"{provider} (the CUDA provider library itself)"]
    output = subprocess.run(["ldd", str(provider)], capture_output=True, text=True, check=True).stdout
    missing = [line.split("=>")[0].strip() for line in output.splitlines() if "not found" in line]
    missing = [name for name in missing if name not in DRIVER_LIBRARIES]
    # cuDNN is dlopen()ed by the provider, so ldd does not list it.
    search = [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    if not any((directory / "libcudnn.so.9").exists() for directory in search):
        missing.append("libcudnn.so.9 (not in any LD_LIBRARY_PATH directory)")
    return missing


def main(variant: str) -> int:
    problems: list[str] = []
    dists = _distributions()
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if variant == "gpu":
        if "onnxruntime" in dists:
            problems.append("the CPU 'onnxruntime' distribution is installed over onnxruntime-gpu")
        if "onnxruntime-gpu" not in dists:
            problems.append("onnxruntime-gpu is not installed")
        if "CUDAExecutionProvider" not in providers:
            problems.append(f"CUDAExecutionProvider missing from {providers}")
        missing = _missing_cuda_libraries(Path(onnxruntime.__file__).parent)
        if missing:
            problems.append(f"CUDA provider libraries not found: {', '.join(missing)}")
    elif variant == "cpu":
        if "onnxruntime-gpu" in dists:
            problems.append("onnxruntime-gpu is installed in the cpu variant")
        if "CPUExecutionProvider" not in providers:
            problems.append(f"CPUExecutionProvider missing from {providers}")
    else:
        problems.append(f"unknown variant {variant!r} (gpu or cpu)")

    for statement in ("from insightface.utils import face_align", "import faiss", "import cv2"):
        try:
            exec(statement, {})  # noqa: S102 - fixed statements above
        except Exception as exc:  # report every failure, then fail once
            problems.append(f"`{statement}` failed: {type(exc).__name__}: {exc}")

    print(f"onnxruntime {onnxruntime.__version__} ({variant}): providers {providers}")
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "gpu"))
