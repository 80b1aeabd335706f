"""What the model file itself declares: tensor names, Triton data types and dims, read offline.

Pure: every function takes the bytes or text the executor read (``InputTree.blobs``) and never
opens a file, imports a framework or runs the model. Formats:

- ONNX: the graph's inputs (initializers excluded, as ONNX Runtime does) and outputs, parsed
  with ``onnx`` from a skeleton (``onnx_skeleton``) cut by walking the wire format: weights,
  nodes and unknown fields are never copied, external data never read (only its location).
- OpenVINO IR: ``model.xml``'s Parameter and Result layers, streamed with ``defusedxml`` (no
  DTDs, no entities), the tensor names from the producing ports' ``names``.
- TensorFlow SavedModel: the ``serve`` MetaGraph's ``serving_default`` signature, decoded from
  a skeleton (``savedmodel_skeleton``: tags and signatures, no GraphDef) with a minimal copy of
  TensorFlow's SavedModel schema (field numbers stable since TF 1.x), so neither TensorFlow
  nor its import time is needed.
- TorchScript: only the names of ``forward``'s arguments (TorchScript stores no data types or
  shapes), from the class named in ``data.pkl``'s first opcodes and the header of its
  ``forward`` in the archive's ``code/`` -- read as text and opcodes, never unpickled.

Every reader works within the budgets below, checked as it reads. A model that cannot be read
this way yields a note; a file that is not what its name says, lies, or exceeds a budget is an
InputError naming the file; what a file cannot tell is a warning (``ModelSignature.warnings``).
"""

from __future__ import annotations

import ast
import io
import mmap
import pickletools
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from packager.errors import InputError, bounded

MAX_RANK = 64  # Triton's tensors and every framework here stay far below this
MAX_TENSORS = 10_000
MAX_DIM = (1 << 63) - 1
MAX_NAME = 1024

# Budgets of the readers, checked while they read (never after the whole file is in memory).
# Each is far above what a real exported model holds and far below what exhausts a small CI
# machine; a file beyond one is refused with the budget named, never read on "by luck".
# ONNX: protobuf fields walked in one message (a graph of 10 M nodes is 10 M fields; the walk is
# a generator, so this bounds time, not memory).
MAX_WIRE_FIELDS = 50_000_000
# ONNX: initializers walked (LLM exports hold a few thousand; only those a graph input names
# or kept externally are copied into the skeleton).
MAX_INITIALIZERS = 1_000_000
# ONNX / SavedModel: the skeleton cut from the model (names, shapes, external-data locations,
# signatures). A real one is kilobytes (an LLM with 1 000 external initializers: ~100 KiB);
# this stops unknown or huge fields, or millions of entries, from being copied in and parsed.
MAX_SKELETON_BYTES = 8 << 20
# ONNX external_data: key/value pairs per initializer (location, offset, length, checksum).
MAX_EXTERNAL_ENTRIES = 16
# ONNX: nesting of an input or output type (sequence of map of ...); Triton serves tensors, so
# anything nested is refused later anyway -- this names it before protobuf's recursion limit.
MAX_TYPE_NESTING = 16
# OpenVINO XML: element nesting (a real IR is 6 deep) and elements (a 70 B-parameter IR has a
# few hundred thousand); digits of one dimension (int64 has 19).
MAX_XML_DEPTH = 64
MAX_XML_ELEMENTS = 5_000_000
MAX_OV_LAYERS = 1_000_000  # each kept as a few small elements (names and types of its ports)
MAX_DIM_DIGITS = 19
# TorchScript: opcodes scanned for data.pkl's first class (torch writes it within the first
# few); strings are not collected, only the last two kept.
MAX_PICKLE_OPS = 100_000
# TorchScript: the bytes of the one code file searched for forward (held, never parsed whole),
# and the characters of forward's header that are parsed (a real one is a few hundred).
MAX_CODE_BYTES = 8 << 20
MAX_SIGNATURE_CHARS = 64 << 10

# Triton data types (ModelConfig's TYPE_* without the prefix, as ParsedConfig keeps them).
_ONNX_TYPES = {
    1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "STRING", 9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64", 16: "BF16",
}
_OV_TYPES = {
    "f32": "FP32", "f16": "FP16", "bf16": "BF16", "f64": "FP64", "i8": "INT8", "i16": "INT16",
    "i32": "INT32", "i64": "INT64", "u8": "UINT8", "u16": "UINT16", "u32": "UINT32",
    "u64": "UINT64", "boolean": "BOOL", "string": "STRING",
}
_OV_PRECISIONS = {
    "FP32": "FP32", "FP16": "FP16", "BF16": "BF16", "FP64": "FP64", "I8": "INT8", "I16": "INT16",
    "I32": "INT32", "I64": "INT64", "U8": "UINT8", "U16": "UINT16", "U32": "UINT32",
    "U64": "UINT64", "BOOL": "BOOL", "STRING": "STRING",
}
_TF_TYPES = {
    1: "FP32", 2: "FP64", 3: "INT32", 4: "UINT8", 5: "INT16", 6: "INT8", 7: "STRING", 9: "INT64",
    10: "BOOL", 14: "BF16", 17: "UINT16", 19: "FP16", 22: "UINT32", 23: "UINT64",
}


@dataclass(frozen=True)
class TensorSig:
    name: str
    datatype: str | None  # "FP32", ...; None where the format does not say (TorchScript)
    dims: tuple[int, ...] | None  # -1 = dynamic or symbolic; None = rank unknown
    aliases: tuple[str, ...] = ()  # other names of the same tensor (OpenVINO ports)

    def answers_to(self, name: str) -> bool:
        return name == self.name or name in self.aliases


