"""The Docker engine as a builder, through the docker SDK: builds (the legacy builder's API),
images pulled and inspected, the weights layers loaded (docker_load.py), base images imported
from a root filesystem, and pushes with credentials handed to the engine for one request
(never written anywhere).

`DockerBuilder` (the `Builder` protocol) is at the end; the functions above it are the engine
calls it makes. The engine itself runs the images verify starts (executor/container.py).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import re
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import docker
import docker.auth
import docker.errors

from packager import layers
from packager.dockerfile import base_images
from packager.errors import BuildError, InputError, PushError, bounded, redact
from packager.executor.images.builder import (
    Builder,
    Credentials,
    ExportedLayer,
    ImageInfo,
    Tls,
    registry_host,
)
from packager.executor.images.docker_load import load_weights_image, piped
from packager.executor.report import Reporter
from packager.imageref import DAEMON_TRANSPORT, parse_reference, split_transport

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


def ensure_image(reference: str, *, pull: bool = False) -> str:
    """The ID of `reference`, pulling it first when the engine does not have it (`pull`: even
    when it has an image of that name)."""
    c = client()
    if pull:
        try:
            return str(c.images.pull(reference).id)
        except docker.errors.DockerException as exc:
            raise BuildError(f"base image {reference} could not be pulled: "
                             f"{str(exc).splitlines()[0][:300]}",
                             fix="check the name, the registry and its credentials "
                             "(`docker login`)") from None
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
    """Build `context`. With `stream_context` (the weights context only), the context is sent
    as a tar produced on the fly: no .dockerignore is applied, so only for contexts that hold
    just what the build needs."""
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


# --- base images from a root filesystem --------------------------------------------------------

def import_rootfs(tar_path: Path, reference: str, *, env: Sequence[str], workdir: str,
                  labels: Mapping[str, str], cmd: Sequence[str]) -> str:
    """`docker import` of a root filesystem tar as `reference`, its config set; its ID."""
    repo, tag = reference.rsplit(":", 1)
    changes = [*(f"ENV {e}" for e in env), f"WORKDIR {workdir}",
               *(f"LABEL {k}={v}" for k, v in labels.items()),
               f"CMD {json.dumps(list(cmd))}"]
    c = client()
    try:
        c.api.import_image_from_file(str(tar_path), repository=repo, tag=tag, changes=changes)
        return str(c.images.get(reference).id)
    except docker.errors.DockerException as exc:
        raise BuildError(f"docker import of the base image failed: {exc}") from None


# --- push --------------------------------------------------------------------------------------

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


# --- layers for the registry pusher ---------------------------------------------------------------

class _Reader:
    """A file object over the engine's response chunks (for tarfile's stream mode); a read
    copies only what it returns."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.chunk = b""
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n
        while want != 0:
            if self.pos >= len(self.chunk):
                try:
                    self.chunk, self.pos = next(self.chunks), 0
                except StopIteration:
                    break
            end = len(self.chunk) if want < 0 else min(len(self.chunk), self.pos + want)
            parts.append(self.chunk[self.pos:end])
            if want > 0:
                want -= end - self.pos
            self.pos = end
        return b"".join(parts)


def export_layers(image: str, skip: Mapping[str, int],
                  workdir: Path) -> tuple[bytes, dict[str, ExportedLayer]]:
    """The config and the layers not in `skip`, from `docker save` (the engine's only way out
    for an image's bytes), read as a stream: a layer whose size is one of `skip`'s is passed
    over unread into any file; every other is written to `workdir` while it is hashed, and kept
    unless its diff ID is in `skip`. (docker 20.10's archive names a layer by a legacy ID, not
    its digest, so a layer is known only once read.)"""
    sizes = set(skip.values())
    c = client()
    config = b""
    out: dict[str, ExportedLayer] = {}
    try:
        stream = c.api.get_image(image, chunk_size=1 << 20)
        with tarfile.open(fileobj=cast("IO[bytes]", _Reader(iter(stream))), mode="r|",
                          bufsize=1 << 20) as tar:
            for member in tar:
                if member.name.endswith("/layer.tar") and member.isfile():
                    if member.size in sizes:
                        continue
                    src = tar.extractfile(member)
                    assert src is not None
                    path = workdir / f"layer-{len(out)}.tar"
                    sha = hashlib.sha256()
                    with path.open("wb") as fh:
                        while chunk := src.read(1 << 20):
                            sha.update(chunk)
                            fh.write(chunk)
                    diff_id = f"sha256:{sha.hexdigest()}"
                    if diff_id in skip or diff_id in out:
                        path.unlink()
                    else:
                        out[diff_id] = ExportedLayer(path, diff_id, gzipped=False,
                                                     tar_size=member.size)
                elif re.fullmatch(r"[0-9a-f]{64}\.json", member.name):
                    src = tar.extractfile(member)
                    assert src is not None
                    config = src.read()
    except docker.errors.DockerException as exc:
        raise PushError(f"cannot read {bounded(image)} from the Docker engine: "
                        f"{bounded(str(exc), 200, quote=False)}",
                        fix="package the model again") from None
    except OSError as exc:  # the spool: a full disk
        raise PushError(f"cannot write the layers to push under {bounded(str(workdir), 200)}: "
                        f"{exc.strerror or exc}",
                        fix="free space beside the output directory and push again") from None
    if not config:
        raise PushError(f"`docker save` of {bounded(image)} held no image config",
                        fix="package the model again")
    return config, out


