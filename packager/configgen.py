"""A complete config.pbtxt from the model's own signature, and a given config checked against it.

Pure. Triton's rules (shared/reference/triton-facts.md section 2.4): with ``max_batch_size > 0``
the model's tensors carry an extra first dimension that ``dims`` leave out; a model batches only
when every input and output starts with a dynamic dimension; ``reshape`` is the shape the model
sees; -1 matches any size. ONNX Runtime's auto-complete turns ``max_batch_size: 0`` into its
default (4) for such a model, so a config with 0 and full dims would fail at load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from google.protobuf import text_encoding

from packager.backends import Backend, EntryKind
from packager.errors import InputError, bounded
from packager.inputs import CONFIG_NAME, MODEL_BLOBS, TORCHSCRIPT_FILE, InputTree
from packager.modelconfig import ParsedConfig
from packager.modelread import (
    ModelSignature,
    TensorSig,
    read_onnx,
    read_openvino,
    read_savedmodel,
    read_torchscript,
)

DEFAULT_MAX_BATCH_SIZE = 8
MAX_BATCH_SIZE_LIMIT = 1 << 20
MAX_INSTANCE_COUNT = 256
INSTANCE_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU", "auto": "KIND_AUTO"}


@dataclass(frozen=True)
class ConfigOptions:
    """The options that shape a generated config (``--max-batch-size`` ...); None = not given."""

    max_batch_size: int | None = None
    dynamic_batching: bool = False
    instance_count: int | None = None
    instance_kind: str | None = None

    def flags(self) -> tuple[str, ...]:
        """The options the user gave, as command-line flags (for messages)."""
        out = []
        if self.max_batch_size is not None:
            out.append(f"--max-batch-size {self.max_batch_size}")
        if self.dynamic_batching:
            out.append("--dynamic-batching")
        if self.instance_count is not None:
            out.append(f"--instance-count {self.instance_count}")
        if self.instance_kind is not None:
            out.append(f"--instance-kind {self.instance_kind}")
        return tuple(out)

    def check(self) -> None:
        if self.max_batch_size is not None and not 0 <= self.max_batch_size <= MAX_BATCH_SIZE_LIMIT:
            raise InputError(f"--max-batch-size has value {bounded(self.max_batch_size, 40)}",
                             fix=f"give 0 (no batching) to {MAX_BATCH_SIZE_LIMIT}")
        if self.instance_count is not None and not 1 <= self.instance_count <= MAX_INSTANCE_COUNT:
            raise InputError(f"--instance-count has value {bounded(self.instance_count, 40)}",
                             fix=f"give 1 to {MAX_INSTANCE_COUNT} instances")
        if self.instance_kind is not None and self.instance_kind not in INSTANCE_KINDS:
            raise InputError(f"--instance-kind has value {bounded(self.instance_kind)}",
                             fix=f"use one of {', '.join(INSTANCE_KINDS)}")


# -- reading the model out of the InputTree ----------------------------------------------------

def read_signature(tree: InputTree, backend: Backend) -> ModelSignature | str | None:
    """The model's signature; a note (str) when it cannot be read; None for formats the
    packager does not read (TensorRT, GraphDef, Caffe2, Python)."""
    top = tree.top_level()
    if backend.key == "onnx":
        name = "model.onnx/model.onnx" if "model.onnx/model.onnx" in {
            e.path for e in tree.under("model.onnx")} else "model.onnx"
        sig = read_onnx(_blob(tree, name), name)
        _check_external(tree, sig)
        return sig
    if backend.key == "openvino":
        return read_openvino(_blob(tree, "model.xml"), "model.xml")
    if backend.key == "tf_savedmodel":
        name = "model.savedmodel/saved_model.pb"
        if name not in {e.path for e in tree.under("model.savedmodel")}:
            return f"{name} not found (a saved_model.pbtxt is not read); inputs and outputs " \
                "are not read from the model"
        return read_savedmodel(_blob(tree, name), name)
    if backend.key == "pytorch" and TORCHSCRIPT_FILE in top:
        error = tree.blob_error(TORCHSCRIPT_FILE)
        if error is not None:
            raise InputError(error[0], file=TORCHSCRIPT_FILE, fix=error[1] or None)
        members = tree.members(TORCHSCRIPT_FILE)
        if not members:
            return (f"{TORCHSCRIPT_FILE} is not a TorchScript zip archive the packager can read; "
                    "the config's inputs are not checked against it")
        return read_torchscript(members, TORCHSCRIPT_FILE)
    return None


def _check_external(tree: InputTree, sig: ModelSignature) -> None:
    """Every external-data file the ONNX model names is in the input beside it: ONNX Runtime
    would fail to load the model in the image otherwise."""
    if not sig.external:
        return
    base = sig.file.rpartition("/")[0]
    files = {e.path: e for e in tree.entries}
    for loc, needed in sig.external:
        path = f"{base}/{loc}" if base else loc
        entry = files.get(path)
        if entry is None or entry.kind is not EntryKind.FILE:
            raise InputError(
                f"keeps weights in {bounded(loc)}, which is not in the model directory",
                file=sig.file,
                fix=f"copy {bounded(loc, quote=False)} beside {sig.file}, or save the model "
                "with its weights inside (onnx.save_model without save_as_external_data)")
        if entry.size < needed:
            raise InputError(
                f"reads {needed} bytes of {bounded(loc)}, which holds {entry.size}: ONNX Runtime "
                "would fail to load the weights", file=sig.file,
                fix=f"copy the complete {bounded(loc, quote=False)} saved with the model")


def _blob(tree: InputTree, name: str) -> bytes:
    error = tree.blob_error(name)
    if error is not None:
        raise InputError(error[0], file=name, fix=error[1] or None)
    data = tree.blob(name)
    if data is None:  # the executor reads every MODEL_BLOBS file within its limit
        entry = next((e for e in tree.entries if e.path == name), None)
        limit = MODEL_BLOBS.get(name, 0)
        raise InputError(
            f"is {entry.size if entry else '?'} bytes, more than the {limit} the packager reads "
            "to check it", file=name, fix="check that this is the intended file")
    return data


# -- generation ------------------------------------------------------------------------------

def _q(text: str) -> str:
    return '"' + str(text_encoding.CEscape(text, as_utf8=True)) + '"'


def _dims(dims: tuple[int, ...]) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def _shown_dims(dims: tuple[int, ...], limit: int = 120) -> str:
    """dims as a message shows them: at most 16 of them and `limit` characters, so a config
    or model with 100 000 dims cannot make a line of 600 000 characters."""
    text = _dims(dims[:16]) if len(dims) <= 16 else \
        "[ " + ", ".join(str(d) for d in dims[:16]) + f", ... ] ({len(dims)} dims)"
    return bounded(text, limit, quote=False)


def _count(n: int) -> str:
    """An element count for a message: the product of many int64 dims can pass Python's
    int-to-str limit (4 300 digits), and a number of 40 digits already says enough."""
    return str(n) if n.bit_length() <= 128 else f"about 2^{n.bit_length() - 1}"


def _fixed_first(sig: ModelSignature) -> TensorSig | None:
    return next((t for t in (*sig.inputs, *(sig.outputs or ()))
                 if t.dims is None or not t.dims or t.dims[0] != -1), None)


def _shape_text(t: TensorSig) -> str:
    return "unknown rank" if t.dims is None else _shown_dims(t.dims)


def choose_max_batch_size(backend: Backend, sig: ModelSignature, opts: ConfigOptions) -> int:
    fixed = _fixed_first(sig)
    if opts.max_batch_size is None:
        return DEFAULT_MAX_BATCH_SIZE if fixed is None else 0
    if opts.max_batch_size > 0 and fixed is not None:
        raise InputError(
            f"--max-batch-size {opts.max_batch_size} asks for batching, but tensor "
            f"{bounded(fixed.name)} of {sig.file} has shape {_shape_text(fixed)}: its first "
            "dimension is fixed, and Triton batches only a model whose every input and output "
            "starts with a dynamic dimension",
            fix="drop --max-batch-size (the config then gets max_batch_size: 0 and full dims), "
            "or export the model with a dynamic batch axis (e.g. torch.onnx.export "
            "dynamic_axes={name: {0: 'batch'}})")
    if opts.max_batch_size == 0 and fixed is None and backend.key == "onnx":
        raise InputError(
            f"--max-batch-size 0 for {sig.file}, whose every input and output starts with a "
            "dynamic dimension: Triton's ONNX Runtime backend then replaces max_batch_size 0 "
            "with its default (4) at load, and the full dims no longer match the model",
            fix="give --max-batch-size N (N >= 1), or fix the first dimension in the model")
    return opts.max_batch_size


def generate_config(backend: Backend, model_name: str, sig: ModelSignature,
                    opts: ConfigOptions) -> str:
    """config.pbtxt text for a model whose signature was read; deterministic."""
    mbs = choose_max_batch_size(backend, sig, opts)
    if opts.dynamic_batching and mbs == 0:
        why = ("--max-batch-size 0" if opts.max_batch_size == 0
               else f"a fixed first dimension in {sig.file}")
        raise InputError(
            f"--dynamic-batching needs batching, but the config gets max_batch_size: 0 ({why})",
            fix="drop --dynamic-batching, or give --max-batch-size N with a model whose first "
            "dimensions are dynamic")
    unknown = next((t for t in (*sig.inputs, *(sig.outputs or ())) if t.dims is None), None)
    if unknown is not None:
        raise InputError(
            f"tensor {bounded(unknown.name)} of {sig.file} has no known rank, so its dims "
            "cannot be written", file=CONFIG_NAME,
            fix=f"add {CONFIG_NAME} with the tensor's dims, or export the model with shapes")
    # A size-0 dimension (an always-empty tensor) is the model's, not the config's: Triton
    # accepts only sizes >= 1 or -1, so the generated config would be refused at load.
    empty = next((t for t in (*sig.inputs, *(sig.outputs or ()))
                  if t.dims is not None and 0 in t.dims), None)
    if empty is not None:
        raise InputError(
            f"tensor {bounded(empty.name)} has shape {_shown_dims(empty.dims or ())}: a dimension "
            "of size 0 (an always-empty tensor), which Triton does not accept", file=sig.file,
            fix=f"export the model with that dimension dynamic or >= 1, or add {CONFIG_NAME} "
            "with the dims Triton should use")
    lines = [
        f"# Generated by triton-packager from {sig.file} ({sig.format}):",
        "# inputs and outputs as the model declares them. To edit, start from the output of",
        "# `triton-packager config MODEL_DIR` saved as config.pbtxt beside the model.",
        f"name: {_q(model_name)}",
        f"backend: {_q(backend.backend)}",
    ]
    if backend.platform:
        lines.append(f"platform: {_q(backend.platform)}")
    lines.append(f"max_batch_size: {mbs}")
    for section, tensors in (("input", sig.inputs), ("output", sig.outputs or ())):
        if not tensors:
            continue
        lines.append(f"{section} [")
        for i, t in enumerate(tensors):
            assert t.dims is not None and t.datatype is not None
            dims = t.dims[1:] if mbs > 0 else t.dims
            lines += ["  {", f"    name: {_q(t.name)}", f"    data_type: TYPE_{t.datatype}"]
            if dims:
                lines.append(f"    dims: {_dims(dims)}")
            else:  # a scalar per batch item: Triton wants dims [1] reshaped to []
                lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
            lines.append("  }," if i < len(tensors) - 1 else "  }")
        lines.append("]")
    if opts.dynamic_batching:
        lines.append("dynamic_batching { }")
    if opts.instance_count is not None or opts.instance_kind is not None:
        kind = INSTANCE_KINDS[opts.instance_kind or "auto"]
        lines.append(f"instance_group [ {{ count: {opts.instance_count or 1} kind: {kind} }} ]")
    return "\n".join(lines) + "\n"


# -- the check --------------------------------------------------------------------------------

def _model_shape(config: ParsedConfig, name: str, dims: tuple[int, ...],
                 reshapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    shape = reshapes.get(name, dims)
    return ((-1,) if config.max_batch_size > 0 else ()) + tuple(shape)


def _agree(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == -1 or y == -1 or x == y for x, y in zip(a, b, strict=True))


def _names(tensors: tuple[TensorSig, ...]) -> str:
    shown = ", ".join(repr(t.name) for t in tensors[:8])
    return shown + (f" and {len(tensors) - 8} more" if len(tensors) > 8 else "") or "none"


def check_config(config: ParsedConfig, sig: ModelSignature, backend: Backend) -> None:
    """A given config's inputs and outputs must agree with the model, or Triton fails at load."""
    if sig.names_only:
        _check_torchscript(config, sig)
        return
    if not config.inputs and not config.outputs:
        return  # Triton completes both from the model at load
    where = f"{CONFIG_NAME} vs {sig.file}"
    fixed = _fixed_first(sig)
    if config.max_batch_size > 0 and fixed is not None:
        raise InputError(
            f"{where}: max_batch_size is {config.max_batch_size}, but tensor "
            f"{bounded(fixed.name)} has model shape {_shape_text(fixed)}: its first dimension is "
            "fixed, so Triton cannot batch this model",
            fix="set max_batch_size: 0 and give the full dims, or export the model with a "
            "dynamic batch axis")
    if config.max_batch_size == 0 and fixed is None and backend.key == "onnx":
        raise InputError(
            f"{where}: max_batch_size is 0, but every input and output of the model starts with "
            "a dynamic dimension: Triton's ONNX Runtime backend then sets max_batch_size to its "
            "default (4) at load, and these dims no longer match the model",
            fix="set max_batch_size: N (N >= 1) and drop the first dimension from every dims")
    for role, declared, reshapes, find, model_side in (
        ("input", config.inputs, dict(config.input_reshapes), sig.input, sig.inputs),
        ("output", config.outputs, dict(config.output_reshapes), sig.output, sig.outputs or ()),
    ):
        for name, datatype, dims in declared:
            t = find(name)
            if t is None:
                raise InputError(
                    f"{where}: {role} {bounded(name)} is not an {role} of the model; the model's "
                    f"{role}s are {bounded(_names(model_side), 300, quote=False)}",
                    fix=f"rename the {role} in {CONFIG_NAME} to the model's tensor name")
            cfg_type = "STRING" if datatype == "BYTES" else datatype
            if t.datatype is not None and cfg_type != t.datatype:
                raise InputError(
                    f"{where}: {role} {bounded(name)} has data_type TYPE_{datatype} in the config, "
                    f"but the model says TYPE_{t.datatype}",
                    fix=f"set data_type: TYPE_{t.datatype} for {bounded(name)}")
            shape = reshapes.get(name)
            if shape is not None and -1 not in dims and -1 not in shape and \
                    math.prod(dims) != math.prod(shape):
                raise InputError(
                    f"{where}: {role} {bounded(name)} has dims {_shown_dims(dims)} "
                    f"({_count(math.prod(dims))} elements) but reshape {_shown_dims(shape)} "
                    f"({_count(math.prod(shape))}); Triton refuses a reshape that changes the "
                    "count",
                    fix=f"make dims and reshape of {bounded(name)} hold the same number of "
                    "elements")
            if t.dims is None:
                continue
            seen = _model_shape(config, name, dims, reshapes)
            if not _agree(seen, t.dims):
                batch = " (max_batch_size > 0 adds the batch dimension in front)" \
                    if config.max_batch_size > 0 else ""
                via = f"reshape {_shown_dims(reshapes[name])}" if name in reshapes \
                    else f"dims {_shown_dims(dims)}"
                want = t.dims[1:] if config.max_batch_size > 0 else t.dims
                raise InputError(
                    f"{where}: {role} {bounded(name)} has {via} in the config, which the model "
                    f"sees as {_shown_dims(seen)}{batch}; the model says "
                    f"{_shown_dims(t.dims)}",
                    fix=f"set dims: {_shown_dims(want) if want else '[ 1 ] with reshape: { shape: [ ] }'}"
                    f" for {bounded(name)}")
    if config.inputs:
        missing = [t for t in sig.inputs if not any(t.answers_to(n) for n, _, _ in config.inputs)]
        if missing:
            raise InputError(
                f"{where}: the model's input {bounded(missing[0].name)} is not in the config; "
                "Triton must feed every model input",
                fix=f"add {bounded(missing[0].name)} to the config's inputs (data_type "
                f"TYPE_{missing[0].datatype})")


