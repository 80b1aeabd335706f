"""Pushing through the Docker engine, with credentials from an auth file or a username and
password handed to the engine for this one request (never written anywhere)."""

from __future__ import annotations

import contextlib
from typing import Any

import docker.auth
import docker.errors

from packager.errors import InputError, PushError, bounded, redact
from packager.executor.builders import Credentials, registry_host
from packager.executor.docker_build import client
from packager.executor.report import Reporter
from packager.imageref import parse_reference


def auth_config(credentials: Credentials, target: str) -> dict[str, Any] | None:
    """What the engine gets as this push's X-Registry-Auth; None: docker-py's own defaults
    (DOCKER_CONFIG or ~/.docker/config.json, with their credential helpers)."""
    if credentials.username is not None:
        return {"username": credentials.username, "password": credentials.password or ""}
    if credentials.authfile is None:
        return None
    try:
        config = docker.auth.load_config(config_path=str(credentials.authfile))
        found = config.resolve_authconfig(registry_host(target))
    except docker.errors.DockerException as exc:
        raise InputError(f"the auth file cannot be used: {type(exc).__name__}",
                         file=str(credentials.authfile),
                         fix="give a Docker-style auth file: {\"auths\": {HOST: {\"auth\": "
                         "base64(user:password)}}}") from None
    # An auth file without this registry: push anonymously rather than with other credentials.
    return dict(found) if found else {}


def push(image: str, target: str, report: Reporter, credentials: Credentials) -> str:
    auth = auth_config(credentials, target)
    ref = parse_reference(target, what="push target")
    c = client()
    try:
        img = c.images.get(image)
        # If the push fails, the target tag goes back to what it was: removed when this push
        # added it, or naming again the image it named (someone's) before.
        before = _image_id(c, target) if target != image else None
        if target != image:
            img.tag(ref.repository, ref.tag)
    except docker.errors.DockerException as exc:
        raise PushError(f"image {bounded(image)} is not on this engine: "
                        f"{bounded(str(exc), 200, quote=False)}",
                        fix="package the model again") from None
    try:
        return _push(c, ref.repository, ref.tag, target, report, auth, credentials)
    except PushError:
        if target != image:
            with contextlib.suppress(docker.errors.DockerException):
                if before is None:
                    c.images.remove(target)
                else:
                    c.images.get(before).tag(ref.repository, ref.tag)
        raise


def _image_id(c: docker.DockerClient, reference: str) -> str | None:
    try:
        return str(c.images.get(reference).id)
    except docker.errors.ImageNotFound:
        return None


def _push(c: docker.DockerClient, repository: str, tag: str | None, target: str,
          report: Reporter, auth: dict[str, Any] | None, credentials: Credentials) -> str:
    report.step(f"push: {target} (Docker engine; credentials from {credentials.source})")
    fix = ("check the registry address, that it is up, its CA (/etc/docker/certs.d/"
           f"{registry_host(target)}/ca.crt) and the credentials from {credentials.source}")
    digest = ""
    try:
        for chunk in c.api.push(repository, tag=tag, stream=True, decode=True,
                                auth_config=auth):
            if "error" in chunk:
                raise PushError(f"push of {target} failed: "
                                f"{bounded(redact(str(chunk['error'])), 300, quote=False)}",
                                fix=fix)
            aux = chunk.get("aux") or {}
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
            elif "status" in chunk:
                report.log(f"{chunk.get('id', '')} {chunk['status']}".strip())
    except docker.errors.DockerException as exc:
        raise PushError(f"push of {target} failed: {bounded(redact(str(exc)), 300, quote=False)}",
                        fix=fix) from None
    if not digest.startswith("sha256:"):
        raise PushError(f"push of {target} reported no digest", fix="check the registry's log")
    return digest
