"""`push`: the seed's result step. Push the image named in result.json, record its digest."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from pathlib import Path

import docker.errors

from packager.errors import InputError, PushError, bounded
from packager.executor.docker_build import client
from packager.executor.fs import write_atomic
from packager.executor.lock import exclusive, lock_for
from packager.executor.report import Reporter
from packager.executor.verify import load_result
from packager.imageref import ImageRef, parse_reference
from packager.result import ResultDocument


def push(out: Path, report: Reporter, *, registry: str | None = None) -> ResultDocument:
    # Bad input (result.json, --registry) is refused before the lock file is created.
    result = load_result(out)
    ref = parse_reference(result.image, what="image in result.json")
    target = ref
    if registry is not None:
        check_registry(registry)
    if registry and not result.image.startswith(registry.rstrip("/") + "/"):
        target = parse_reference(f"{registry.rstrip('/')}/{result.image}", what="--registry")
    # result.json is rewritten below: hold the output's lock, as package does.
    with exclusive(lock_for(out), what=str(out), report=report):
        return _push(out, report, result, ref, target)


_REGISTRY_RE = re.compile(
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9a-fA-F:]{2,39}\])"
    r"(?::(?P<port>[0-9]{1,5}))?(?:/[a-z0-9._/-]{1,200})?/?")


def check_registry(registry: str) -> None:
    """host[:port][/path], where Docker will read the host as a registry: a bare word without
    a dot or a port (`myreg`) would silently become docker.io/myreg."""
    m = _REGISTRY_RE.fullmatch(registry)
    fix = "give host[:port][/path], e.g. registry.example.com or 127.0.0.1:5000/team"
    if m is None:
        raise InputError(f"--registry {bounded(registry)} is not host[:port][/path]", fix=fix)
    host, port = m.group("host"), m.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise InputError(f"--registry {bounded(registry)} has port {port}, past 65535", fix=fix)
    if port is None and "." not in host and host != "localhost" and not host.startswith("["):
        raise InputError(f"--registry {bounded(registry)} has no dot and no port, so Docker "
                         "would read it as a Docker Hub namespace, not a registry", fix=fix)


def _push(out: Path, report: Reporter, result: ResultDocument, ref: ImageRef,
          target: ImageRef) -> ResultDocument:
    c = client()
    try:
        return _push_with(c, out, report, result, ref, target)
    except PushError:
        if target != ref:  # the tag this push added names nothing that was pushed: drop it
            with contextlib.suppress(docker.errors.DockerException):
                c.images.remove(str(target))
        raise


def _push_with(c: docker.DockerClient, out: Path, report: Reporter, result: ResultDocument,
               ref: ImageRef, target: ImageRef) -> ResultDocument:
    try:
        image = c.images.get(result.image)
        if target != ref:
            image.tag(target.repository, target.tag)
    except docker.errors.DockerException as exc:
        raise PushError(f"image {result.image} is not on this engine: {exc}",
                        fix="package the model again") from None
    report.step(f"push: {target}")
    digest = ""
    try:
        for chunk in c.api.push(target.repository, tag=target.tag, stream=True, decode=True):
            if "error" in chunk:
                raise PushError(f"push of {target} failed: {bounded(chunk['error'], 300, quote=False)}",
                                fix="check the registry address, that it is up, and "
                                "`docker login` credentials")
            aux = chunk.get("aux") or {}
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
            elif "status" in chunk:
                report.log(f"{chunk.get('id', '')} {chunk['status']}".strip())
    except docker.errors.DockerException as exc:
        raise PushError(f"push of {target} failed: {bounded(str(exc), 300, quote=False)}",
                        fix="check the registry address and that it is up") from None
    if not digest:
        raise PushError(f"push of {target} reported no digest", fix="check the registry's log")
    updated = dataclasses.replace(result, image=str(target), pushed_digest=digest,
                                  pushed_image=f"{target.repository}@{digest}")
    write_atomic(out / "result.json", updated.to_json())
    report.step(f"push: {target}@{digest}")
    return updated
