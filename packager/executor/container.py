"""Running a packaged image: start it on loopback ports, wait for readiness, always clean up."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import docker.errors

from packager.errors import VerifyError, bounded
from packager.executor.images.docker import client
from packager.serverlog import summarize


@dataclass(frozen=True)
class Running:
    container_id: str
    http_url: str  # host:port for tritonclient.http
    grpc_url: str  # host:port for tritonclient.grpc


def logs_tail(container_id: str) -> str:
    """The server log lines that explain a failure (errors first, then the last lines)."""
    with contextlib.suppress(docker.errors.DockerException):
        raw = client().api.logs(container_id, tail=400)
        return summarize(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
    return ""


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def serve(image: str, *, user: str | None = None, timeout: float = 180.0) -> Iterator[Running]:
    """Run `image`, yield once /v2/health/ready answers 200; remove the container on exit."""
    c = client()
    try:
        container = c.containers.create(
            image,
            user=user,
            shm_size="256m",
            ports={"8000/tcp": ("127.0.0.1", None), "8001/tcp": ("127.0.0.1", None)},
            labels={"io.triton-packager.role": "verify"},
        )
    except docker.errors.DockerException as exc:
        raise VerifyError(f"cannot create a container of {image}: {bounded(str(exc), 300)}",
                          fix="check that the image exists (see result.json)") from None
    try:
        try:  # created, so removed in `finally` even when it cannot start
            container.start()
        except docker.errors.DockerException as exc:
            raise VerifyError(f"cannot start {image}: {bounded(str(exc), 300)}",
                              fix="check --user and that the image runs") from None
        deadline = time.monotonic() + timeout
        http_url = grpc_url = ""
        while time.monotonic() < deadline:
            container.reload()
            if container.status in ("exited", "dead"):
                raise VerifyError(
                    f"the server in {image} exited (status {container.attrs['State']['ExitCode']})"
                    f"\n  server log tail:\n{logs_tail(container.id)}",
                    fix="read the server log: a model that fails to load stops the server",
                )
            ports = container.ports or {}
            if ports.get("8000/tcp") and ports.get("8001/tcp"):
                http_url = f"127.0.0.1:{ports['8000/tcp'][0]['HostPort']}"
                grpc_url = f"127.0.0.1:{ports['8001/tcp'][0]['HostPort']}"
                if _ready(http_url):
                    break
            time.sleep(0.5)
        else:
            raise VerifyError(
                f"the server in {image} was not ready after {timeout:.0f}s\n  server log tail:\n"
                f"{logs_tail(container.id)}",
                fix="read the server log above",
            )
        yield Running(str(container.id), http_url, grpc_url)
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)
