"""What the model file itself declares: tensor names, Triton data types and dims, read offline.

Pure: every function takes the bytes or text the executor read (``InputTree.blobs``) and never
opens a file, imports a framework or runs the model. Formats:

- ONNX: the graph's inputs (initializers excluded, as ONNX Runtime does) and outputs, parsed
  with ``onnx`` without its external data.
- OpenVINO IR: ``model.xml``'s Parameter and Result layers, parsed with ``defusedxml`` (no DTDs,
  no entities), the tensor names from the producing ports' ``names``.
- TensorFlow SavedModel: the ``serve`` MetaGraph's ``serving_default`` signature, decoded with a
  minimal copy of TensorFlow's SavedModel schema (field numbers stable since TF 1.x), so neither
  TensorFlow nor its import time is needed.
- TorchScript: only the names of ``forward``'s arguments (TorchScript stores no data types or
  shapes), from the archive's ``code/`` sources and the class named in ``data.pkl`` -- read as
  text and opcodes, never unpickled.

A model that cannot be read this way yields ``None`` and a note; a file that is not what its name
says is an InputError.
"""

from __future__ import annotations

import ast
import io
import mmap
import pickletools
import re
from dataclasses import dataclass
from typing import Any

from packager.errors import InputError, bounded

MAX_RANK = 64  # Triton's tensors and every framework here stay far below this
MAX_TENSORS = 10_000
MAX_DIM = (1 << 63) - 1
MAX_NAME = 1024

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


def _check_name(file: str, name: str, role: str) -> str:
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
    return tuple(-1 if d < 0 else d for d in dims)


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


