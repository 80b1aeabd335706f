"""Pure helpers for a smoke-test inference: request tensors from a config, output checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from packager.modelconfig import ParsedConfig

_NUMPY = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}
# config.pbtxt's TYPE_STRING is BYTES on the wire (Triton's protocol names it so).
_WIRE = {"STRING": "BYTES"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 = any


def request_specs(config: ParsedConfig) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Concrete input shapes (-1 → 1, batch dim 1 when batching) and expected output shapes."""
    batch = (1,) if config.max_batch_size > 0 else ()
    ins = tuple(TensorSpec(n, _WIRE.get(dt, dt), batch + tuple(1 if d < 0 else d for d in dims))
                for n, dt, dims in config.inputs)
    outs = tuple(TensorSpec(n, _WIRE.get(dt, dt), batch + tuple(dims))
                 for n, dt, dims in config.outputs)
    return ins, outs


MAX_ELEMENTS = 1 << 20  # a smoke test, not a load test: 1 Mi elements per input at most


def cannot_sample(spec: TensorSpec) -> str | None:
    """Why no request can be built for this input (None: it can)."""
    if spec.datatype not in _NUMPY:
        return f"input {spec.name} is {spec.datatype}, which the smoke request does not build"
    count = 1
    for d in spec.shape:
        count *= d
        if count > MAX_ELEMENTS:
            return (f"input {spec.name} has more than {MAX_ELEMENTS} elements "
                    f"({list(spec.shape)}); the smoke request stays small")
    return None


def sample(spec: TensorSpec) -> np.ndarray:
    dtype = _NUMPY[spec.datatype]
    count = int(np.prod(spec.shape)) if spec.shape else 1
    if dtype is np.object_:
        return np.array([b"triton"] * count, dtype=np.object_).reshape(spec.shape)
    return (np.arange(count) % 7).astype(dtype).reshape(spec.shape)


def shape_matches(expected: tuple[int, ...], got: tuple[int, ...]) -> bool:
    return len(expected) == len(got) and all(e < 0 or e == g for e, g in zip(expected, got, strict=False))
