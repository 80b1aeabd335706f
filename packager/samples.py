"""`samples.npz`: inputs a model was given and the outputs it gave, shipped beside the model
file so that `verify` can check the served answers, not only that the server answers.

The format (numpy's `np.savez`, no pickles):

    input.<TENSOR>.<i>    the request tensor <TENSOR> of sample <i> (i = 0, 1, ...)
    output.<TENSOR>.<i>   what the model gave for output <TENSOR> on sample <i>

Every sample has every input the config lists, and at least one output. Tensors are whole
requests: with `max_batch_size > 0` their first dimension is the batch (1 to max_batch_size),
then the config's dims; data types are the config's (TYPE_FP32 -> float32, ...). Tensor names
may contain dots: the role is the text before the first dot, the index after the last one.

Pure: parsing, checks against a config and the comparison; reading files is the executor's.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from packager.errors import InputError, bounded
from packager.limits import SAMPLES_MAX_COUNT, SAMPLES_NAME
from packager.modelconfig import ParsedConfig

_KEY_RE = re.compile(r"(input|output)\.(.+)\.(0|[1-9][0-9]{0,5})")
_FIX = ("write it with np.savez(path, **{'input.NAME.0': x, 'output.NAME.0': y, ...}) "
        "(see README.md, \"Answers checked by verify\")")

_NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
          "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
          "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
# Default tolerances (rtol, atol) by data type: |served - expected| <= atol + rtol * |expected|.
# Integers and BOOL must be equal. FP32 leaves room for another runtime's summation order.
TOLERANCES = {"FP16": (1e-2, 1e-3), "BF16": (1e-2, 1e-2), "FP32": (1e-4, 1e-5),
              "FP64": (1e-7, 1e-9)}


@dataclass(frozen=True)
class Sample:
    index: int
    inputs: tuple[tuple[str, np.ndarray], ...]
    outputs: tuple[tuple[str, np.ndarray], ...]


def load(data: bytes, file: str = SAMPLES_NAME) -> dict[str, np.ndarray]:
    """The arrays of a samples file (no pickles: object arrays are refused)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"is not a numpy .npz file of plain arrays: "
                         f"{bounded(str(exc), 120, quote=False)}", file=file, fix=_FIX) from None


def parse(arrays: Mapping[str, np.ndarray], file: str = SAMPLES_NAME) -> tuple[Sample, ...]:
    found: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for key, value in arrays.items():
        m = _KEY_RE.fullmatch(key)
        if m is None:
            raise InputError(f"has array {bounded(key)}; names are input.<TENSOR>.<i> or "
                             "output.<TENSOR>.<i>", file=file, fix=_FIX)
        role, name, index = m.group(1), m.group(2), int(m.group(3))
        found.setdefault(index, {"input": {}, "output": {}})[role][name] = value
    if not found:
        raise InputError("holds no samples", file=file, fix=_FIX)
    if len(found) > SAMPLES_MAX_COUNT:
        raise InputError(f"holds {len(found)} samples; at most {SAMPLES_MAX_COUNT}", file=file,
                         fix="keep a few representative samples")
    if sorted(found) != list(range(len(found))):
        raise InputError(f"numbers its samples {sorted(found)[:10]}; they must be 0, 1, 2, ... "
                         "without gaps", file=file, fix=_FIX)
    return tuple(Sample(i, tuple(sorted(found[i]["input"].items())),
                        tuple(sorted(found[i]["output"].items()))) for i in sorted(found))


def _shape_ok(shape: tuple[int, ...], dims: tuple[int, ...], max_batch: int) -> bool:
    if max_batch > 0:
        if not shape or not 1 <= shape[0] <= max_batch:
            return False
        shape = shape[1:]
    return len(shape) == len(dims) and all(d < 0 or d == s for d, s in zip(dims, shape,
                                                                           strict=True))