def _wire_fields(buf: memoryview, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each field in buf[start:end]; for varints and
    fixed-size fields the span is the encoded value."""
    out = []
    pos = start
    while pos < end:
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
        out.append((number, wire, pos, after))
        pos = after
    return out


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
    """A small ModelProto holding what ``read_onnx`` needs -- the model's own fields, and of
    the graph its name, inputs, outputs and the *names* of its initializers -- cut from a
    serialized model by walking the protobuf wire format. Weights (initializer data, nodes) are
    skipped, never copied: the executor hands this a memory map of a model.onnx of any size.
    Raises InputError when the bytes are not protobuf."""
    view = memoryview(buf)
    try:
        model = bytearray()
        for number, wire, start, end in _wire_fields(view, 0, len(view)):
            if number != 7:  # ModelProto.graph
                model += _encode(number, wire, view, start, end)
                continue
            graph = bytearray()
            for g_no, g_wire, g_start, g_end in _wire_fields(view, start, end):
                if g_no in (2, 11, 12) and g_wire == 2:  # name, input, output
                    graph += _encode(g_no, g_wire, view, g_start, g_end)
                elif g_no == 5 and g_wire == 2:  # initializer: keep TensorProto.name (8)
                    graph += _delimited(5, _only_fields(view, g_start, g_end, {8}))
                elif g_no == 15 and g_wire == 2:  # sparse_initializer: values (1) -> name
                    values = [f for f in _wire_fields(view, g_start, g_end) if f[0] == 1]
                    inner = b"".join(_delimited(1, _only_fields(view, v[2], v[3], {8}))
                                     for v in values if v[1] == 2)
                    graph += _delimited(15, inner)
            model += _delimited(7, bytes(graph))
        return bytes(model)
    except _Malformed as exc:
        raise InputError(f"is not an ONNX model (malformed protobuf: {exc})",
                         file=file,
                         fix="give the model as exported by torch.onnx.export, tf2onnx or "
                         "onnx.save (a binary ModelProto)") from None
    finally:
        view.release()


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
    return ModelSignature(file, "ONNX", inputs, outputs)


# -- OpenVINO IR -------------------------------------------------------------------------------

def _ov_dims(file: str, name: str, port: Any, layer: Any) -> tuple[int, ...] | None:
    dims = port.findall("dim") if port is not None else []
    data = layer.find("data")
    shape_attr = data.get("shape") if data is not None else None
    if not dims and shape_attr is not None:
        if shape_attr.strip() == "...":
            return None  # dynamic rank
        parts = [p.strip() for p in shape_attr.split(",")] if shape_attr.strip() else []
        values = [int(p) if re.fullmatch(r"\d{1,25}", p) else -1 for p in parts]
        return _check_dims(file, name, values)
    if len(dims) > MAX_RANK:
        return _check_dims(file, name, [0] * len(dims))
    out = []
    for d in dims:
        text = (d.text or "").strip()
        out.append(int(text) if re.fullmatch(r"\d{1,25}", text) else -1)
    return _check_dims(file, name, out)


def read_openvino(xml: bytes, file: str = "model.xml") -> ModelSignature:
    """Parameter layers are inputs, Result layers outputs; names are the tensor names OpenVINO
    gives the ports (what the Triton OpenVINO backend matches), falling back to layer names."""
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    fix = "give the model.xml written by openvino.save_model (or ovc / mo) beside its model.bin"
    try:
        root = DET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InputError(f"is refused: {bounded(type(exc).__name__, quote=False)} (DTDs and "
                         "entities are not read, they can expand without bound)", file=file,
                         fix=fix) from None
    except (ParseError, ValueError) as exc:
        raise _not_a(file, "OpenVINO IR XML", str(exc), fix) from None
    if root.tag != "net":
        raise _not_a(file, "OpenVINO IR XML", f"root element <{root.tag[:40]}>, not <net>", fix)
    layers_el = root.find("layers")
    layers = {layer.get("id"): layer for layer in (layers_el if layers_el is not None else [])}
    _check_count(file, len(layers), "layer")
    edges_el = root.find("edges")
    producer: dict[tuple[str | None, str | None], tuple[str | None, str | None]] = {}
    for e in edges_el if edges_el is not None else []:
        producer[(e.get("to-layer"), e.get("to-port"))] = (e.get("from-layer"), e.get("from-port"))

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
            inputs.append(TensorSig(name, dtype(layer, p, name), _ov_dims(file, name, p, layer),
                                    all_names[1:]))
        elif kind == "Result":
            p_in = port(layer, "input")
            src = producer.get((lid, p_in.get("id") if p_in is not None else None))
            src_layer = layers.get(src[0]) if src else None
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
            outputs.append(TensorSig(name, dt, _ov_dims(file, name, p_shape, layer),
                                     all_names[1:]))
    if not outputs:
        raise InputError("the OpenVINO model has no Result layer (no outputs)", file=file, fix=fix)
    return ModelSignature(file, "OpenVINO IR", tuple(inputs), tuple(outputs))


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
    msg("Dim", ("size", 1, F.TYPE_INT64, opt, ""), ("name", 2, F.TYPE_STRING, opt, ""))
    msg("TensorShape", ("dim", 2, F.TYPE_MESSAGE, rep, "Dim"),
        ("unknown_rank", 3, F.TYPE_BOOL, opt, ""))
    msg("TensorInfo", ("name", 1, F.TYPE_STRING, opt, ""), ("dtype", 2, F.TYPE_INT32, opt, ""),
        ("tensor_shape", 3, F.TYPE_MESSAGE, opt, "TensorShape"))
    msg("TensorInfoEntry", ("key", 1, F.TYPE_STRING, opt, ""),
        ("value", 2, F.TYPE_MESSAGE, opt, "TensorInfo"))
    msg("SignatureDef", ("inputs", 1, F.TYPE_MESSAGE, rep, "TensorInfoEntry"),
        ("outputs", 2, F.TYPE_MESSAGE, rep, "TensorInfoEntry"),
        ("method_name", 3, F.TYPE_STRING, opt, ""))
    msg("SignatureEntry", ("key", 1, F.TYPE_STRING, opt, ""),
        ("value", 2, F.TYPE_MESSAGE, opt, "SignatureDef"))
    msg("MetaInfoDef", ("tags", 4, F.TYPE_STRING, rep, ""))
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
    graphs = [g for g in saved.meta_graphs if SERVE_TAG in g.meta_info_def.tags]
    if not graphs:
        return f"{file} has no MetaGraph tagged {SERVE_TAG!r}; its inputs and outputs are not read"
    sigs = {e.key: e.value for e in graphs[0].signature_def}
    sig = sigs.get(SERVING_SIGNATURE)
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
        dims = None if shape.unknown_rank or not info.HasField("tensor_shape") else _check_dims(
            file, name, [d.size for d in shape.dim])
        return TensorSig(name, datatype, dims)

    inputs = tuple(tensor(e, "input") for e in sorted(sig.inputs, key=lambda e: e.key))
    outputs = tuple(tensor(e, "output") for e in sorted(sig.outputs, key=lambda e: e.key))
    if not outputs:
        raise InputError(f"the {SERVING_SIGNATURE!r} signature has no outputs", file=file, fix=fix)
    return ModelSignature(file, "TensorFlow SavedModel", inputs, outputs)


# -- TorchScript ------------------------------------------------------------------------------

def _first_global(pickle: bytes) -> tuple[str, str] | None:
    """The class of the pickled top-level module, from the opcodes alone (nothing unpickled)."""
    strings: list[str] = []
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(pickle)):
            if op.name == "GLOBAL" and isinstance(arg, str):
                module, _, name = arg.partition(" ")
                return module, name
            if isinstance(arg, str):
                strings.append(arg)
            if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                return strings[-2], strings[-1]
    except (ValueError, KeyError, UnicodeDecodeError, EOFError):
        return None
    return None


def read_torchscript(members: dict[str, bytes], file: str = "model.pt") -> ModelSignature | str:
    """``forward``'s argument names (self excluded) from a TorchScript archive's members
    (``*/data.pkl`` and ``*/code/**.py``). A note (str) when they cannot be found."""
    cannot = f"{file}: forward's arguments could not be found; the config's inputs are not checked"
    pkl = next((v for k, v in sorted(members.items()) if k.endswith("/data.pkl")), None)
    if pkl is None:
        return cannot
    top = _first_global(pkl)
    if top is None or not top[0].startswith("__torch__"):
        return cannot
    module, cls = top
    code = next((v for k, v in members.items()
                 if k.endswith("/code/" + module.replace(".", "/") + ".py")), None)
    if code is None:
        return cannot
    try:
        tree = ast.parse(code.decode("utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError):
        return cannot
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "forward":
                    args = item.args
                    if args.vararg or args.kwarg or args.kwonlyargs:
                        return cannot
                    params = [a.arg for a in (*args.posonlyargs, *args.args)][1:]
                    hints = [ast.unparse(a.annotation) if a.annotation else ""
                             for a in (*args.posonlyargs, *args.args)][1:]
                    if any(h.startswith("Dict[") for h in hints):
                        return (f"{file}: forward takes a Dict of tensors; the config's inputs "
                                "are not checked")
                    _check_count(file, len(params), "input")
                    return ModelSignature(file, "TorchScript",
                                          tuple(TensorSig(p, None, None) for p in params),
                                          None, names_only=True)
    return cannot
