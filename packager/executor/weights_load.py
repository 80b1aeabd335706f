"""The weights image through `docker load`: one layer per model, streamed as a tar while the
weight files are read once, with no temporary copy (see packager/layers.py for why).

The archive is produced while it is sent (docker_build.piped), so memory stays at one chunk
whatever the weights' size. Each layer's diff ID (the SHA-256
of its tar) is computed while it streams; the config and manifest, which name those IDs, come
last -- `docker load` unpacks the whole archive before it reads the manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import docker.errors

from packager import layers
from packager.errors import BuildError, bounded
from packager.executor.docker_build import client, piped
from packager.executor.report import Reporter

CHUNK = 1 << 20
MODELS_ROOT = "models"  # the image's /models, as the generated Dockerfiles put it


def _model_files(model_dir: Path) -> list[tuple[str, int, int]]:
    """(path below /models, size, mode) of every file of one model in the weights context."""
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


class _Hashing:
    """A writer that hashes what passes through it."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.sink.write(data)


def _write_archive(sink: IO[bytes], context: Path, models: list[str], tag: str,
                   base: Mapping[str, Any], labels: Mapping[str, str], mtime: int) -> None:
    base_layers = list((base.get("rootfs") or {}).get("diff_ids") or [])
    paths = [f"base-{i}/layer.tar" for i in range(len(base_layers))]
    diff_ids: list[str] = []
    for model in models:
        members = layers.members(
            [(f"{model}/{rel.split('/', 1)[1]}", size, mode)
             for rel, size, mode in _model_files(context / MODELS_ROOT / model)],
            MODELS_ROOT)
        name = f"layer-{len(diff_ids)}/layer.tar"
        size = layers.layer_size(members, mtime)
        sink.write(layers.outer_header(name, size, mtime))
        hashing = _Hashing(sink)
        written = 0
        for m in members:
            header = m.header(mtime)
            hashing.write(header)
            written += len(header)
            if m.is_dir:
                continue
            source = context / m.name
            copied = 0
            with source.open("rb") as fh:
                while chunk := fh.read(min(CHUNK, m.size - copied)):
                    hashing.write(chunk)
                    copied += len(chunk)
                    if copied >= m.size:
                        break
            if copied != m.size:
                raise BuildError(f"{bounded(str(source), 200)} changed size while it was read",
                                 fix="package again once nothing writes to the model directory")
            hashing.write(b"\0" * layers.padding(m.size))
            written += m.size + layers.padding(m.size)
        hashing.write(layers.END_OF_ARCHIVE)
        written += len(layers.END_OF_ARCHIVE)
        assert written == size, (written, size)  # the header promised exactly `size` bytes
        sink.write(b"\0" * layers.padding(size))
        diff_ids.append(f"sha256:{hashing.sha.hexdigest()}")
        paths.append(name)
    config = layers.image_config(
        base, diff_ids, labels=labels,
        created_by=[f"COPY --chown=1000:1000 models/{m}/ /models/{m}/ # triton-packager"
                    for m in models])
    for name, data in ((layers.config_name(config), config),
                       ("manifest.json", layers.manifest(config, tag, paths))):
        sink.write(layers.outer_header(name, len(data), mtime))
        sink.write(data + b"\0" * layers.padding(len(data)))
    sink.write(layers.END_OF_ARCHIVE)


def load_weights_image(context: Path, tag: str, base_ref: str, report: Reporter,
                       labels: Mapping[str, str]) -> str:
    """Load `context` (context/weights: models/<name>/...) as image `tag` on top of `base_ref`,
    one layer per model; return the image ID."""
    c = client()
    try:
        base = c.api.inspect_image(base_ref)
        # The engine's inspect lacks the config's history: rebuilt from the history API.
        history = c.api.history(base_ref)
    except docker.errors.DockerException as exc:
        raise BuildError(f"cannot read base image {bounded(base_ref)}: {exc}") from None
    models = sorted(p.name for p in (context / MODELS_ROOT).iterdir() if p.is_dir())
    diff_ids = list((base.get("RootFS") or {}).get("Layers") or [])
    doc = {
        "architecture": base.get("Architecture") or "amd64",
        "os": base.get("Os") or "linux",
        "variant": base.get("Variant") or "",
        "config": base.get("Config") or {},
        "created": base.get("Created") or "1970-01-01T00:00:00Z",
        "history": layers.base_history(history, len(diff_ids)),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    mtime = 0
    try:
        archive = piped(lambda sink: _write_archive(sink, context, models, tag, doc, labels,
                                                    mtime), "weights-archive")
        for chunk in c.api.load_image(archive, quiet=True):
            if "error" in chunk:
                raise BuildError(f"docker load of the weights image failed: "
                                 f"{bounded(str(chunk['error']), 300, quote=False)}")
            if "stream" in chunk and str(chunk["stream"]).strip():
                report.log(str(chunk["stream"]).strip())
        return str(c.images.get(tag).id)
    except docker.errors.DockerException as exc:
        raise BuildError(f"docker load of the weights image failed: "
                         f"{bounded(str(exc), 300, quote=False)}") from None
