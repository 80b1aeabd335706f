"""`config.pbtxt`: validated against Triton's own ModelConfig schema, passed through byte for byte.

The schema is the server's `model_config.proto`, as shipped compiled in `tritonclient[grpc]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from packager.backends import Backend
from packager.errors import InputError, bounded
from packager.inputs import CONFIG_NAME

_ERR_RE = re.compile(r"^(\d+):(\d+) : (.*)$", re.S)


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
    if msg.max_batch_size < 0:
        raise InputError(
            f"{file}: field 'max_batch_size' has value {msg.max_batch_size}; it must be >= 0",
            fix="set max_batch_size: 0 (no batching) or a positive batch size",
        )

    def tensors(items: object) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
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
        inputs=tensors(msg.input),
        outputs=tensors(msg.output),
        parameters=tuple(sorted(msg.parameters.keys())),
        specific_versions=tuple(msg.version_policy.specific.versions)
        if msg.version_policy.WhichOneof("policy_choice") == "specific" else (),
        default_model_filename=msg.default_model_filename,
        cc_model_filenames=tuple(msg.cc_model_filenames.values()),
        input_reshapes=reshapes(msg.input),
        output_reshapes=reshapes(msg.output),
    )


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


def check_servable(config: ParsedConfig, version: int, version_files: frozenset[str]) -> None:
    """Refuse configs Triton would accept and then fail to load from the packaged tree."""
    missing = [v for v in config.specific_versions if v != version]
    if missing:
        raise InputError(
            f"{CONFIG_NAME}: field 'version_policy' serves version(s) "
            f"{', '.join(str(v) for v in missing[:5])}, but only version {version} is packaged",
            fix=f"set version_policy: {{ specific: {{ versions: [{version}] }} }}, or remove "
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
        if name not in version_files:
            raise InputError(
                f"{CONFIG_NAME}: field '{field}' names {bounded(name)}, which is not in the "
                f"packaged version directory ({', '.join(sorted(version_files)[:6])})",
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
