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


def _tree(entries: tuple[Entry, ...] | list[Entry]) -> dict[str, dict[str, EntryKind]]:
    """Each directory's children ("" is the top), in one pass over the entries: looking them up
    per model directory instead made a repository of 10 000 models quadratic (issue 21)."""
    out: dict[str, dict[str, EntryKind]] = {"": {}}
    for e in entries:
        parent, _, name = e.path.rpartition("/")
        out.setdefault(parent + "/" if parent else "", {})[name] = e.kind
    return out


def _children(entries: tuple[Entry, ...] | list[Entry], prefix: str,
              tree: dict[str, dict[str, EntryKind]] | None = None) -> dict[str, EntryKind]:
    return (tree if tree is not None else _tree(entries)).get(prefix, {})


def is_repository(entries: tuple[Entry, ...] | list[Entry],
                  tree: dict[str, dict[str, EntryKind]] | None = None) -> bool:
    tree = tree if tree is not None else _tree(entries)
    top = _children(entries, "", tree)
    if not top or MODEL_MARKERS & set(top):
        return False
    for name, kind in top.items():
        if kind is not EntryKind.DIR:
            continue
        inner = _children(entries, name + "/", tree)
        if CONFIG_NAME in inner or any(
                k is EntryKind.DIR and VERSION_RE.fullmatch(c) for c, k in inner.items()):
            return True
    return False


def is_model_folder(entries: tuple[Entry, ...] | list[Entry],
                    tree: dict[str, dict[str, EntryKind]] | None = None) -> bool:
    """One model directory laid out as in a repository (`mymodel/config.pbtxt`,
    `mymodel/1/model.onnx`), given on its own: a config.pbtxt and no model file or manifest
    at its top, and a version directory holding a file. The layout most Triton users have."""
    top = _children(entries, "", tree)
    if CONFIG_NAME not in top or (MODEL_MARKERS - {CONFIG_NAME}) & set(top):
        return False
    versions = {c for c, k in top.items() if k is EntryKind.DIR and VERSION_RE.fullmatch(c)}
    return any(e.kind is EntryKind.FILE and e.path.split("/", 1)[0] in versions
               for e in entries if "/" in e.path)


def read_roots(entries: tuple[Entry, ...] | list[Entry]) -> tuple[str, ...]:
    """The directories whose config, manifest, environment files and model bytes the reader
    reads: the input itself, or each model and version directory of a repository."""
    tree = _tree(entries)
    if is_model_folder(entries, tree):  # its version directories are read as a repository's are
        return ("", *(f"{v}/" for v, k in sorted(_children(entries, "", tree).items())
                      if k is EntryKind.DIR and VERSION_RE.fullmatch(v)))
    if not is_repository(entries, tree):
        return ("",)
    roots: list[str] = []
    for name, kind in sorted(_children(entries, "", tree).items()):
        if kind is not EntryKind.DIR:
            continue
        roots.append(f"{name}/")
        roots.extend(f"{name}/{v}/" for v, k in sorted(_children(entries, f"{name}/", tree).items())
                     if k is EntryKind.DIR and VERSION_RE.fullmatch(v))
    return tuple(roots)
