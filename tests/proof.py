"""The runtime proof of a config: run the model with its own runtime on inputs shaped and typed
exactly as the config says (batched where it batches), and check the outputs against it."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from types import ModuleType

import numpy as np
import pytest

from packager.modelconfig import ParsedConfig

NUMPY = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "STRING": np.object_,
}
DYNAMIC_SIZE = 3  # what a -1 in dims becomes in a request


def require(module: str) -> ModuleType:
    """A framework the proof runs with. CI installs every one (nox -s tests), so there a
    missing framework fails; a developer's bare environment skips with the reason."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is installed by `nox -s tests`")


def _shape(config: ParsedConfig, reshapes: dict[str, tuple[int, ...]], name: str,
           dims: tuple[int, ...], batch: int) -> tuple[int, ...]:
    shape = reshapes.get(name, dims)  # what the backend hands the model
    lead = (batch,) if config.max_batch_size > 0 else ()
    return lead + tuple(DYNAMIC_SIZE if d < 0 else d for d in shape)


def request(config: ParsedConfig, batch: int) -> dict[str, np.ndarray]:
    reshapes = dict(config.input_reshapes)
    out = {}
    for name, datatype, dims in config.inputs:
        shape = _shape(config, reshapes, name, dims, batch)
        count = int(np.prod(shape)) if shape else 1
        dtype = NUMPY[datatype]
        if dtype is np.object_:
            arr = np.array(["triton"] * count, dtype=object).reshape(shape)
        else:
            arr = (np.arange(count) % 2).astype(dtype).reshape(shape)
        out[name] = arr
    return out


def check_response(config: ParsedConfig, outputs: Mapping[str, np.ndarray], batch: int) -> None:
    reshapes = dict(config.output_reshapes)
    assert set(outputs) >= {n for n, _, _ in config.outputs}, (sorted(outputs), config.outputs)
    for name, datatype, dims in config.outputs:
        got = np.asarray(outputs[name])
        declared = ((batch,) if config.max_batch_size > 0 else ()) + reshapes.get(name, dims)
        assert got.ndim == len(declared), (name, got.shape, declared)
        assert all(d < 0 or d == g for d, g in zip(declared, got.shape, strict=True)), (
            name, got.shape, declared)
        if NUMPY[datatype] is np.object_:
            assert got.dtype.kind in "OSU", (name, got.dtype)
        else:
            assert got.dtype == NUMPY[datatype], (name, got.dtype, datatype)


def batches(config: ParsedConfig) -> list[int]:
    """1 and a bigger batch within max_batch_size where the config batches; else one request."""
    if config.max_batch_size == 0:
        return [0]
    return sorted({1, min(3, config.max_batch_size), config.max_batch_size})


def prove(config: ParsedConfig, run: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]
          ) -> int:
    """Runs every batch size; returns how many requests ran."""
    n = 0
    for batch in batches(config):
        check_response(config, run(request(config, batch)), batch)
        n += 1
    return n


def onnxruntime_runner(path: str) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    ort = require("onnxruntime")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(None, inputs), strict=True))

    return run


def openvino_runner(path: str) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    ov = require("openvino")
    compiled = ov.Core().compile_model(path, "CPU")

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = compiled(inputs)
        return {port.get_any_name(): result[port] for port in compiled.outputs}

    return run
