"""Shared helpers for the tests that use the real Docker engine."""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors

from packager.baseimage import LOCAL_CPU_IMAGE
from packager.executor.phases import Outcome, Workspace
from packager.executor.report import Reporter
from packager.pipeline import Options


class Recorder(Reporter):
    """A Reporter that keeps every line, so tests can read the build log."""

    def __init__(self) -> None:
        super().__init__("quiet")
        self.lines: list[str] = []

    def _emit(self, kind: str, text: str, **extra: object) -> None:
        self.lines.append(f"{kind}: {text}")


def package(model: Path, out: Path, **opts: str) -> tuple[Outcome, Recorder]:
    rec = Recorder()
    options = Options(base_image=opts.pop("base_image", LOCAL_CPU_IMAGE), **opts)
    return Workspace(model, out, options, rec).run("package"), rec


def _archive(client: docker.DockerClient, image: str, path: str) -> tarfile.TarFile:
    """`path` inside the image as a tar, read from a created (never started) container."""
    container = client.containers.create(image, command=["true"])
    try:
        stream, _ = container.get_archive(path)
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    return tarfile.open(fileobj=io.BytesIO(data))


def image_files(client: docker.DockerClient, image: str, path: str) -> dict[str, tarfile.TarInfo]:
    with _archive(client, image, path) as tar:
        return {m.name: m for m in tar.getmembers()}


def image_file_bytes(client: docker.DockerClient, image: str, path: str) -> bytes:
    with _archive(client, image, path) as tar:
        fh = tar.extractfile(tar.getmembers()[0])
        assert fh is not None
        return fh.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def registry(tmp: Path) -> Iterator[str]:
    """A real registry (Debian's docker-registry) on a loopback port."""
    port = free_port()
    cfg = tmp / "registry.yml"
    cfg.write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
        f"{tmp / 'registry-data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def remove_image(client: docker.DockerClient, ref: str) -> None:
    with contextlib.suppress(docker.errors.DockerException):
        client.images.remove(ref, force=True)