def check(samples: tuple[Sample, ...], config: ParsedConfig, file: str = SAMPLES_NAME) -> None:
    """Every sample matches the config: names, data types, shapes (batch included)."""
    declared = {"input": {n: (dt, dims) for n, dt, dims in config.inputs},
                "output": {n: (dt, dims) for n, dt, dims in config.outputs}}
    for s in samples:
        names = {n for n, _ in s.inputs}
        missing = [n for n in declared["input"] if n not in names]
        if missing:
            raise InputError(f"sample {s.index} has no input.{missing[0]}.{s.index}; every "
                             "sample holds every input of config.pbtxt", file=file, fix=_FIX)
        if not s.outputs:
            raise InputError(f"sample {s.index} has no output; give the outputs the model "
                             "gave (output.<TENSOR>.<i>)", file=file, fix=_FIX)
        batch = None
        for role, tensors in (("input", s.inputs), ("output", s.outputs)):
            for name, array in tensors:
                key = f"{role}.{name}.{s.index}"
                if name not in declared[role]:
                    raise InputError(
                        f"{key}: config.pbtxt has no {role} {bounded(name)} (it has "
                        f"{', '.join(declared[role]) or 'none'})", file=file,
                        fix=f"name the {role}s as config.pbtxt does")
                datatype, dims = declared[role][name]
                want = _NUMPY.get(datatype)
                if want is None or array.dtype != np.dtype(want):
                    raise InputError(
                        f"{key} is {array.dtype}, config.pbtxt says TYPE_{datatype}", file=file,
                        fix=f"save it as {np.dtype(want).name if want else 'a supported type'}")
                shape = tuple(array.shape)
                # A request carries the config's dims (Triton applies any reshape itself).
                if not _shape_ok(shape, dims, config.max_batch_size):
                    batch_text = (f"[batch 1..{config.max_batch_size}] + "
                                  if config.max_batch_size > 0 else "")
                    raise InputError(
                        f"{key} has shape {list(shape)}, config.pbtxt says "
                        f"{batch_text}{list(dims)} (-1: any size)", file=file,
                        fix="save whole requests, shaped as the config says")
                if config.max_batch_size > 0:
                    if batch is not None and shape[0] != batch:
                        raise InputError(f"{key} has batch {shape[0]}, other tensors of sample "
                                         f"{s.index} have {batch}", file=file,
                                         fix="give every tensor of a sample the same batch size")
                    batch = shape[0]


@dataclass(frozen=True)
class Mismatch:
    tensor: str
    sample: int
    largest_error: float
    rtol: float
    atol: float
    where: tuple[int, ...]


def tolerance(datatype: str, rtol: float | None, atol: float | None) -> tuple[float, float]:
    """(rtol, atol) for a data type: the options where given, else the defaults by type."""
    default = TOLERANCES.get(datatype, (0.0, 0.0))
    if datatype not in TOLERANCES:  # integers and BOOL: equal, whatever the options say
        return default
    return (default[0] if rtol is None else rtol, default[1] if atol is None else atol)


def compare(name: str, index: int, datatype: str, got: np.ndarray, want: np.ndarray,
            rtol: float | None = None, atol: float | None = None) -> Mismatch | None:
    """None when `got` matches `want` within the tolerance of its data type."""
    r, a = tolerance(datatype, rtol, atol)
    if got.shape != want.shape:
        return Mismatch(name, index, float("inf"), r, a, ())
    g = got.astype(np.float64) if got.dtype != np.bool_ else got.astype(np.int8)
    w = want.astype(np.float64) if want.dtype != np.bool_ else want.astype(np.int8)
    err = np.abs(g - w)
    bad = ~(err <= a + r * np.abs(w))
    if not bad.any():
        return None
    worst = np.unravel_index(int(np.argmax(np.where(np.isnan(err), np.inf, err))), err.shape)
    return Mismatch(name, index, float(np.nanmax(err) if not np.isnan(err).all() else np.nan),
                    r, a, tuple(int(i) for i in worst))
