"""The weights layers written from the weights context, for every builder that assembles them
(docker_load.py: a `docker load` archive; buildah.py: an OCI layout `buildah pull` reads) and for
the registry pusher (oci_push.py), which sends them again from the same files rather than from a
copy: each layer is packager.layers.WEIGHTS's, grouped by packager.layers.group_files into
layers of at most the configured bound, and byte for byte the same on every call."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

from packager import layers
from packager.errors import BuildError, bounded
from packager.layers import WEIGHTS, LayerGroup

CHUNK = 1 << 20


def model_files(model_dir: Path) -> list[tuple[str, int, int]]:
    """(path below the image's model repository, size, mode) of every file of one model in the
    weights context."""
    out = []
    for path in sorted(model_dir.rglob("*")):
        st = path.lstat()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise BuildError(f"the weights context holds {bounded(str(path), 200)}, which is not a "
                             "regular file or directory", fix="package again with --force")
        if path.is_file():
            out.append((path.relative_to(model_dir.parent).as_posix(), st.st_size,
                        st.st_mode & 0o7777))
    return out


def models(context: Path) -> list[str]:
    """The models of a weights context (context/weights: models/<name>/...), sorted."""
    return sorted(p.name for p in (context / WEIGHTS.context_dir).iterdir() if p.is_dir())


def plan(context: Path, max_layer_size: int) -> list[LayerGroup]:
    """Every weights layer of `context`, in image order: per model (sorted), its groups."""
    groups: list[LayerGroup] = []
    for model in models(context):
        files = model_files(context / WEIGHTS.context_dir / model)
        groups += layers.group_files(model, files, max_layer_size)
    if len(groups) > layers.MAX_WEIGHTS_LAYERS:
        raise BuildError(f"the weights need {len(groups)} layers at the layer bound of "
                         f"{max_layer_size} bytes; an image holds at most "
                         f"{layers.MAX_WEIGHTS_LAYERS} weights layers",
                         fix="raise --max-layer-size")
    return groups


class Hashing:
    """A writer that hashes (and counts) what passes through it."""

    def __init__(self, sink: IO[bytes] | None) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.written += len(data)
        if self.sink is not None:
            self.sink.write(data)

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha.hexdigest()}"


def source(context: Path, member: layers.Member) -> Path:
    """The file of the weights context a layer's member is read from."""
    root = WEIGHTS.root.strip("/")  # the members' names: paths in the image, no leading /
    return context / WEIGHTS.context_dir / member.name.removeprefix(root + "/")


def write_layer(sink: IO[bytes] | None, context: Path, group: LayerGroup,
                mtime: int = WEIGHTS.mtime) -> tuple[str, int]:
    """Write `group`'s layer tar to `sink` (None: only hash it), reading each file once;
    return (its digest -- the diff ID --, its size)."""
    hashing = Hashing(sink)
    members = group.members()
    for m in members:
        hashing.write(m.header(mtime))
        if m.is_dir:
            continue
        path = source(context, m)
        copied = 0
        with path.open("rb") as fh:
            while copied < m.size and (chunk := fh.read(min(CHUNK, m.size - copied))):
                hashing.write(chunk)
                copied += len(chunk)
        if copied != m.size:
            raise BuildError(f"{bounded(str(path), 200)} changed size while it was read",
                             fix="package again once nothing writes to the model directory")
        hashing.write(b"\0" * layers.padding(m.size))
    hashing.write(layers.END_OF_ARCHIVE)
    expected = layers.layer_size(members, mtime)
    assert hashing.written == expected, (hashing.written, expected)  # the size promised
    return hashing.digest, hashing.written
