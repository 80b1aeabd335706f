"""`config.pbtxt`: validated against Triton's own ModelConfig schema, passed through byte for byte.

The schema is the server's `model_config.proto`, as shipped compiled in `tritonclient[grpc]`.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf import text_format

from packager.backends import Backend
from packager.errors import InputError, bounded
from packager.inputs import CONFIG_NAME


def _model_config_pb2() -> ModuleType:
    """tritonclient's compiled `model_config.proto`, loaded by file. `import
    tritonclient.grpc.model_config_pb2` runs the package's `__init__` first, which imports grpc,
    numpy and ml_dtypes -- 0.2 s on every run (a no-change `package` takes 0.5 s) for one
    generated module that needs only protobuf. Kept out of `sys.modules`: a later import of
    tritonclient.grpc (verify) imports its own copy, and protobuf accepts the identical file
    in its descriptor pool again and hands back the same message classes."""
    package = importlib.util.find_spec("tritonclient")
    if package is None or package.origin is None:
        raise ImportError("tritonclient is not installed (pip install 'tritonclient[grpc]')")
    spec = importlib.util.spec_from_file_location(
        "model_config_pb2", Path(package.origin).parent / "grpc" / "model_config_pb2.py")
    if spec is None or spec.loader is None:
        raise ImportError("tritonclient has no grpc/model_config_pb2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


model_config_pb2: Any = _model_config_pb2()

_ERR_RE = re.compile(r"^(\d+):(\d+) : (.*)$", re.S)
ENSEMBLE_PLATFORM = "ensemble"
LATEST_VERSION = -1  # an ensemble step's model_version: -1 means the latest served version


@dataclass(frozen=True)
class EnsembleStep:
    model_name: str
    model_version: int
    input_map: tuple[tuple[str, str], ...]  # (the model's input, the ensemble tensor)
    output_map: tuple[tuple[str, str], ...]  # (the model's output, the ensemble tensor)


@dataclass(frozen=True)
class ParsedConfig:
    text: str
    name: str
    backend: str
    platform: str
    max_batch_size: int
    inputs: tuple[tuple[str, str, tuple[int, ...]], ...]  # (name, datatype, dims)
    outputs: tuple[tuple[str, str, tuple[int, ...]], ...]
    parameters: tuple[str, ...]
    specific_versions: tuple[int, ...] = ()  # version_policy { specific { versions: [...] } }
    default_model_filename: str = ""
    cc_model_filenames: tuple[str, ...] = ()
    # (tensor name, reshape shape) for the tensors that have a `reshape` (what the model sees)
    input_reshapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    output_reshapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # version_policy: "latest" (Triton's default, with latest_n), "all" or "specific"
    policy: str = "latest"
    latest_n: int = 1
    # Files config.pbtxt names, which Triton reads from the model directory:
    label_files: tuple[tuple[str, str], ...] = ()  # (output, label_filename)
    warmup_files: tuple[tuple[str, str, str], ...] = ()  # (warmup, input, input_data_file)
    ensemble_steps: tuple[EnsembleStep, ...] = ()

    @property
    def is_ensemble(self) -> bool:
        return self.platform == ENSEMBLE_PLATFORM

    def served(self, versions: tuple[int, ...]) -> tuple[int, ...]:
        """Which of the packaged versions Triton serves under this config's version_policy."""
        ordered = tuple(sorted(versions))
        if self.policy == "all":
            return ordered
        if self.policy == "specific":
            return tuple(v for v in ordered if v in self.specific_versions)
        return ordered[-max(self.latest_n, 1):] if ordered else ()


def parse_config(text: str, *, file: str = CONFIG_NAME) -> ParsedConfig:
    """Parse text against ModelConfig; errors come back as ``config.pbtxt:LINE:COL: message``."""
    msg = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        m = _ERR_RE.match(str(exc))
        where, detail = (f":{m.group(1)}:{m.group(2)}", m.group(3)) if m else ("", str(exc))
        raise InputError(
            f"{file}{where}: {bounded(detail, 300, quote=False)}",
            fix="compare with Triton's model_config.proto; every field must exist in ModelConfig",
        ) from None
    except ValueError as exc:
        # text_format lets this through without a position: an enum (open in proto3) given
        # as a number beyond int32, `kind: 2147483648`, fails when the field is set.
        raise InputError(
            f"{file}: {bounded(str(exc), 200, quote=False)} (a number given for an enum field "
            "such as data_type or kind must be one of that enum's values)",
            fix="write enum fields by the names model_config.proto gives them "
            "(data_type: TYPE_FP32, kind: KIND_GPU, ...)",
        ) from None
    if msg.max_batch_size < 0:
        raise InputError(
            f"{file}: field 'max_batch_size' has value {msg.max_batch_size}; it must be >= 0",
            fix="set max_batch_size: 0 (no batching) or a positive batch size",
        )

    _check_version_policy(msg, file)

    def tensors(items: object, role: str) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
        for t in items:  # type: ignore[attr-defined]
            # DataType is an open enum: text_format keeps any int32 (`data_type: 32`) it has
            # no name for, which Triton would refuse at load.
            if t.data_type not in model_config_pb2.DataType.values():
                raise InputError(
                    f"{file}: {role} {bounded(t.name)} has data_type {t.data_type}, which is "
                    "not a DataType of model_config.proto",
                    fix="write data_type by name: TYPE_FP32, TYPE_INT64, TYPE_STRING, ... "
                    "(the DataType values of model_config.proto)",
                )
            # Triton's ValidateIOShape: each dim is >= 1, or -1 for a variable size.
            bad = next((d for d in t.dims if d < 1 and d != -1), None)
            if bad is not None:
                raise InputError(
                    f"{file}: {role} {bounded(t.name)} has dims {bounded(list(t.dims))}; "
                    f"a dimension is >= 1, or -1 for any size, not {bad}",
                    fix=f"write {bad} as -1 (any size) or as the size the model expects",
                )
        seen: set[str] = set()
        for t in items:  # type: ignore[attr-defined]
            # A second declaration of the same name: Triton refuses the model at load.
            if t.name in seen:
                raise InputError(
                    f"{file}: {role} {bounded(t.name)} is declared twice",
                    fix=f"keep one {role} entry per name",
                )
            seen.add(t.name)
        return tuple(
            (t.name, model_config_pb2.DataType.Name(t.data_type).removeprefix("TYPE_"),
             tuple(t.dims))
            for t in items  # type: ignore[attr-defined]
        )

    def reshapes(items: object) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple((t.name, tuple(t.reshape.shape))
                     for t in items if t.HasField("reshape"))  # type: ignore[attr-defined]

    return ParsedConfig(
        text=text,
        name=msg.name,
        backend=msg.backend,
        platform=msg.platform,
        max_batch_size=msg.max_batch_size,
        inputs=tensors(msg.input, "input"),
        outputs=tensors(msg.output, "output"),
        parameters=tuple(sorted(msg.parameters.keys())),
        specific_versions=tuple(msg.version_policy.specific.versions)
        if msg.version_policy.WhichOneof("policy_choice") == "specific" else (),
        default_model_filename=msg.default_model_filename,
        cc_model_filenames=tuple(msg.cc_model_filenames.values()),
        input_reshapes=reshapes(msg.input),
        output_reshapes=reshapes(msg.output),
        policy=msg.version_policy.WhichOneof("policy_choice") or "latest",
        latest_n=msg.version_policy.latest.num_versions
        if msg.version_policy.HasField("latest") else 1,
        label_files=tuple((o.name, o.label_filename) for o in msg.output if o.label_filename),
        warmup_files=tuple((w.name, key, i.input_data_file)
                           for w in msg.model_warmup for key, i in sorted(w.inputs.items())
                           if i.WhichOneof("input_data_type") == "input_data_file"),
        ensemble_steps=tuple(
            EnsembleStep(st.model_name, st.model_version, tuple(sorted(st.input_map.items())),
                         tuple(sorted(st.output_map.items())))
            for st in msg.ensemble_scheduling.step),
    )


def _check_version_policy(msg: Any, file: str) -> None:
    """Triton's ValidateModelConfig refuses, at load, a version_policy that can serve no
    version: `specific` with an empty list, `latest` with num_versions 0 (also `latest { }`,
    where the field defaults to 0). Refused here, where the file and field can be named."""
    choice = msg.version_policy.WhichOneof("policy_choice")
    if choice == "specific" and not msg.version_policy.specific.versions:
        raise InputError(
            f"{file}: field 'version_policy' is 'specific' with no versions; Triton refuses to "
            "load a model whose version policy serves no version",
            fix="list the versions to serve, version_policy: { specific: { versions: [1] } }, "
            "or remove version_policy (Triton then serves the latest version)")
    if choice == "latest" and msg.version_policy.latest.num_versions < 1:
        raise InputError(
            f"{file}: field 'version_policy.latest.num_versions' is "
            f"{msg.version_policy.latest.num_versions}; Triton refuses to load a model whose "
            "version policy serves no version",
            fix="set version_policy: { latest: { num_versions: 1 } } (or more), or remove "
            "version_policy")


def check_against(config: ParsedConfig, backend: Backend, model_name: str) -> None:
    """The config must agree with the manifest's name and the detected model files."""
    if config.name and config.name != model_name:
        raise InputError(
            f"{CONFIG_NAME}: field 'name' is {bounded(config.name)} but the model is named "
            f"{model_name!r} (from the manifest or the default); Triton refuses a config whose "
            "name differs from its directory",
            fix=f'set name: "{model_name}" in {CONFIG_NAME}, or remove the name line',
        )
    if config.platform and not backend.platform_ok(config.platform):
        want = f'platform: "{backend.platform}"' if backend.platform else "no platform line"
        raise InputError(
            f"{CONFIG_NAME}: field 'platform' is {bounded(config.platform)} but the model files are "
            f"{backend.title} ({', '.join(f.name for f in backend.files)})",
            fix=f"use {want}, or rename the model file to match the platform",
        )
    if config.backend and config.backend != backend.backend:
        raise InputError(
            f"{CONFIG_NAME}: field 'backend' is {bounded(config.backend)} but the model files are "
            f"{backend.title} ({', '.join(f.name for f in backend.files)}), served by backend "
            f"{backend.backend!r}",
            fix=f'use backend: "{backend.backend}", or rename the model file to match',
        )


def check_servable(config: ParsedConfig, versions: tuple[int, ...],
                   version_files: dict[int, frozenset[str]]) -> None:
    """Refuse configs Triton would accept and then fail to load from the packaged tree."""
    missing = [v for v in config.specific_versions if v not in versions]
    if missing:
        shown = ", ".join(str(v) for v in versions)
        raise InputError(
            f"{CONFIG_NAME}: field 'version_policy' serves version(s) "
            f"{', '.join(str(v) for v in missing[:5])}, but only "
            f"{'version' if len(versions) == 1 else 'versions'} {shown} "
            f"{'is' if len(versions) == 1 else 'are'} packaged",
            fix=f"set version_policy: {{ specific: {{ versions: [{shown}] }} }}, or remove "
            "version_policy",
        )
    names = [("default_model_filename", config.default_model_filename)] + [
        ("cc_model_filenames", n) for n in config.cc_model_filenames]
    for field, name in names:
        if not name:
            continue
        if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
            raise InputError(
                f"{CONFIG_NAME}: field '{field}' is {bounded(name)}; Triton reads it as a file "
                "name inside the version directory, not a path",
                fix=f"put the file next to the model file and give its bare name in {field}",
            )
        for v in versions:
            files = version_files.get(v, frozenset())
            if name not in files:
                raise InputError(
                    f"{CONFIG_NAME}: field '{field}' names {bounded(name)}, which is not in "
                    f"the packaged version directory{'' if len(versions) == 1 else f' {v}'} "
                    f"({', '.join(sorted(files)[:6])})",
                    fix=f"add {bounded(name)} to the model directory, or correct {field}",
                )


def minimal_config(backend: Backend, model_name: str) -> str:
    """A config for backends Triton can complete itself, pinned so the image needs no flags."""
    lines = [
        "# Generated by triton-packager: no config.pbtxt was given. Triton fills in inputs",
        "# and outputs from the model file at load time.",
        f'name: "{model_name}"',
        f'backend: "{backend.backend}"',
    ]
    if backend.platform:
        lines.append(f'platform: "{backend.platform}"')
    if backend.batching_field:
        lines.append("max_batch_size: 0")
    return "\n".join(lines) + "\n"


_AUTO_COMPLETE_RE = re.compile(r"^\s+def\s+auto_complete_config\s*\(", re.M)


def python_autocompletes(model_py: str | None) -> bool:
    """Whether model.py defines TritonPythonModel.auto_complete_config (so a config is optional)."""
    return bool(model_py and _AUTO_COMPLETE_RE.search(model_py))