# --- the builder -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DockerBuilder:
    name: str = "docker"
    missing: str = "no Docker engine answers"
    setup_hint: str = "start dockerd (or set DOCKER_HOST)"
    reads_archives: bool = False  # the engine builds from images it holds
    writes_archives: bool = False

    def available(self) -> bool:
        try:
            client()
        except BuildError:
            return False
        return True

    def require(self) -> None:
        client()  # BuildError (exit 3) when no engine answers

    def build_image(self, context: Path, tag: str, report: Reporter,
                    buildargs: dict[str, str] | None = None, *, nocache: bool = False,
                    platform: str | None = None, labels: dict[str, str] | None = None) -> str:
        return build_image(context, tag, report, buildargs, nocache=nocache, platform=platform,
                           labels=labels)

    def build_weights(self, context: Path, tag: str, base_ref: str, report: Reporter, *,
                      labels: dict[str, str], nocache: bool = False,
                      platform: str | None = None,
                      max_layer_size: int = layers.DEFAULT_MAX_LAYER_SIZE) -> str:
        if self.weights_from_dockerfile(platform):
            # another platform's base: the engine's build resolves it; the weights context
            # holds just the weights, so it is streamed (no temporary tar of gigabytes)
            return build_image(context, tag, report, nocache=nocache, platform=platform,
                               labels=labels, stream_context=True)
        # The layers assembled here and loaded: the bytes are written twice, not three times
        # as by the legacy builder's COPY (packager/layers.py). The Dockerfile beside them
        # says what the layers hold, and the other ways of building the weights build it.
        return load_weights_image(client(), context, tag, base_ref, report, labels,
                                  max_layer_size=max_layer_size)

    def weights_from_dockerfile(self, platform: str | None) -> bool:
        return platform is not None

    def image_id(self, reference: str) -> str | None:
        return image_id(reference)

    def image_exists(self, reference: str, image_id: str) -> bool:
        return image_exists(reference, image_id)

    def image_labels(self, reference: str) -> dict[str, str] | None:
        return image_labels(reference)

    def manifest_digest(self, reference: str) -> str | None:
        try:
            found = client().images.get(reference).attrs.get("RepoDigests") or []
        except docker.errors.DockerException:
            return None
        # "repo@sha256:..." per repository the image was pulled from or pushed to: the one of
        # the reference's own repository, which the registry serves under that digest.
        repository = parse_reference(reference).repository
        for entry in found:
            name, _, digest = str(entry).partition("@")
            if name == repository and digest.startswith("sha256:"):
                return digest
        return None

    def ensure_image(self, reference: str, name: str | None = None, *,
                     pull: bool = False) -> str:
        transport, rest = split_transport(reference)
        if transport == DAEMON_TRANSPORT:
            return ensure_image(rest)  # the engine's own image: nothing to pull
        return ensure_image(reference, pull=pull)

    def remove_image_id(self, image_id: str) -> None:
        try:
            client().images.remove(image_id, force=True)
        except docker.errors.ImageNotFound:
            return
        except docker.errors.APIError as exc:
            raise BuildError(f"cannot remove image {image_id[:19]}: {exc}") from None

    def check_base_source(self, source: str | None) -> None:
        if source is not None and split_transport(source)[0] != DAEMON_TRANSPORT:
            raise InputError(f"--base-image {bounded(source)} is an image file; the Docker "
                             "engine builds from images it holds",
                             fix="`docker load -i` the file and give its name, or build with "
                             "--builder buildah")

    def import_rootfs(self, tar_path: Path, reference: str, *, env: Sequence[str],
                      workdir: str, labels: Mapping[str, str], cmd: Sequence[str]) -> str:
        return import_rootfs(tar_path, reference, env=env, workdir=workdir, labels=labels,
                             cmd=cmd)

    def export_image(self, reference: str, output: str, *, name: str | None = None) -> Path:
        raise InputError(f"the Docker engine does not write image files ({bounded(output)})",
                         fix="use --builder buildah, or `docker save` the image")

    def make_runnable(self, image: str, image_id: str | None, report: Reporter) -> None:
        return None  # verify runs it on this engine, where it is

    def run_hint(self, image: str) -> str:
        return ""

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

    def diff_ids(self, image: str) -> list[str]:
        try:
            attrs = client().images.get(image).attrs
        except docker.errors.DockerException as exc:
            raise PushError(f"image {bounded(image)} is not on this engine: "
                            f"{bounded(str(exc), 200, quote=False)}",
                            fix="package the model again") from None
        return list((attrs.get("RootFS") or {}).get("Layers") or [])

    def export_layers(self, image: str, skip: Mapping[str, int], workdir: Path,
                      ) -> tuple[bytes, dict[str, ExportedLayer]]:
        return export_layers(image, skip, workdir)

    def tag_image(self, image: str, name: str) -> None:
        ref = parse_reference(name, what="image name")
        try:
            client().images.get(image).tag(ref.repository, ref.tag)
        except docker.errors.DockerException as exc:
            raise PushError(f"cannot name {bounded(image)} {bounded(name)}: "
                            f"{bounded(str(exc), 200, quote=False)}") from None

    def list_images(self) -> list[ImageInfo]:
        out = []
        for img in client().images.list():
            attrs = img.attrs
            out.append(ImageInfo(str(img.id), tuple(img.tags), dict(img.labels or {}),
                                 tuple((attrs.get("RootFS") or {}).get("Layers") or []),
                                 int(attrs.get("Size") or 0)))
        return out

    def remove_image(self, name: str) -> None:
        try:
            client().images.remove(name, noprune=False)
        except docker.errors.DockerException as exc:
            raise BuildError(f"cannot remove {bounded(name)}: "
                             f"{bounded(str(exc), 200, quote=False)}") from None

    def push(self, image: str, target: str, report: Reporter, credentials: Credentials,
             tls: Tls, image_id: str | None = None) -> str:
        return push(image, target, report, credentials)


_CHECKED: type[Builder] = DockerBuilder  # mypy checks the protocol here
