"""The two image builders behind one small interface: the Docker engine and buildah.

Phases and push talk to a `Builder` only; which one is chosen by `--builder` (auto: the Docker
engine when one answers, else buildah). The same generated Dockerfile and context serve both.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from packager.errors import BuildError, InputError, PackagerError, bounded
from packager.executor.report import Reporter

BUILDER_CHOICES = ("auto", "docker", "buildah")


@dataclass(frozen=True)
class Credentials:
    """Where push takes registry credentials from. The password never reaches a command line,
    a log line, result.json or an image; `repr` leaves it out."""

    authfile: Path | None = None  # a Docker-style auth file ({"auths": {...}})
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = "the builder's own defaults"  # named in messages, never the secret


@dataclass(frozen=True)
class Tls:
    """How push trusts the registry: a CA bundle of its own, or (test registries) no check."""

    ca_bundle: Path | None = None
    verify: bool = True


class Builder(Protocol):
    @property
    def name(self) -> str: ...

    def build_image(self, context: Path, tag: str, report: Reporter,
                    buildargs: dict[str, str] | None = None, *, nocache: bool = False,
                    platform: str | None = None, labels: dict[str, str] | None = None,
                    stream_context: bool = False) -> str: ...

    def build_weights(self, context: Path, tag: str, base_ref: str, report: Reporter, *,
                      labels: dict[str, str], nocache: bool = False,
                      platform: str | None = None) -> str:
        """Build the weights image `tag` from context/weights (its Dockerfile: FROM the base,
        one COPY per model); return its ID."""

    def image_id(self, reference: str) -> str | None: ...

    def image_exists(self, reference: str, image_id: str) -> bool: ...

    def ensure_image(self, reference: str, name: str | None = None) -> str:
        """The ID of `reference` (a name, or a `base_source`), bringing it in when absent;
        `name` is what a Dockerfile's FROM calls it."""

    def check_base_source(self, source: str | None) -> None:
        """Refuse a base image source this builder cannot read (before the first write)."""

    def image_labels(self, reference: str) -> dict[str, str] | None: ...

    def check_push(self, tls: Tls) -> None:
        """Refuse push options this builder cannot honour (before anything is pushed)."""

    def push(self, image: str, target: str, report: Reporter, credentials: Credentials,
             tls: Tls, image_id: str | None = None) -> str:
        """Push `image` (ID `image_id`, when known) as `target`, which names it locally too
        afterwards; return the manifest digest (sha256:...)."""


@dataclass(frozen=True)
class DockerBuilder:
    name: str = "docker"

    def build_image(self, context: Path, tag: str, report: Reporter,
                    buildargs: dict[str, str] | None = None, *, nocache: bool = False,
                    platform: str | None = None, labels: dict[str, str] | None = None,
                    stream_context: bool = False) -> str:
        from packager.executor import docker_build

        return docker_build.build_image(context, tag, report, buildargs, nocache=nocache,
                                        platform=platform, labels=labels,
                                        stream_context=stream_context)

    def build_weights(self, context: Path, tag: str, base_ref: str, report: Reporter, *,
                      labels: dict[str, str], nocache: bool = False,
                      platform: str | None = None) -> str:
        if platform is not None:  # another platform's base: the engine's build resolves it
            return self.build_image(context, tag, report, nocache=nocache, platform=platform,
                                    labels=labels, stream_context=True)
        # The layers assembled here and loaded: the bytes are written twice, not three times
        # as by the legacy builder's COPY (packager/layers.py). The Dockerfile beside them
        # says what the layers hold, and buildah builds it.
        from packager.executor.weights_load import load_weights_image

        return load_weights_image(context, tag, base_ref, report, labels)

    def image_id(self, reference: str) -> str | None:
        from packager.executor import docker_build

        return docker_build.image_id(reference)

    def image_exists(self, reference: str, image_id: str) -> bool:
        from packager.executor import docker_build

        return docker_build.image_exists(reference, image_id)

    def ensure_image(self, reference: str, name: str | None = None) -> str:
        from packager.executor import docker_build

        return docker_build.ensure_image(reference.removeprefix("docker-daemon:"))

    def check_base_source(self, source: str | None) -> None:
        if source is not None and not source.startswith("docker-daemon:"):
            raise InputError(f"--base-image {bounded(source)} is an image file; the Docker "
                             "engine builds from images it holds",
                             fix="`docker load -i` the file and give its name, or build with "
                             "--builder buildah")

    def image_labels(self, reference: str) -> dict[str, str] | None:
        from packager.executor import docker_build

        return docker_build.image_labels(reference)

    def check_push(self, tls: Tls) -> None:
        # The engine, not this process, talks to the registry: it trusts a registry's CA only
        # from its own certs.d and skips TLS only for its configured insecure registries.
        if tls.ca_bundle is not None:
            raise InputError(
                "--ca-bundle cannot be handed to the Docker engine for a push",
                fix="put the CA at /etc/docker/certs.d/HOST:PORT/ca.crt on the engine's machine "
                "(read at each push, no restart), or package and push with --builder buildah")
        if not tls.verify:
            raise InputError(
                "--tls-verify false cannot be handed to the Docker engine for a push",
                fix="list the registry under insecure-registries in the engine's daemon.json, "
                "or package and push with --builder buildah")

    def push(self, image: str, target: str, report: Reporter, credentials: Credentials,
             tls: Tls, image_id: str | None = None) -> str:
        from packager.executor import docker_push

        return docker_push.push(image, target, report, credentials)


FALLBACK_NOTE = "no Docker engine answered, so --builder auto chose buildah"


