"""Building images with the docker SDK against a real engine. The only module importing docker."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import re
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

from packager.dockerfile import base_images
from packager.errors import BuildError
from packager.executor.report import Reporter

LOG_TAIL = 15


def client() -> docker.DockerClient:
    try:
        c = docker.from_env(timeout=600)
        c.ping()
        return c
    except docker.errors.DockerException as exc:
        raise BuildError(
            f"cannot reach the Docker engine: {exc}",
            fix="start dockerd (or set DOCKER_HOST to a running engine) and try again",
        ) from None


def image_exists(reference: str, image_id: str) -> bool:
    try:
        img = client().images.get(reference)
    except (docker.errors.DockerException, BuildError):
        return False
    return bool(img.id == image_id)


def _ensure_base(c: docker.DockerClient, base: str) -> None:
    try:
        c.images.get(base)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise BuildError(f"cannot look up base image {base}: {exc}") from None
    try:
        c.images.pull(base)
    except docker.errors.DockerException as exc:
        detail = str(exc).splitlines()[0][:300]
        raise BuildError(
            f"base image {base} is not on this engine and could not be pulled: {detail}",
            fix="pull or load it first (docker pull / docker load), or use --base-image; for the "
            "local CPU image run `triton-packager base-image`",
        ) from None


def ensure_image(reference: str) -> str:
    """The ID of `reference`, pulling it first when the engine does not have it."""
    c = client()
    _ensure_base(c, reference)
    return str(c.images.get(reference).id)


def stream_lines(chunks: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(kind, text) pairs from the engine's JSON build stream: 'log', 'id' or 'error'."""
    for chunk in chunks:
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}) or {}
            yield "error", str(detail.get("message") or chunk["error"]).strip()
        elif "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            yield "id", str(chunk["aux"]["ID"])
        elif "stream" in chunk:
            for line in str(chunk["stream"]).splitlines():
                if line.strip():
                    yield "log", line.rstrip()
        elif "status" in chunk:
            yield "log", str(chunk["status"])


def image_labels(reference: str) -> dict[str, str] | None:
    try:
        return dict(client().images.get(reference).labels or {})
    except docker.errors.DockerException:
        return None


def image_id(reference: str) -> str | None:
    try:
        return str(client().images.get(reference).id)
    except docker.errors.DockerException:
        return None


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


def _streamed_context(context: Path) -> Iterator[bytes]:
    """The build context as an uncompressed tar, produced while it is sent.

    docker-py writes the whole context to a temporary file before sending it: for gigabytes of
    weights that is one more full write and read of them. Here a thread writes the tar into a
    pipe and the request body is read from the other end (chunked transfer), so the weights
    are read once, straight from the hardlinked context. Entries are sorted and owned by
    root with a fixed mtime, like docker-py's own tar (COPY --chown sets the owner anyway).
    """

    def write(pipe: IO[bytes]) -> None:
        with tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(context.rglob("*")):
                info = tar.gettarinfo(str(path), arcname=path.relative_to(context).as_posix())
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isreg():
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)

    return piped(write, "context-tar")


def build_image(context: Path, tag: str, report: Reporter,
                buildargs: dict[str, str] | None = None, *, nocache: bool = False,
                platform: str | None = None, labels: dict[str, str] | None = None,
                stream_context: bool = False) -> str:
    """Build `context`. With `stream_context`, the context is sent as a tar produced on the fly
    (no .dockerignore is applied: only for contexts that hold just what the build needs)."""
    dockerfile = (context / "Dockerfile").read_text(encoding="utf-8")
    c = client()
    for ref in base_images(dockerfile):  # every base, builder stages' included
        _ensure_base(c, ref)
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
    image_id = ""
    try:
        source: dict[str, Any] = (
            {"fileobj": _streamed_context(context), "custom_context": True}
            if stream_context else {"path": str(context)})
        chunks = c.api.build(
            tag=tag, rm=True, forcerm=True, decode=True, pull=False,
            buildargs=buildargs or {}, nocache=nocache, platform=platform, labels=labels,
            **source,
        )
        for kind, text in stream_lines(chunks):
            if kind == "error":
                tail.append(text)
                raise BuildError(f"the image build failed: {text}", log_tail=tuple(tail),
                                 fix="read the build log above; fix the step or the base image")
            if kind == "id":
                image_id = text
                continue
            tail.append(text)
            report.log(text)
            mm = re.match(r"Successfully built ([0-9a-f]{12,})$", text)
            if mm and not image_id:
                image_id = mm.group(1)
    except docker.errors.APIError as exc:
        tail.append(str(exc))
        raise BuildError(f"the Docker engine refused the build: {exc.explanation or exc}",
                         log_tail=tuple(tail),
                         fix="check the Dockerfile and the engine's log") from None
    except docker.errors.DockerException as exc:
        raise BuildError(f"the build was interrupted: {exc}", log_tail=tuple(tail)) from None
    try:
        img = c.images.get(tag)
    except docker.errors.DockerException as exc:
        raise BuildError(f"the build ended but image {tag} is missing: {exc}",
                         log_tail=tuple(tail)) from None
    return str(img.id)
