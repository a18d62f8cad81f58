"""ONNX Runtime sessions as the AI services (face, detect) open them: on CUDA only where a GPU really
answers, with the same thread settings, falling back to the CPU when CUDA cannot start.

Imports onnxruntime, which only the AI services install (the ``ai`` extra): no other process imports this.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort  # type: ignore[import-untyped]

__all__ = ["CPU", "CUDA", "cuda_usable", "default_providers", "open_session", "session_options"]

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

# The CUDA driver API, as Linux and Windows name it.
_DRIVER_LIBRARIES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")


def cuda_usable() -> bool:
    """True when onnxruntime has a CUDA provider *and* the driver reports a GPU.

    onnxruntime-gpu lists ``CUDAExecutionProvider`` even on machines without a GPU (or without a driver),
    so ask the driver directly (no torch needed) before requesting it.
    """
    return CUDA in ort.get_available_providers() and _cuda_device_count() > 0


def _cuda_device_count() -> int:
    for name in _DRIVER_LIBRARIES:
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
        except AttributeError:  # a library of that name that is no CUDA driver
            return 0
        return count.value
    return 0


def default_providers() -> list[str]:
    """``[CUDA, CPU]`` where CUDA is usable, else ``[CPU]``."""
    if not cuda_usable():
        return [CPU]
    # pip's nvidia-* wheels are not on the loader's path; onnxruntime knows where they are. If the libraries
    # are missing anyway, the session falls back to the CPU, which its get_providers() shows.
    with contextlib.suppress(OSError):
        ort.preload_dlls()
    return [CUDA, CPU]


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Options every session gets: ``threads`` intra-op threads (None: one per core) that sleep when idle."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # CUDA's fallback and placement notices are expected, not actionable
    if threads:
        options.intra_op_num_threads = threads
    # Idle intra-op threads spin for the next op by default, burning the cores that the other inference
    # threads, the image decoding and the other services need: on 2 shared cores that cut face's pipeline
    # from 16 to 4 faces/s.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def open_session(
    model: bytes | str | Path, providers: Sequence[str] | None = None, threads: int | None = None
) -> ort.InferenceSession:
    """A session on ``providers`` (default: ``default_providers()``) with ``session_options(threads)``.

    ``model`` is a file or a serialised model. When the session cannot start on the providers asked for, it
    is opened on the CPU alone (logged); a CPU session that cannot start raises onnxruntime's error.
    """
    requested = list(providers) if providers is not None else default_providers()
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=session_options(threads), providers=requested)
    except Exception:  # onnxruntime raises its own unexported exception types
        if requested == [CPU]:
            raise
        log.warning("could not start an onnxruntime session on %s, falling back to the CPU", requested, exc_info=True)
        return ort.InferenceSession(source, sess_options=session_options(threads), providers=[CPU])
