"""Streams into the Docker engine: the weights image through `docker load` -- one layer per
model, streamed as a tar while the weight files are read once, with no temporary copy (see
packager/layers.py for why) -- and the pipe (`piped`) that also streams a build context.

The archive is produced while it is sent, so memory stays at one chunk whatever the weights'
size. Each layer's diff ID (the SHA-256 of its tar) is computed while it streams; the config and
manifest, which name those IDs, come last -- `docker load` unpacks the whole archive before it
reads the manifest. Every layer is what packager.layers.WEIGHTS specifies, as the COPY lines
of context/weights/Dockerfile would make it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

from packager import layers
from packager.errors import BuildError, bounded
from packager.executor.report import Reporter
from packager.layers import WEIGHTS

CHUNK = 1 << 20
_STREAM_CHUNK = 1 << 20


def piped(write: Callable[[IO[bytes]], None], name: str) -> Iterator[bytes]:
    """What `write` writes, as chunks for a streamed request body, produced while it is sent:
    a thread writes into a pipe and the caller reads the other end, so memory stays at one
    chunk however much is written. A failure of `write` is raised here, after the last chunk."""
    read_fd, write_fd = os.pipe()
    # A pipe holds 64 KiB by default: a 1 MiB chunk would cost 16 context switches. Linux lets
    # an unprivileged process grow it to /proc/sys/fs/pipe-max-size (1 MiB by default).
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _STREAM_CHUNK)
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=_STREAM_CHUNK) as pipe:
                write(pipe)
        except BaseException as exc:  # reported by the reading side
            failure.append(exc)

    thread = threading.Thread(target=writer, name=name, daemon=True)
    thread.start()
    with os.fdopen(read_fd, "rb") as pipe:
        while chunk := pipe.read(_STREAM_CHUNK):
            yield chunk
    thread.join()
    if failure:
        raise failure[0]


def _model_files(model_dir: Path) -> list[tuple[str, int, int]]:
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
    root = WEIGHTS.root.strip("/")  # the members' names: paths in the image, no leading /
    for model in models:
        members = layers.members(
            [(f"{model}/{rel.split('/', 1)[1]}", size, mode)
             for rel, size, mode in _model_files(context / WEIGHTS.context_dir / model)],
            WEIGHTS.root)
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
            source = context / WEIGHTS.context_dir / m.name.removeprefix(root + "/")
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
    config = layers.image_config(base, diff_ids, labels=labels,
                                 created_by=[WEIGHTS.history(m) for m in models])
    for name, data in ((layers.config_name(config), config),
                       ("manifest.json", layers.manifest(config, tag, paths))):
        sink.write(layers.outer_header(name, len(data), mtime))
        sink.write(data + b"\0" * layers.padding(len(data)))
    sink.write(layers.END_OF_ARCHIVE)


def load_weights_image(c: docker.DockerClient, context: Path, tag: str, base_ref: str,
                       report: Reporter, labels: Mapping[str, str]) -> str:
    """Load `context` (context/weights: models/<name>/...) as image `tag` on top of `base_ref`,
    one layer per model, into the engine `c`; return the image ID."""
    try:
        base = c.api.inspect_image(base_ref)
        # The engine's inspect lacks the config's history: rebuilt from the history API.
        history = c.api.history(base_ref)
    except docker.errors.DockerException as exc:
        raise BuildError(f"cannot read base image {bounded(base_ref)}: {exc}") from None
    models = sorted(p.name for p in (context / WEIGHTS.context_dir).iterdir() if p.is_dir())
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
    mtime = WEIGHTS.mtime
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