@dataclass(frozen=True)
class ModelSignature:
    file: str  # the file messages name, e.g. "model.onnx"
    format: str  # "ONNX", "OpenVINO IR", "TensorFlow SavedModel", "TorchScript"
    inputs: tuple[TensorSig, ...]
    outputs: tuple[TensorSig, ...] | None  # None: the format does not name its outputs
    names_only: bool = False  # TorchScript: argument names, nothing else
    # ONNX: the external-data files the model names, relative to the model file's directory,
    # with the bytes its tensors need of each (checked to stay inside the directory here; to
    # exist, that long, against the input tree by configgen).
    external: tuple[tuple[str, int], ...] = ()
    # What the packager cannot tell from the file and does not guess (shown as warnings).
    warnings: tuple[str, ...] = ()

    @property
    def batchable(self) -> bool:
        """Every input and output has a dynamic first dimension (Triton's own test)."""
        tensors = (*self.inputs, *(self.outputs or ()))
        return bool(tensors) and self.outputs is not None and all(
            t.dims is not None and len(t.dims) > 0 and t.dims[0] == -1 for t in tensors)

    def input(self, name: str) -> TensorSig | None:
        return next((t for t in self.inputs if t.answers_to(name)), None)

    def output(self, name: str) -> TensorSig | None:
        return next((t for t in self.outputs or () if t.answers_to(name)), None)


def _not_a(file: str, what: str, detail: str, fix: str) -> InputError:
    return InputError(f"is not {what} ({bounded(detail, 160, quote=False)})", file=file, fix=fix)


def _check_name(file: str, name: str | bytes, role: str) -> str:
    if isinstance(name, bytes):  # protobuf hands proto2 strings that are not UTF-8 as bytes
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"has an {role} name that is not UTF-8 ({bounded(name)}, byte "
                             f"{exc.start})", file=file,
                             fix="give the tensor a UTF-8 name when exporting the model") from None
    if not name:
        raise InputError(f"has an {role} without a name", file=file,
                         fix="name every input and output tensor when exporting the model")
    if len(name) > MAX_NAME:
        raise InputError(f"has an {role} name of {len(name)} characters ({bounded(name)}); at "
                         f"most {MAX_NAME} are accepted", file=file,
                         fix="give the tensor a short name when exporting the model")
    return name


def _check_dims(file: str, name: str, dims: list[int]) -> tuple[int, ...]:
    if len(dims) > MAX_RANK:
        raise InputError(f"tensor {bounded(name)} has {len(dims)} dimensions; at most "
                         f"{MAX_RANK} are accepted", file=file,
                         fix="check that this is the intended model file")
    for d in dims:
        if d > MAX_DIM:
            raise InputError(f"tensor {bounded(name)} has dimension {bounded(d, 40)}, beyond "
                             "int64", file=file, fix="check that this is the intended model file")
        if d < -1:  # -1 is every format's "unknown"; -5 is no dimension at all, never dynamic
            raise InputError(f"tensor {bounded(name)} has dimension {d}, neither a size nor -1 "
                             "(dynamic)", file=file,
                             fix="check that this is the intended model file")
    return tuple(dims)


def _check_unique(file: str, tensors: tuple[TensorSig, ...], role: str) -> None:
    """A config that declares a tensor twice is refused by Triton; the model is the cause."""
    seen: set[str] = set()
    for t in tensors:
        for n in (t.name, *t.aliases):
            if n in seen:
                raise InputError(f"declares the {role} name {bounded(n)} twice", file=file,
                                 fix="give every input and output tensor a distinct name when "
                                 "exporting the model")
        seen.update((t.name, *t.aliases))


def _unshaped(file: str, tensors: tuple[TensorSig, ...]) -> tuple[str, ...]:
    """A tensor of unknown rank: its dims in a given config cannot be checked -- said, not
    guessed (a generated config is refused for it)."""
    return tuple(f"{file}: tensor {bounded(t.name)} declares no shape; the dims config.pbtxt "
                 "gives it are not checked against the model" for t in tensors if t.dims is None)


def _check_count(file: str, n: int, role: str) -> None:
    if n > MAX_TENSORS:
        raise InputError(f"declares {n} {role}s; at most {MAX_TENSORS} are accepted", file=file,
                         fix="check that this is the intended model file")


# -- ONNX --------------------------------------------------------------------------------------