@dataclass(frozen=True)
class BuildahBuilder:
    name: str = "buildah"
    # Chosen by `--builder auto` only because no Docker engine answered. A user who expected
    # the engine sees buildah's own error (a pull from docker.io, a missing storage driver)
    # and would not guess why buildah ran: such errors then say so in their first line.
    fallback: bool = False

    @contextmanager
    def _explained(self) -> Iterator[None]:
        try:
            yield
        except PackagerError as err:
            if not self.fallback:
                raise
            where = f"{bounded(err.file, 300, quote=False)}: " if err.file else ""
            raise type(err)(f"{FALLBACK_NOTE}; {where}{err.message}",
                            fix=f"{err.fix or 'fix the cause above'}; or start the Docker "
                            "engine (or set DOCKER_HOST) and rerun, or pass --builder buildah "
                            "to choose buildah on purpose",
                            log_tail=err.log_tail) from err

    def build_image(self, context: Path, tag: str, report: Reporter,
                    buildargs: dict[str, str] | None = None, *, nocache: bool = False,
                    platform: str | None = None, labels: dict[str, str] | None = None,
                    stream_context: bool = False) -> str:
        from packager.executor import buildah_build

        with self._explained():
            return buildah_build.build_image(context, tag, report, buildargs, nocache=nocache,
                                             platform=platform, labels=labels)

    def build_weights(self, context: Path, tag: str, base_ref: str, report: Reporter, *,
                      labels: dict[str, str], nocache: bool = False,
                      platform: str | None = None) -> str:
        return self.build_image(context, tag, report, nocache=nocache, platform=platform,
                                labels=labels)

    def image_id(self, reference: str) -> str | None:
        from packager.executor import buildah_build

        try:
            return buildah_build.image_id(reference)
        except BuildError:
            return None

    def image_exists(self, reference: str, image_id: str) -> bool:
        from packager.executor import buildah_build

        return buildah_build.image_exists(reference, image_id)

    def ensure_image(self, reference: str, name: str | None = None) -> str:
        from packager.executor import buildah_build

        with self._explained():
            return buildah_build.ensure_image(reference,
                                              name=name if name != reference else None)

    def check_base_source(self, source: str | None) -> None:
        from packager.executor import buildah_build

        if source is None:
            return
        transport, path = buildah_build.archive_path(source)
        if transport and not path.is_file():
            raise InputError("does not exist or is not a file", file=str(path),
                             fix="give the image archive `triton-packager base-image --output "
                             "oci-archive:PATH` (or `buildah push IMAGE oci-archive:PATH`) wrote")

    def image_labels(self, reference: str) -> dict[str, str] | None:
        from packager.executor import buildah_build

        return buildah_build.image_labels(reference)

    def check_push(self, tls: Tls) -> None:
        return None

    def push(self, image: str, target: str, report: Reporter, credentials: Credentials,
             tls: Tls, image_id: str | None = None) -> str:
        from packager.executor import buildah_build

        # By ID: an earlier push renamed the image in result.json to its pushed name, which
        # only the tag below gives it in storage (a rerun on a kept volume pushes it again).
        source = image_id or image
        report.step(f"push: {target} (buildah; credentials from {credentials.source})")
        with self._explained(), _authfile_for(credentials, target) as authfile, \
                _cert_dir(tls) as cert_dir:
            digest = buildah_build.push(source, target, authfile=authfile,
                                        tls_verify=tls.verify, cert_dir=cert_dir)
        if target != image:
            buildah_build.tag_image(source, target)
        return digest


def registry_host(reference: str) -> str:
    """The registry part of a reference, as auth files key it (Docker Hub: docker.io)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


@contextmanager
def _authfile_for(credentials: Credentials, target: str) -> Iterator[Path | None]:
    """The auth file buildah reads. A username and password become a private temporary auth
    file (mode 0600 in a 0700 directory, removed after the push): buildah's `--creds` would put
    the password on the command line, where any local user reads it in `ps`."""
    if credentials.username is None:
        yield credentials.authfile
        return
    token = base64.b64encode(
        f"{credentials.username}:{credentials.password or ''}".encode()).decode("ascii")
    with tempfile.TemporaryDirectory(prefix="triton-packager-auth-") as tmp:
        path = Path(tmp) / "auth.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"auths": {registry_host(target): {"auth": token}}}, fh)
        yield path


@contextmanager
def _cert_dir(tls: Tls) -> Iterator[Path | None]:
    """buildah reads a registry's CA from a directory of *.crt files (`--cert-dir`)."""
    if tls.ca_bundle is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="triton-packager-certs-") as tmp:
        shutil.copyfile(tls.ca_bundle, Path(tmp) / "ca.crt")
        yield Path(tmp)


def docker_answers() -> bool:
    try:
        from packager.executor import docker_build

        docker_build.client()
    except (BuildError, ImportError):
        return False
    return True


def select(name: str, *, prefer_buildah: bool = False) -> Builder:
    """The builder `--builder NAME` asks for, after checking that it can run here (so a missing
    builder is found before the first write)."""
    if name not in BUILDER_CHOICES:
        raise InputError(f"--builder {name[:40]!r} is not a builder",
                         fix=f"use one of {', '.join(BUILDER_CHOICES)}")
    from packager.executor import buildah_build

    if name == "docker":
        from packager.executor import docker_build

        docker_build.client()  # BuildError (exit 3) when no engine answers
        return DockerBuilder()
    if name == "buildah":
        buildah_build.require()
        return BuildahBuilder()
    if prefer_buildah and buildah_build.available():
        return BuildahBuilder()
    if docker_answers():
        return DockerBuilder()
    if buildah_build.available():
        return BuildahBuilder(fallback=True)
    raise BuildError("no image builder here: no Docker engine answers and buildah is not "
                     "installed",
                     fix="start dockerd (or set DOCKER_HOST), or " + buildah_build.INSTALL_FIX)
