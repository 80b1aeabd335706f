"""What an input directory is: one model directory, or a whole Triton model repository.

A model directory holds a model (a file with a name Triton recognises), a config.pbtxt or a
manifest at its top. A repository holds none of those at its top, only model directories, at
least one of which looks like Triton's (`<name>/config.pbtxt` or `<name>/<version>/`). The two
cannot be confused: a name that marks a model directory never appears at a repository's top.
"""

from __future__ import annotations

import re

from packager.backends import BACKENDS, EntryKind
from packager.inputs import CONFIG_NAME, MANIFEST_NAMES, Entry

# Triton reads a version directory's name with stoll and skips names with leading zeros.
VERSION_RE = re.compile(r"0|[1-9][0-9]{0,18}")
WARMUP_DIR = "warmup"  # model_warmup input_data_file: <model>/warmup/<file>
MODEL_MARKERS = frozenset({CONFIG_NAME, *MANIFEST_NAMES,
                           *(f.name for b in BACKENDS for f in b.files)})


def _children(entries: tuple[Entry, ...] | list[Entry], prefix: str) -> dict[str, EntryKind]:
    n = len(prefix)
    return {e.path[n:]: e.kind for e in entries
            if e.path.startswith(prefix) and "/" not in e.path[n:] and len(e.path) > n}


def is_repository(entries: tuple[Entry, ...] | list[Entry]) -> bool:
    top = _children(entries, "")
    if not top or MODEL_MARKERS & set(top):
        return False
    for name, kind in top.items():
        if kind is not EntryKind.DIR:
            continue
        inner = _children(entries, name + "/")
        if CONFIG_NAME in inner or any(
                k is EntryKind.DIR and VERSION_RE.fullmatch(c) for c, k in inner.items()):
            return True
    return False


def is_model_folder(entries: tuple[Entry, ...] | list[Entry]) -> bool:
    """One model directory laid out as in a repository (`mymodel/config.pbtxt`,
    `mymodel/1/model.onnx`), given on its own: a config.pbtxt and no model file or manifest
    at its top, and a version directory holding a file. The layout most Triton users have."""
    top = _children(entries, "")
    if CONFIG_NAME not in top or (MODEL_MARKERS - {CONFIG_NAME}) & set(top):
        return False
    versions = {c for c, k in top.items() if k is EntryKind.DIR and VERSION_RE.fullmatch(c)}
    return any(e.kind is EntryKind.FILE and e.path.split("/", 1)[0] in versions
               for e in entries if "/" in e.path)


def read_roots(entries: tuple[Entry, ...] | list[Entry]) -> tuple[str, ...]:
    """The directories whose config, manifest, environment files and model bytes the reader
    reads: the input itself, or each model and version directory of a repository."""
    if is_model_folder(entries):  # its version directories are read as a repository's are
        return ("", *(f"{v}/" for v, k in sorted(_children(entries, "").items())
                      if k is EntryKind.DIR and VERSION_RE.fullmatch(v)))
    if not is_repository(entries):
        return ("",)
    roots: list[str] = []
    for name, kind in sorted(_children(entries, "").items()):
        if kind is not EntryKind.DIR:
            continue
        roots.append(f"{name}/")
        roots.extend(f"{name}/{v}/" for v, k in sorted(_children(entries, f"{name}/").items())
                     if k is EntryKind.DIR and VERSION_RE.fullmatch(v))
    return tuple(roots)
