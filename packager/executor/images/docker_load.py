"""Streams into the Docker engine: the weights image through `docker load` -- each model's
layers (bounded, executor/images/weights.py), streamed as a tar while the weight files are read
once, with no temporary copy (see packager/layers.py for why) -- and the pipe (`piped`) that
also streams a build context.

The archive is produced while it is sent, so memory stays at one chunk whatever the weights'
size. Each layer's diff ID (the SHA-256 of its tar) is computed while it streams; the config and
manifest, which name those IDs, come last -- `docker load` unpacks the whole archive before it
reads the manifest. Every layer is what packager.layers.WEIGHTS specifies, as the COPY lines
of context/weights/Dockerfile would make it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

from packager import layers
from packager.errors import BuildError, bounded
from packager.executor.images import weights
from packager.executor.report import Reporter

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


def _write_archive(sink: IO[bytes], context: Path, models: list[str], tag: str,
                   base: Mapping[str, Any], labels: Mapping[str, str], mtime: int, *,
                   max_layer_size: int = layers.DEFAULT_MAX_LAYER_SIZE) -> None:
    base_layers = list((base.get("rootfs") or {}).get("diff_ids") or [])
    paths = [f"base-{i}/layer.tar" for i in range(len(base_layers))]
    diff_ids: list[str] = []
    groups = [g for g in weights.plan(context, max_layer_size) if g.model in models]
    for group in groups:
        name = f"layer-{len(diff_ids)}/layer.tar"
        size = group.size(mtime)
        sink.write(layers.outer_header(name, size, mtime))
        diff_id, written = weights.write_layer(sink, context, group, mtime)
        assert written == size, (written, size)  # the header promised exactly `size` bytes
        sink.write(b"\0" * layers.padding(size))
        diff_ids.append(diff_id)
        paths.append(name)
    config = layers.image_config(base, diff_ids, labels=labels,
                                 created_by=[g.history() for g in groups])
    for name, data in ((layers.config_name(config), config),
                       ("manifest.json", layers.manifest(config, tag, paths))):
        sink.write(layers.outer_header(name, len(data), mtime))
        sink.write(data + b"\0" * layers.padding(len(data)))
    sink.write(layers.END_OF_ARCHIVE)


def load_weights_image(c: docker.DockerClient, context: Path, tag: str, base_ref: str,
                       report: Reporter, labels: Mapping[str, str], *,
                       max_layer_size: int = layers.DEFAULT_MAX_LAYER_SIZE) -> str:
    """Load `context` (context/weights: models/<name>/...) as image `tag` on top of `base_ref`,
    in layers of at most `max_layer_size` bytes, into the engine `c`; return the image ID."""
    try:
        base = c.api.inspect_image(base_ref)
        # The engine's inspect lacks the config's history: rebuilt from the history API.
        history = c.api.history(base_ref)
    except docker.errors.DockerException as exc:
        raise BuildError(f"cannot read base image {bounded(base_ref)}: {exc}") from None
    models = weights.models(context)
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
    mtime = layers.WEIGHTS.mtime
    try:
        archive = piped(lambda sink: _write_archive(sink, context, models, tag, doc, labels,
                                                    mtime, max_layer_size=max_layer_size),
                        "weights-archive")
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