class _Malformed(ValueError):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed(f"bad varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _wire_fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each field in buf[start:end]; for varints and
    fixed-size fields the span is the encoded value. A generator: a graph of millions of nodes
    is walked, never listed."""
    pos = start
    count = 0
    while pos < end:
        count += 1
        if count > MAX_WIRE_FIELDS:
            raise _Malformed(f"more than {MAX_WIRE_FIELDS} fields in one message (byte {pos})")
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Malformed(f"field number 0 at byte {pos}")
        if wire == 0:
            _, after = _varint(buf, pos, end)
        elif wire == 1:
            after = pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            after = pos + length
        elif wire == 5:
            after = pos + 4
        else:
            raise _Malformed(f"wire type {wire} at byte {pos}")
        if after > end:
            raise _Malformed(f"field {number} runs past the end (byte {after} of {end})")
        yield number, wire, pos, after
        pos = after


def _key(number: int, wire: int) -> bytes:
    tag, out = number << 3 | wire, bytearray()
    while True:
        byte, tag = tag & 0x7F, tag >> 7
        out.append(byte | (0x80 if tag else 0))
        if not tag:
            return bytes(out)


def _delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _len(len(payload)) + payload


def _len(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def onnx_skeleton(buf: memoryview | bytes | mmap.mmap, file: str = "model.onnx") -> bytes:
    """A small ModelProto holding what ``read_onnx`` needs -- the model's IR version and opsets,
    and of the graph its inputs and outputs (name and type only), and of its initializers only
    those that matter: the ones a graph input names (they are not inputs to serve) and the ones
    kept in external data (their location is checked) -- cut from a serialized model by walking
    the protobuf wire format. Everything else (weights, nodes, doc strings, metadata, functions,
    fields unknown here, the names of a million initializers) is skipped, never copied: the
    executor hands this a memory map of a model.onnx of any size, and the skeleton stays within
    MAX_SKELETON_BYTES. Raises InputError when the bytes are not protobuf or a budget is
    exceeded."""
    view = memoryview(buf)
    size = 0

    def add(out: bytearray, piece: bytes, at: int) -> None:
        nonlocal size
        size += len(piece)
        if size > MAX_SKELETON_BYTES:
            raise _Malformed(f"the graph's inputs, outputs and initializer names exceed "
                             f"{MAX_SKELETON_BYTES} bytes (at byte {at})")
        out += piece

    def tensor(start: int, end: int, inputs: set[bytes]) -> bytes | None:
        """TensorProto's name (8), external_data (13) and data_location (14), never its data;
        None when neither a graph input nor external."""
        kept = bytearray()
        name, external, entries = b"", False, 0
        for n, w, s, e in _wire_fields(view, start, end):
            if n == 8 and w == 2:
                name = bytes(view[s:e])
            elif n == 13:
                entries += 1
                if entries > MAX_EXTERNAL_ENTRIES:
                    raise _Malformed(f"more than {MAX_EXTERNAL_ENTRIES} external_data entries "
                                     f"in one initializer (byte {s})")
            elif n == 14 and w == 0:
                external = _varint(view, s, e)[0] == 1  # TensorProto.EXTERNAL
            if n in (8, 13, 14):
                kept += _encode(n, w, view, s, e)
        return bytes(kept) if external or name in inputs else None

    try:
        model = bytearray()
        for number, wire, start, end in _wire_fields(view, 0, len(view)):
            if number in (1, 8):  # ModelProto.ir_version, opset_import
                add(model, _encode(number, wire, view, start, end), start)
            if number != 7 or wire != 2:  # ModelProto.graph
                continue
            graph = bytearray()
            inputs: set[bytes] = set()
            for g_no, g_wire, g_start, g_end in _wire_fields(view, start, end):
                if g_no in (11, 12) and g_wire == 2:  # input, output: name (1), type (2)
                    for n, w, s, e in _wire_fields(view, g_start, g_end):
                        if n == 2 and w == 2:
                            _type_depth(view, s, e, 1)
                    value = _only_fields(view, g_start, g_end, {1, 2})
                    add(graph, _delimited(g_no, value), g_start)
                    if g_no == 11:
                        inputs.update(bytes(view[s:e]) for n, w, s, e in
                                      _wire_fields(view, g_start, g_end) if n == 1 and w == 2)
            # Initializers may come before the inputs: a second walk, once the names are known.
            initializers = 0
            for g_no, g_wire, g_start, g_end in _wire_fields(view, start, end):
                if g_no not in (5, 15) or g_wire != 2:  # initializer, sparse_initializer
                    continue
                initializers += 1
                if initializers > MAX_INITIALIZERS:
                    raise _Malformed(f"more than {MAX_INITIALIZERS} initializers "
                                     f"(byte {g_start})")
                if g_no == 5:
                    kept = tensor(g_start, g_end, inputs)
                    if kept is not None:
                        add(graph, _delimited(5, kept), g_start)
                    continue
                values = [tensor(v[2], v[3], inputs) for v in _wire_fields(view, g_start, g_end)
                          if v[0] == 1 and v[1] == 2]  # SparseTensorProto.values
                inner = b"".join(_delimited(1, v) for v in values if v is not None)
                if inner:
                    add(graph, _delimited(15, inner), g_start)
            model += _delimited(7, bytes(graph))
        return bytes(model)
    except _Malformed as exc:
        raise InputError(f"is not an ONNX model the packager can read ({exc})",
                         file=file,
                         fix="give the model as exported by torch.onnx.export, tf2onnx or "
                         "onnx.save (a binary ModelProto)") from None
    finally:
        view.release()


def _type_depth(view: memoryview, start: int, end: int, depth: int) -> None:
    """Walk a TypeProto's nesting (sequence 4, map 5 value 2, optional 9, each holding another
    TypeProto) within MAX_TYPE_NESTING, so a type nested 400 deep is refused by name here
    rather than as protobuf's anonymous recursion-limit error."""
    if depth > MAX_TYPE_NESTING:
        raise _Malformed(f"an input or output type nested more than {MAX_TYPE_NESTING} deep "
                         f"(byte {start})")
    for n, w, s, e in _wire_fields(view, start, end):
        if w == 2 and n in (4, 5, 9):  # Sequence.elem_type 1, Map.value_type 2, Optional 1
            inner = 2 if n == 5 else 1
            for n2, w2, s2, e2 in _wire_fields(view, s, e):
                if n2 == inner and w2 == 2:
                    _type_depth(view, s2, e2, depth + 1)


def _encode(number: int, wire: int, view: memoryview, start: int, end: int) -> bytes:
    if wire == 2:
        return _delimited(number, bytes(view[start:end]))
    return _key(number, wire) + bytes(view[start:end])


