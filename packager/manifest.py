"""`odahuflow.model.yaml`: the model's name and version."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packager import safeyaml
from packager.errors import InputError, bounded
from packager.inputs import MANIFEST_NAMES, InputTree

DEFAULT_NAME = "model"
DEFAULT_VERSION = 1
KNOWN_KEYS = frozenset({"name", "version", "output"})  # `output` is written by the ODAHU trainer

# A Docker repository path component (distribution/reference) is also a valid Triton model
# name: lower case, digits and single separators, so no space, no slash, no `..`, no shell
# metacharacter can reach a Dockerfile or the Python backend's stub name.
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
NAME_MAX = 128
VERSION_MAX = (1 << 63) - 1  # Triton stores model versions as int64


@dataclass(frozen=True)
class ModelMeta:
    name: str
    version: int
    source: str | None  # manifest file name, None when defaulted
    warnings: tuple[str, ...] = ()


def check_name(name: object, *, file: str, field: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise InputError(
            f"field '{field}' must be a non-empty string, got {bounded(name)}",
            file=file,
            fix=f"set {field}: to a name such as 'my-model'",
        )
    if len(name) > NAME_MAX:
        raise InputError(
            f"field '{field}' is {len(name)} characters long; at most {NAME_MAX} are allowed",
            file=file,
            fix="choose a shorter model name",
        )
    if not NAME_RE.fullmatch(name):
        suggestion = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:NAME_MAX] or "model"
        raise InputError(
            f"field '{field}' has value {bounded(name)}, which is not a valid Triton model and Docker "
            "image name: use lower-case letters, digits, and '.', '_' or '-' between them",
            file=file,
            fix=f"set {field}: {suggestion}",
        )
    return name


def check_version(version: object, *, file: str, field: str = "version") -> int:
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        hint = ""
        if isinstance(version, float) and version.is_integer() and version > 0:
            hint = f"set {field}: {int(version)} (Triton versions are whole numbers)"
        raise InputError(
            f"field '{field}' has value {bounded(version)}; a Triton model version is a positive "
            "integer",
            file=file,
            fix=hint or f"set {field}: 1",
        )
    if isinstance(version, str):
        if not re.fullmatch(r"[1-9][0-9]{0,18}", version):
            digits = re.sub(r"\D", "", version[:40]).lstrip("0")[:19]
            raise InputError(
                f"field '{field}' has value {bounded(version)}; a Triton model version is a "
                "positive integer without prefix, suffix or leading zeros, at most "
                f"{VERSION_MAX}",
                file=file,
                fix=f"set {field}: {digits if digits and int(digits) <= VERSION_MAX else 1}",
            )
        version = int(version)
    if version > VERSION_MAX:
        raise InputError(
            f"field '{field}' has value {bounded(version)}; Triton model versions are 64-bit, "
            f"at most {VERSION_MAX}",
            file=file,
            fix=f"set {field}: 1",
        )
    if version < 1:
        raise InputError(
            f"field '{field}' has value {bounded(version)}; Triton model versions start at 1",
            file=file,
            fix=f"set {field}: 1",
        )
    return version


def parse_manifest(tree: InputTree) -> ModelMeta:
    present = [n for n in MANIFEST_NAMES if tree.text(n) is not None]
    if not present:
        return ModelMeta(DEFAULT_NAME, DEFAULT_VERSION, None)
    if len(present) > 1:
        raise InputError(
            f"found {len(present)} manifests: {', '.join(present)}",
            file=tree.label,
            fix=f"keep only one of them (preferably {MANIFEST_NAMES[0]})",
        )
    fname = present[0]
    text = tree.text(fname) or ""
    doc = safeyaml.load(
        text, file=fname,
        fix="write it as 'name: <model-name>' and 'version: <positive integer>' lines")
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InputError(
            f"must be a mapping with 'name' and 'version', got {type(doc).__name__}",
            file=fname,
            fix="write it as 'name: <model-name>' and 'version: <positive integer>' lines",
        )
    warnings = tuple(
        f"{fname}: unknown key {bounded(key)} is ignored (known: name, version)"
        for key in doc
        if key not in KNOWN_KEYS
    )
    name = check_name(doc.get("name", DEFAULT_NAME), file=fname)
    version = check_version(doc.get("version", DEFAULT_VERSION), file=fname)
    return ModelMeta(name, version, fname, warnings)
