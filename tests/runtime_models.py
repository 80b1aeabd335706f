"""Models and helpers for the `--serve-with runtime` tests: a real ONNX graph with a dynamic batch
dimension, samples files, and an in-process stand-in for triton_python_backend_utils so the
generated model.py runs without a server."""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

W = np.array([[1.0, -2.0, 0.5], [0.5, 0.0, 1.0], [0.0, 3.0, -1.0], [2.0, 1.0, 0.25]],
             dtype=np.float32)
B = np.array([0.25, -1.0, 2.0], dtype=np.float32)


def onnx_linear_model() -> bytes:
    """Y = X @ W + B with X float32[batch, 4] and Y float32[batch, 3]: a dynamic batch axis."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Y"])],
        "linear", [x], [y],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def onnx_unloadable_model() -> bytes:
    """A graph the packager's reader accepts (inputs, outputs) but ONNX Runtime cannot load:
    its one node is an operator no opset defines."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("NoSuchOperator", ["X"], ["Y"])], "bad", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def linear_samples(batches: tuple[int, ...] = (1, 3)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for i, n in enumerate(batches):
        x = rng.standard_normal((n, 4)).astype(np.float32)
        out[f"input.X.{i}"] = x
        out[f"output.Y.{i}"] = x @ W + B
    return out


class _Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class _Response:
    def __init__(self, output_tensors: list[_Tensor], error: Any = None) -> None:
        self.output_tensors, self.error = output_tensors, error

    def outputs(self) -> dict[str, np.ndarray]:
        return {t.name(): t.as_numpy() for t in self.output_tensors}


class _TritonError:
    def __init__(self, message: str) -> None:
        self._message = message

    def message(self) -> str:
        return self._message


class Request:
    def __init__(self, **tensors: np.ndarray) -> None:
        self.tensors = {n: _Tensor(n, a) for n, a in tensors.items()}


@contextmanager
def adapter(source: str, model_dir: Path) -> Iterator[tuple[Any, Callable[[], int]]]:
    """Load a generated model.py with a stand-in pb_utils; yields (model, calls) where calls()
    counts the runtime calls so far."""
    pb = types.ModuleType("triton_python_backend_utils")
    pb.Tensor = _Tensor  # type: ignore[attr-defined]
    pb.InferenceResponse = _Response  # type: ignore[attr-defined]
    pb.TritonError = _TritonError  # type: ignore[attr-defined]
    pb.get_input_tensor_by_name = lambda r, n: r.tensors.get(n)  # type: ignore[attr-defined]
    saved = sys.modules.get("triton_python_backend_utils")
    sys.modules["triton_python_backend_utils"] = pb
    try:
        namespace: dict[str, Any] = {"__name__": "generated_model"}
        exec(compile(source, "model.py", "exec"), namespace)
        model = namespace["TritonPythonModel"]()
        model.initialize({"model_repository": str(model_dir), "model_version": "1"})
        calls = [0]
        run = model._run

        def counted(feed: dict[str, np.ndarray]) -> Any:
            calls[0] += 1
            return run(feed)

        model._run = counted
        yield model, lambda: calls[0]
    finally:
        if saved is None:
            sys.modules.pop("triton_python_backend_utils", None)
        else:
            sys.modules["triton_python_backend_utils"] = saved


def direct_runner(backend_key: str, path: Path) -> Callable[[dict[str, np.ndarray]],
                                                           dict[str, np.ndarray]]:
    """The model file run by its runtime in this process, as a user would call it: the
    reference the served answers are compared with."""
    if backend_key == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return lambda feed: dict(zip(names, session.run(names, feed), strict=True))
    if backend_key == "openvino":
        import openvino

        compiled = openvino.Core().compile_model(str(path), "CPU")
        return lambda feed: {o.get_any_name(): v for o, v in compiled(feed).items()}
    import tensorflow as tf

    function = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda feed: {k: v.numpy() for k, v in
                         function(**{n: tf.constant(a) for n, a in feed.items()}).items()}