_TORCH_NAME_RE = r"^.+__(\d+)$"


def _check_torchscript(config: ParsedConfig, sig: ModelSignature) -> None:
    """What Triton's PyTorch backend checks at load: the count of forward's arguments, and the
    names -- forward's own, or the ``<name>__<index>`` convention."""
    import re

    if not config.inputs:
        return
    where = f"{CONFIG_NAME} vs {sig.file}"
    args = [t.name for t in sig.inputs]
    if len(config.inputs) != len(args):
        raise InputError(
            f"{where}: the config declares {len(config.inputs)} input(s), but forward takes "
            f"{len(args)} ({bounded(', '.join(args), 200, quote=False)})",
            fix="declare one config input per argument of forward")
    names = [n for n, _, _ in config.inputs]
    indexed = [re.match(_TORCH_NAME_RE, n, re.S) for n in names]
    if all(indexed):
        bad = [n for n, m in zip(names, indexed, strict=True) if m and int(m.group(1)) >= len(args)]
        if bad:
            raise InputError(
                f"{where}: input {bounded(bad[0])} names argument index "
                f"{bounded(bad[0].rsplit('__', 1)[1], 30, quote=False)}, but forward takes "
                f"{len(args)} argument(s)", fix=f"use indices 0 to {len(args) - 1}")
        return
    for n in names:
        if n not in args:
            raise InputError(
                f"{where}: input {bounded(n)} is not an argument of forward "
                f"({bounded(', '.join(args), 200, quote=False)})",
                fix="name config inputs after forward's arguments, or use the "
                "<name>__<index> convention (INPUT__0, ...) for every input")