def _only_fields(view: memoryview, start: int, end: int, keep: set[int]) -> bytes:
    return b"".join(_encode(n, w, view, s, e) for n, w, s, e in _wire_fields(view, start, end)
                    if n in keep)


def read_onnx(data: bytes, file: str = "model.onnx") -> ModelSignature:
    """The graph's inputs and outputs. External data is never loaded (only the graph file)."""
    import onnx
    from google.protobuf.message import DecodeError

    fix = ("give the model as exported by torch.onnx.export, tf2onnx or onnx.save "
           "(a binary ModelProto)")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError, TypeError) as exc:
        raise _not_a(file, "an ONNX model", f"protobuf: {exc}", fix) from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise _not_a(file, "an ONNX model", "no IR version or no graph in it", fix)
    graph = model.graph
    initializers = {i.name for i in graph.initializer} | {
        i.values.name for i in graph.sparse_initializer}
    _check_count(file, len(graph.input), "input")
    _check_count(file, len(graph.output), "output")
    external = _external_locations(
        file, [*graph.initializer, *(i.values for i in graph.sparse_initializer)])

    def tensor(vi: Any, role: str) -> TensorSig:
        name = _check_name(file, vi.name, role)
        which = vi.type.WhichOneof("value")
        if which != "tensor_type":
            raise InputError(
                f"{role} {bounded(name)} is of ONNX type {which or 'unset'}, not a tensor; "
                "Triton's ONNX Runtime backend serves tensors only", file=file,
                fix="export the model with tensor inputs and outputs")
        tt = vi.type.tensor_type
        datatype = _ONNX_TYPES.get(tt.elem_type)
        if datatype is None:
            raise InputError(
                f"{role} {bounded(name)} has ONNX element type "
                f"{onnx.TensorProto.DataType.Name(tt.elem_type) if tt.elem_type in onnx.TensorProto.DataType.values() else tt.elem_type}"  # noqa: E501
                ", which Triton has no data type for", file=file,
                fix="cast it to a supported type (float, float16, bfloat16, double, (u)int8..64, "
                "bool, string) when exporting")
        dims = None
        if tt.HasField("shape"):
            dims = _check_dims(file, name, [
                d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim])
        return TensorSig(name, datatype, dims)

    inputs = tuple(tensor(vi, "input") for vi in graph.input if vi.name not in initializers)
    outputs = tuple(tensor(vi, "output") for vi in graph.output)
    if not outputs:
        raise InputError("the ONNX graph has no outputs; Triton has nothing to return", file=file,
                         fix="export the model with its outputs (torch.onnx.export output_names=...)")
    _check_unique(file, inputs, "input")
    _check_unique(file, outputs, "output")
    return ModelSignature(file, "ONNX", inputs, outputs, external=external,
                          warnings=_unshaped(file, (*inputs, *outputs)))


def _external_locations(file: str, tensors: list[Any]) -> tuple[tuple[str, int], ...]:
    """The files external-data initializers name, each with the bytes the tensors need of it
    (the largest offset + length). ONNX Runtime opens them relative to the model file's
    directory, so one outside it (absolute, or climbing out with ..) would be read from
    wherever the server runs -- or not at all in the image: refused, as are offsets and
    lengths that are not numbers."""
    fix = ("save the model with onnx.save_model(..., save_as_external_data=True, "
           "location='weights.bin') so the weights sit beside it")
    out: dict[str, int] = {}
    for t in tensors:
        if t.data_location != 1:  # TensorProto.EXTERNAL
            continue
        name = _check_name(file, t.name, "initializer")
        entries: dict[str, str] = {}
        for e in t.external_data:
            key = _check_name(file, e.key, "external-data key")
            entries[key] = _check_name(file, e.value, "external-data value") if e.value else ""
        where = entries.get("location")
        if not where:
            raise InputError(f"initializer {bounded(name)} has external data without a location",
                             file=file, fix=fix)
        parts = where.replace("\\", "/").split("/")
        if where.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", where) or ".." in parts:
            raise InputError(f"initializer {bounded(name)} keeps its data in {bounded(where)}, "
                             "outside the model's directory", file=file, fix=fix)
        extent = []
        for key in ("offset", "length"):
            text = entries.get(key, "0") or "0"
            if not (text.isascii() and text.isdigit() and len(text) <= MAX_DIM_DIGITS):
                raise InputError(f"initializer {bounded(name)} has external-data {key} "
                                 f"{bounded(text, 40)}, not a number", file=file, fix=fix)
            extent.append(int(text))
        loc = "/".join(p for p in parts if p not in ("", "."))
        out[loc] = max(out.get(loc, 0), extent[0] + extent[1])
    return tuple(out.items())


# -- OpenVINO IR -------------------------------------------------------------------------------

