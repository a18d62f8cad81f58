"""shared.onnx_sessions: the CUDA probe, the provider list and the session options, on a generated model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from shared import onnx_sessions  # noqa: E402
from shared.onnx_sessions import CPU, CUDA, cuda_usable, default_providers, open_session, session_options  # noqa: E402


def relu_model() -> bytes:
    helper, tensor = onnx.helper, onnx.TensorProto
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", tensor.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", tensor.FLOAT, [None, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every onnxruntime of the last years reads
    return bytes(model.SerializeToString())


def test_options_set_threads_and_let_idle_threads_sleep() -> None:
    options = session_options(3)
    assert options.intra_op_num_threads == 3
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options().intra_op_num_threads == 0  # onnxruntime's default: one per core


@pytest.mark.parametrize("libraries", [("libnot-a-cuda-driver.so.1",), ("libc.so.6",)], ids=["absent", "not-cuda"])
def test_a_listed_cuda_provider_without_a_driver_is_not_usable(
    monkeypatch: pytest.MonkeyPatch, libraries: tuple[str, ...]
) -> None:
    # onnxruntime-gpu lists CUDA whether or not a GPU answers: only the driver can say.
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(onnx_sessions, "_DRIVER_LIBRARIES", libraries)
    assert not cuda_usable()
    assert default_providers() == [CPU]


def test_cuda_is_not_asked_for_when_onnxruntime_lacks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    assert not cuda_usable()
    assert default_providers() == [CPU]


def test_a_session_runs_from_bytes_and_from_a_file(tmp_path: Path) -> None:
    model = relu_model()
    path = tmp_path / "relu.onnx"
    path.write_bytes(model)
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    for source in (model, path, str(path)):
        session = open_session(source, [CPU], threads=1)
        assert session.get_providers() == [CPU]
        np.testing.assert_array_equal(session.run(None, {"x": x})[0], [[0.0, 0.5, 2.0]])


def test_a_session_that_cannot_start_on_cuda_opens_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ort.InferenceSession
    asked: list[list[str]] = []

    def cuda_fails(source: Any, sess_options: Any, providers: list[str]) -> Any:
        asked.append(providers)
        if CUDA in providers:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(source, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", cuda_fails)
    session = open_session(relu_model(), [CUDA, CPU])
    assert asked == [[CUDA, CPU], [CPU]]
    assert session.get_providers() == [CPU]


def test_a_model_the_cpu_cannot_open_raises() -> None:
    with pytest.raises(Exception, match="protobuf"):
        open_session(b"not an onnx model", [CUDA, CPU])
