"""`push`: the seed's result step. Push the image named in result.json, record its digest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import docker.errors

from packager.errors import PushError
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
    if registry and not result.image.startswith(registry.rstrip("/") + "/"):
        target = parse_reference(f"{registry.rstrip('/')}/{result.image}", what="--registry")
    # result.json is rewritten below: hold the output's lock, as package does.
    with exclusive(lock_for(out), what=str(out), report=report):
        return _push(out, report, result, ref, target)


def _push(out: Path, report: Reporter, result: ResultDocument, ref: ImageRef,
          target: ImageRef) -> ResultDocument:
    c = client()
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
                raise PushError(f"push of {target} failed: {chunk['error']}",
                                fix="check the registry address, that it is up, and "
                                "`docker login` credentials")
            aux = chunk.get("aux") or {}
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
            elif "status" in chunk:
                report.log(f"{chunk.get('id', '')} {chunk['status']}".strip())
    except docker.errors.DockerException as exc:
        raise PushError(f"push of {target} failed: {exc}",
                        fix="check the registry address and that it is up") from None
    if not digest:
        raise PushError(f"push of {target} reported no digest", fix="check the registry's log")
    updated = dataclasses.replace(result, image=str(target), pushed_digest=digest)
    write_atomic(out / "result.json", updated.to_json())
    report.step(f"push: {target}@{digest}")
    return updated