# A dimension as OpenVINO writes it: a number, -1 or ? (dynamic), or an interval (1..8, ..8, 1..),
# which Triton can only declare as -1. ASCII digits only: int() would read '٣' as 3.
_OV_DIM_RE = re.compile(r"(-1|\?|[0-9]*\.\.[0-9]*|[0-9]+)")
# pugixml, OpenVINO's parser, reads UTF-8 only: a file declared otherwise means something else
# to it than to Python's parser.
_OV_ENCODING_RE = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([^\"']{0,80})")
_OV_ENCODINGS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def _ov_dim(file: str, name: str, text: str) -> int:
    text = text.strip()
    if not _OV_DIM_RE.fullmatch(text) or (text.isdigit() and len(text) > MAX_DIM_DIGITS):
        beyond = _OV_DIM_RE.fullmatch(text) is not None
        raise InputError(
            f"tensor {bounded(name)} has dimension {bounded(text, 40)}, "
            + ("beyond int64" if beyond else "which is not a number, -1, ? or an interval a..b"),
            file=file, fix="convert the model again with openvino.save_model (or ovc)")
    if not text.isdigit():
        return -1
    value = int(text)
    if value > MAX_DIM:
        raise InputError(f"tensor {bounded(name)} has dimension {bounded(text, 40)}, beyond int64",
                         file=file, fix="convert the model again with openvino.save_model")
    return value


def _ov_dims(file: str, name: str, port: Any, layer: Any, *, parameter: bool
             ) -> tuple[int, ...] | None:
    dims = port.findall("dim") if port is not None else []
    data = layer.find("data")
    shape_attr = data.get("shape") if data is not None else None
    if len(dims) > MAX_RANK:
        return _check_dims(file, name, [0] * len(dims))
    if not dims and shape_attr is not None:
        if shape_attr.strip() == "...":
            return None  # dynamic rank
        parts = shape_attr.split(",") if shape_attr.strip() else []
        if len(parts) > MAX_RANK:
            return _check_dims(file, name, [0] * len(parts))
        return _check_dims(file, name, [_ov_dim(file, name, p) for p in parts])
    if not dims and parameter:
        # A real IR writes shape="" for a scalar: no shape at all is not a scalar, it is unknown.
        raise InputError(f"input {bounded(name)} declares no shape (no <data shape=...> and no "
                         "<dim> on its port)", file=file,
                         fix="convert the model again with openvino.save_model (or ovc), or "
                         "give the input a shape")
    return _check_dims(file, name, [_ov_dim(file, name, d.text or "") for d in dims])


def _ov_parse(xml: bytes, file: str, fix: str) -> tuple[
        dict[str | None, Any], list[tuple[str | None, str | None, str | None, str | None]]]:
    """Layers and edges of an IR, streamed: Parameter and Result layers are kept whole, every
    other layer only as its name and output ports' names and types, and each element is
    dropped once read, so memory follows the number of layers, not the size of the XML.
    Depth and element count are checked as the parser goes."""
    import xml.etree.ElementTree as ET
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    if xml[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InputError("is UTF-16 (it starts with a byte order mark); OpenVINO reads UTF-8 "
                         "only", file=file, fix="save model.xml as UTF-8")
    declared = _OV_ENCODING_RE.match(xml)
    if declared and declared.group(1).decode("latin-1").strip().lower() not in _OV_ENCODINGS:
        raise InputError(f"declares encoding {bounded(declared.group(1).decode('latin-1'))}; "
                         "OpenVINO reads UTF-8 only", file=file,
                         fix="save model.xml as UTF-8 (encoding=\"UTF-8\" or no declaration)")
    layers: dict[str | None, Any] = {}
    edges: list[tuple[str | None, str | None, str | None, str | None]] = []
    stack: list[Any] = []
    count = 0
    try:
        for event, el in DET.iterparse(io.BytesIO(xml), events=("start", "end"),
                                       forbid_dtd=True, forbid_entities=True,
                                       forbid_external=True):
            if event == "start":
                count += 1
                if len(stack) >= MAX_XML_DEPTH or count > MAX_XML_ELEMENTS:
                    what = (f"elements nested more than {MAX_XML_DEPTH} deep"
                            if len(stack) >= MAX_XML_DEPTH
                            else f"more than {MAX_XML_ELEMENTS} elements")
                    raise InputError(f"holds {what} (at <{bounded(el.tag, 40, quote=False)}>)",
                                     file=file, fix=fix)
                if not stack and el.tag != "net":
                    raise _not_a(file, "OpenVINO IR XML", f"root element <{el.tag[:40]}>, not "
                                 "<net>", fix)
                stack.append(el)
                continue
            stack.pop()
            if len(stack) != 2:
                continue
            section = stack[1].tag
            if section == "layers" and el.tag == "layer":
                lid = el.get("id")
                if lid in layers:
                    raise InputError(f"has two layers with id {bounded(lid)}", file=file,
                                     fix=fix)
                if el.get("type") in ("Parameter", "Result"):
                    layers[lid] = el
                else:  # keep what a Result may need of its producer: names and types
                    small = ET.Element("layer", {k: v for k, v in el.attrib.items()
                                                 if k in ("id", "name", "type")})
                    data = el.find("data")
                    if data is not None and data.get("element_type") is not None:
                        ET.SubElement(small, "data", element_type=data.get("element_type", ""))
                    out = el.find("output")
                    if out is not None:
                        section_el = ET.SubElement(small, "output")
                        for p in out.findall("port"):
                            ET.SubElement(section_el, "port", {
                                k: v for k, v in p.attrib.items()
                                if k in ("id", "names", "precision")})
                    layers[lid] = small
                    el.clear()
                if len(layers) > MAX_OV_LAYERS:
                    raise InputError(f"declares more than {MAX_OV_LAYERS} layers",
                                     file=file, fix=fix)
            elif section == "edges" and el.tag == "edge":
                edges.append((el.get("from-layer"), el.get("from-port"), el.get("to-layer"),
                              el.get("to-port")))
                el.clear()
            else:
                el.clear()
            del stack[1][:]  # every earlier sibling is read: drop them
    except DefusedXmlException as exc:
        raise InputError(f"is refused: {bounded(type(exc).__name__, quote=False)} (DTDs and "
                         "entities are not read, they can expand without bound)", file=file,
                         fix=fix) from None
    except (ParseError, ValueError, LookupError, UnicodeError) as exc:
        raise _not_a(file, "OpenVINO IR XML", str(exc), fix) from None
    if not layers and not edges and count == 0:
        raise _not_a(file, "OpenVINO IR XML", "no element", fix)
    return layers, edges


def read_openvino(xml: bytes, file: str = "model.xml") -> ModelSignature:
    """Parameter layers are inputs, Result layers outputs; names are the tensor names OpenVINO
    gives the ports (what the Triton OpenVINO backend matches), falling back to layer names."""
    fix = "give the model.xml written by openvino.save_model (or ovc / mo) beside its model.bin"
    layers, edges = _ov_parse(xml, file, fix)
    producer: dict[tuple[str | None, str | None], tuple[str | None, str | None]] = {}
    for from_layer, from_port, to_layer, to_port in edges:
        for lid in (from_layer, to_layer):
            if lid not in layers:
                raise InputError(f"has an edge from layer {bounded(from_layer)} to layer "
                                 f"{bounded(to_layer)}, but no layer has id {bounded(lid)}",
                                 file=file, fix=fix)
        producer[(to_layer, to_port)] = (from_layer, from_port)

    def port(layer: Any, section: str, port_id: str | None = None) -> Any:
        sec = layer.find(section)
        ports = sec.findall("port") if sec is not None else []
        if port_id is None:
            return ports[0] if ports else None
        return next((p for p in ports if p.get("id") == port_id), None)

    def names(raw: str | None, fallback: str) -> tuple[str, ...]:
        # OpenVINO's get_any_name() is the smallest of a port's names: listed first here.
        found = sorted({n.strip().replace("\\,", ",") for n in re.split(r"(?<!\\),", raw)
                        if n.strip()}) if raw else []
        return tuple(found) or (fallback,)

    def dtype(layer: Any, p: Any, name: str) -> str:
        data = layer.find("data")
        et = data.get("element_type") if data is not None else None
        got = _OV_TYPES.get(et or "") or _OV_PRECISIONS.get((p.get("precision") or "").upper()
                                                            if p is not None else "")
        if got is None:
            raise InputError(f"tensor {bounded(name)} has OpenVINO element type "
                             f"{bounded(et or (p.get('precision') if p is not None else None))}, "
                             "which Triton has no data type for", file=file,
                             fix="convert the model with a supported element type")
        return got

    inputs, outputs = [], []
    for lid, layer in layers.items():
        kind = layer.get("type")
        if kind == "Parameter":
            p = port(layer, "output")
            all_names = names(p.get("names") if p is not None else None, layer.get("name") or "")
            name = _check_name(file, all_names[0], "input")
            inputs.append(TensorSig(name, dtype(layer, p, name),
                                    _ov_dims(file, name, p, layer, parameter=True),
                                    all_names[1:]))
        elif kind == "Result":
            p_in = port(layer, "input")
            src = producer.get((lid, p_in.get("id") if p_in is not None else None))
            if src is None:  # OpenVINO refuses an IR with a dangling Result at load
                raise InputError(f"Result layer {bounded(layer.get('name') or lid)} has no "
                                 "incoming edge", file=file, fix=fix)
            src_layer = layers.get(src[0])
            src_port = port(src_layer, "output", src[1]) if src_layer is not None and src else None
            fallback = (src_layer.get("name") if src_layer is not None else None) or \
                layer.get("name") or ""
            raw = layer.get("output_names") or (
                src_port.get("names") if src_port is not None else None)
            all_names = names(raw, fallback)
            name = _check_name(file, all_names[0], "output")
            p_shape = p_in if p_in is not None else src_port
            dt = dtype(src_layer, src_port, name) if src_layer is not None and (
                src_port is not None and src_port.get("precision")) else dtype(layer, p_in, name)
            outputs.append(TensorSig(name, dt,
                                     _ov_dims(file, name, p_shape, layer, parameter=False),
                                     all_names[1:]))
        _check_count(file, len(inputs) + len(outputs), "tensor")
    if not outputs:
        raise InputError("the OpenVINO model has no Result layer (no outputs)", file=file, fix=fix)
    _check_unique(file, tuple(inputs), "input")
    _check_unique(file, tuple(outputs), "output")
    return ModelSignature(file, "OpenVINO IR", tuple(inputs), tuple(outputs),
                          warnings=_unshaped(file, (*inputs, *outputs)))


# -- TensorFlow SavedModel --------------------------------------------------------------------

_TF_CLASSES: dict[str, Any] = {}


def _tf_saved_model_class() -> Any:
    """A minimal SavedModel message: only the fields on the way to the signatures. Every other
    field (the graph, variables, assets) is skipped as unknown, so nothing of it is interpreted."""
    if "SavedModel" in _TF_CLASSES:
        return _TF_CLASSES["SavedModel"]
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="triton_packager_savedmodel_subset.proto",
                                             package="tpsubset", syntax="proto3")

    def msg(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".tpsubset.{type_name}"

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    # Names are read as bytes and decoded here: a name that is not UTF-8 is then blamed on
    # saved_model.pb with its bytes shown, not reported as an unparseable message.
    msg("Dim", ("size", 1, F.TYPE_INT64, opt, ""))
    msg("TensorShape", ("dim", 2, F.TYPE_MESSAGE, rep, "Dim"),
        ("unknown_rank", 3, F.TYPE_BOOL, opt, ""))
    msg("TensorInfo", ("dtype", 2, F.TYPE_INT32, opt, ""),
        ("tensor_shape", 3, F.TYPE_MESSAGE, opt, "TensorShape"))
    msg("TensorInfoEntry", ("key", 1, F.TYPE_BYTES, opt, ""),
        ("value", 2, F.TYPE_MESSAGE, opt, "TensorInfo"))
    msg("SignatureDef", ("inputs", 1, F.TYPE_MESSAGE, rep, "TensorInfoEntry"),
        ("outputs", 2, F.TYPE_MESSAGE, rep, "TensorInfoEntry"),
        )
    msg("SignatureEntry", ("key", 1, F.TYPE_BYTES, opt, ""),
        ("value", 2, F.TYPE_MESSAGE, opt, "SignatureDef"))
    msg("MetaInfoDef", ("tags", 4, F.TYPE_BYTES, rep, ""))
    msg("MetaGraphDef", ("meta_info_def", 1, F.TYPE_MESSAGE, opt, "MetaInfoDef"),
        ("signature_def", 5, F.TYPE_MESSAGE, rep, "SignatureEntry"))
    msg("SavedModel", ("saved_model_schema_version", 1, F.TYPE_INT64, opt, ""),
        ("meta_graphs", 2, F.TYPE_MESSAGE, rep, "MetaGraphDef"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    for name in ("SavedModel", "MetaGraphDef", "SignatureDef", "TensorInfo"):
        _TF_CLASSES[name] = message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"tpsubset.{name}"))
    return _TF_CLASSES["SavedModel"]


SERVE_TAG = "serve"
SERVING_SIGNATURE = "serving_default"


def savedmodel_skeleton(buf: memoryview | bytes | mmap.mmap,
                        file: str = "model.savedmodel/saved_model.pb") -> bytes:
    """A small SavedModel holding of each MetaGraph only its tags and signatures, cut by walking
    the wire format: the GraphDef, the object graph and the asset lists -- nearly all of a
    saved_model.pb, which can be gigabytes -- are skipped, never copied. The executor hands this
    a memory map. Raises InputError when the bytes are not protobuf or the skeleton would exceed
    MAX_SKELETON_BYTES."""
    view = memoryview(buf)
    try:
        out = bytearray()
        for number, wire, start, end in _wire_fields(view, 0, len(view)):
            if number == 1 and wire == 0:  # saved_model_schema_version
                out += _encode(number, wire, view, start, end)
            if number != 2 or wire != 2:  # meta_graphs
                continue
            meta = bytearray()
            for m_no, m_wire, m_start, m_end in _wire_fields(view, start, end):
                if m_no == 1 and m_wire == 2:  # meta_info_def: its tags (4) only
                    meta += _delimited(1, _only_fields(view, m_start, m_end, {4}))
                elif m_no == 5 and m_wire == 2:  # signature_def
                    meta += _encode(m_no, m_wire, view, m_start, m_end)
                if len(out) + len(meta) > MAX_SKELETON_BYTES:
                    raise _Malformed(f"the signatures exceed {MAX_SKELETON_BYTES} bytes "
                                     f"(at byte {m_start})")
            out += _delimited(2, bytes(meta))
        return bytes(out)
    except _Malformed as exc:
        raise _not_a(file, "a TensorFlow SavedModel", f"malformed protobuf: {exc}",
                     "give the SavedModel written by tf.saved_model.save or model.export"
                     ) from None
    finally:
        view.release()


def read_savedmodel(data: bytes, file: str = "model.savedmodel/saved_model.pb"
                    ) -> ModelSignature | str:
    """The ``serving_default`` signature of the ``serve`` MetaGraph, as Triton's TensorFlow
    backend uses by default; a note (str) when the SavedModel has no such signature."""
    from google.protobuf.message import DecodeError

    fix = "give the SavedModel written by tf.saved_model.save or model.export"
    saved = _tf_saved_model_class()()
    try:
        saved.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise _not_a(file, "a TensorFlow SavedModel", f"protobuf: {exc}", fix) from None
    if not saved.meta_graphs:
        raise _not_a(file, "a TensorFlow SavedModel", "no MetaGraph in it", fix)
    graphs = [g for g in saved.meta_graphs if SERVE_TAG.encode() in g.meta_info_def.tags]
    if not graphs:
        return f"{file} has no MetaGraph tagged {SERVE_TAG!r}; its inputs and outputs are not read"
    sigs = [e.value for e in graphs[0].signature_def if e.key == SERVING_SIGNATURE.encode()]
    if len(sigs) > 1:
        raise InputError(f"declares the {SERVING_SIGNATURE!r} signature {len(sigs)} times",
                         file=file, fix=fix)
    sig = sigs[0] if sigs else None
    if sig is None:
        return (f"{file} has no {SERVING_SIGNATURE!r} signature; its inputs and outputs are not "
                "read")
    _check_count(file, len(sig.inputs), "input")
    _check_count(file, len(sig.outputs), "output")

    def tensor(entry: Any, role: str) -> TensorSig:
        name = _check_name(file, entry.key, role)
        info = entry.value
        datatype = _TF_TYPES.get(info.dtype)
        if datatype is None:
            raise InputError(f"signature {role} {bounded(name)} has TensorFlow dtype "
                             f"{info.dtype}, which Triton has no data type for", file=file,
                             fix="cast it to a supported type in the serving signature")
        shape = info.tensor_shape
        if len(shape.dim) > MAX_RANK:
            return TensorSig(name, datatype, _check_dims(file, name, [0] * len(shape.dim)))
        dims = None if shape.unknown_rank or not info.HasField("tensor_shape") else _check_dims(
            file, name, [d.size for d in shape.dim])
        return TensorSig(name, datatype, dims)

    inputs = tuple(tensor(e, "input") for e in sorted(sig.inputs, key=lambda e: e.key))
    outputs = tuple(tensor(e, "output") for e in sorted(sig.outputs, key=lambda e: e.key))
    if not outputs:
        raise InputError(f"the {SERVING_SIGNATURE!r} signature has no outputs", file=file, fix=fix)
    _check_unique(file, inputs, "input")
    _check_unique(file, outputs, "output")
    notes = _unshaped(file, (*inputs, *outputs))
    if len(graphs) > 1:
        notes += (f"{file} has {len(graphs)} MetaGraphs tagged {SERVE_TAG!r}; the first one's "
                  "signature is read, check that Triton loads the same one",)
    return ModelSignature(file, "TensorFlow SavedModel", inputs, outputs, warnings=notes)


# -- TorchScript ------------------------------------------------------------------------------

def _first_global(pickle: bytes) -> tuple[str, str] | None:
    """The class of the pickled top-level module, from the opcodes alone (nothing unpickled).
    torch writes it within the first few opcodes: at most MAX_PICKLE_OPS are scanned, and only
    the last two strings are kept (a pickle of millions of strings costs no memory here)."""
    last: tuple[str, str] = ("", "")
    # pickletools decodes STRING opcodes with escape_decode, which warns on bad escapes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            for n, (op, arg, _pos) in enumerate(pickletools.genops(io.BytesIO(pickle))):
                if n >= MAX_PICKLE_OPS:
                    return None
                if op.name == "GLOBAL" and isinstance(arg, str):
                    module, _, name = arg.partition(" ")
                    return module, name
                if op.name == "STACK_GLOBAL":
                    return last if last[0] else None
                if isinstance(arg, str):
                    last = (last[1], arg)
        except (ValueError, KeyError, UnicodeDecodeError, EOFError, OverflowError,
                MemoryError):
            return None
    return None


def torchscript_code_member(module: str) -> str:
    """The archive member suffix holding ``module``'s source (``code/__torch__/m.py``)."""
    return "/code/" + module.replace(".", "/") + ".py"


def torchscript_class(pickle: bytes) -> tuple[str, str] | None:
    """The TorchScript class data.pkl's top-level object is of, if the opcodes say it."""
    top = _first_global(pickle)
    return top if top is not None and top[0].startswith("__torch__") else None


def _forward_source(code: str, cls: str) -> str | None:
    """The ``def forward(...) -> ...:`` header of class ``cls`` in TorchScript's generated code,
    found by its fixed layout (the class at column 0, its methods indented) and cut at the
    colon that ends it, with ``pass`` for a body. Only this is parsed: ast.parse of a whole code
    file costs ~250x its size in memory (2 MiB of code, 0.5 GiB). None when it is not there in
    that layout, or longer than MAX_SIGNATURE_CHARS."""
    head = re.search(rf"^class {re.escape(cls)}\b", code, re.M)
    if head is None:
        return None
    after = re.compile(r"^\S", re.M).search(code, head.end())
    body_end = after.start() if after is not None else len(code)
    found = re.compile(r"^[ \t]+def forward\(", re.M).search(code, head.end(), body_end)
    if found is None:
        return None
    depth, i = 0, found.end() - 1
    end = min(body_end, i + MAX_SIGNATURE_CHARS)
    while i < end:
        c = code[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c in "\"'":  # a default value such as mode: str="bilinear": skip the literal
            close = re.compile(rf"(?:[^{c}\\\n]|\\.)*{c}").match(code, i + 1, end)
            if close is None:
                return None
            i = close.end()
            continue
        elif c == "#":  # a comment in the header: not generated code, no guess
            return None
        elif c == ":" and depth == 0:
            return "def forward(" + code[found.end():i + 1] + "\n    pass\n"
        i += 1
    return None


def read_torchscript(members: dict[str, bytes], file: str = "model.pt") -> ModelSignature | str:
    """``forward``'s argument names (self excluded) from a TorchScript archive's members
    (``*/data.pkl`` and ``*/code/**.py``). A note (str) when they cannot be found."""
    cannot = f"{file}: forward's arguments could not be found; the config's inputs are not checked"
    pkl = next((v for k, v in sorted(members.items()) if k.endswith("/data.pkl")), None)
    if pkl is None:
        return cannot
    top = torchscript_class(pkl)
    if top is None:
        return cannot
    module, cls = top
    code = next((v for k, v in sorted(members.items())
                 if k.endswith(torchscript_code_member(module))), None)
    if code is None or len(code) > MAX_CODE_BYTES:
        return cannot
    try:
        source = _forward_source(code.decode("utf-8"), cls)
        if source is None:
            return cannot
        tree = ast.parse(source)
    except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError):
        return cannot
    item = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(item, ast.FunctionDef) or item.name != "forward":
        return cannot
    args = item.args
    if args.vararg or args.kwarg or args.kwonlyargs:
        return cannot
    params = [a.arg for a in (*args.posonlyargs, *args.args)][1:]
    try:  # an annotation nested 100 000 deep: a note, not a RecursionError
        hints = [ast.unparse(a.annotation) if a.annotation else ""
                 for a in (*args.posonlyargs, *args.args)][1:]
    except (RecursionError, ValueError, MemoryError):
        return cannot
    if any(h.startswith("Dict[") for h in hints):
        return f"{file}: forward takes a Dict of tensors; the config's inputs are not checked"
    _check_count(file, len(params), "input")
    return ModelSignature(file, "TorchScript", tuple(TensorSig(p, None, None) for p in params),
                          None, names_only=True)
