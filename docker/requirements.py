"""Print the image's pip requirements, read from pyproject.toml (the one list of dependencies).

    python docker/requirements.py [--extras ai,...] [--onnxruntime gpu|cpu] [pyproject.toml]

`gpu` (the default) keeps ``onnxruntime-gpu`` and adds its ``cuda``/``cudnn`` extras: the CUDA and
cuDNN runtime libraries as pip wheels, since a slim image has none and the NVIDIA container runtime
only brings the driver. `cpu` swaps in ``onnxruntime`` and ``faiss-cpu`` at the same versions, for
hosts without an NVIDIA GPU (a smaller image).

insightface is deliberately absent: the Dockerfile installs it last, with ``--no-deps``, because its
declared ``onnxruntime``/``opencv-python`` would shadow ``onnxruntime-gpu`` (shared/DEPENDENCIES.md).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

GPU_ONLY = {"onnxruntime-gpu": "onnxruntime", "faiss-gpu": "faiss-cpu"}
GPU_EXTRAS = {"onnxruntime-gpu": "cuda,cudnn"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def _rewrite(requirement: str, variant: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"cannot parse requirement {requirement!r}")
    name, extras, rest = match.group(1), match.group(2) or "", match.group(3)
    key = name.lower().replace("_", "-")
    if variant == "cpu" and key in GPU_ONLY:
        return f"{GPU_ONLY[key]}{rest}"
    if variant == "gpu" and key in GPU_EXTRAS and not extras:
        return f"{name}[{GPU_EXTRAS[key]}]{rest}"
    return f"{name}{extras}{rest}"


def requirements(pyproject: Path, extras: list[str], variant: str) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted.extend(optional[extra])
    lines = [_rewrite(requirement, variant) for requirement in wanted]
    if any(line.lower().startswith("insightface") for line in lines):
        raise SystemExit("insightface must not be in pyproject's lists: the Dockerfile installs it --no-deps")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pyproject", nargs="?", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--extras", default="ai", help="comma-separated extras; '' for none")
    parser.add_argument("--onnxruntime", choices=("gpu", "cpu"), default="gpu")
    args = parser.parse_args(argv)
    extras = [extra.strip() for extra in args.extras.split(",") if extra.strip()]
    sys.stdout.write("\n".join(requirements(args.pyproject, extras, args.onnxruntime)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
