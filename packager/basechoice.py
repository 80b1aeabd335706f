"""Choosing the base image: the NGC release must still ship the model's backend."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from packager.backends import Backend
from packager.errors import InputError, bounded
from packager.imageref import (
    ARCHIVE_TRANSPORTS,
    DAEMON_TRANSPORT,
    parse_reference,
    split_transport,
)

NGC_REPOSITORY = "nvcr.io/nvidia/tritonserver"
DEFAULT_NGC_RELEASE = "26.07"  # server 2.71.0, Ubuntu 24.04, Python 3.12

# The CPU-only base image built locally from PyPI's nvidia-pytriton wheel
# (`triton-packager base-image`). Only the Python backend is inside it.
LOCAL_CPU_REPOSITORY = "triton-packager/tritonserver-cpu"
LOCAL_CPU_TAG = "2.51.0-py3.11"
LOCAL_CPU_IMAGE = f"{LOCAL_CPU_REPOSITORY}:{LOCAL_CPU_TAG}"

_NGC_TAG_RE = re.compile(r"(?P<release>\d\d\.\d\d)-(?P<variant>[a-z0-9-]+)")
# Variants that hold only some backends (triton-facts.md section 5.1).
_VARIANT_BACKENDS = {
    "pyt-python-py3": frozenset({"pytorch", "python"}),
    "tf2-python-py3": frozenset({"tensorflow", "python"}),
    "vllm-python-py3": frozenset({"python"}),
    "trtllm-python-py3": frozenset({"python"}),
}


@dataclass(frozen=True)
class BaseImage:
    ref: str
    ngc_release: str | None  # "yy.mm" for NGC images
    health_tool: str | None  # "curl" where the image is known to have it
    backends: frozenset[str] | None  # None: unknown
    warnings: tuple[str, ...] = ()


def _default_release(backend: Backend) -> str:
    return backend.last_ngc_release or DEFAULT_NGC_RELEASE


def choose_base_image(backend: Backend, requested: str | None) -> BaseImage:
    if requested is None:
        release = _default_release(backend)
        return BaseImage(f"{NGC_REPOSITORY}:{release}-py3", release, "curl", None)

    ref = parse_reference(requested, what="--base-image")
    if ref.repository == LOCAL_CPU_REPOSITORY:
        warnings: tuple[str, ...] = ()
        if backend.backend != "python":
            warnings = (
                f"{requested} holds only Triton's Python backend: the image builds, but it "
                f"cannot serve a {backend.title} model; use {NGC_REPOSITORY}:"
                f"{_default_release(backend)}-py3 to serve it",
            )
        return BaseImage(requested, None, "curl", frozenset({"python"}), warnings)

    if ref.repository == NGC_REPOSITORY and ref.tag:
        m = _NGC_TAG_RE.fullmatch(ref.tag)
        if m:
            release, variant = m.group("release"), m.group("variant")
            if backend.last_ngc_release and release > backend.last_ngc_release:
                raise InputError(
                    f"--base-image {requested} cannot serve a {backend.title} model: the "
                    f"{backend.backend} backend was removed after NGC release "
                    f"{backend.last_ngc_release}",
                    fix=f"use {NGC_REPOSITORY}:{backend.last_ngc_release}-py3 (the default for "
                    f"this model), or convert the model to ONNX",
                )
            only = _VARIANT_BACKENDS.get(variant)
            if only is not None and backend.backend not in only:
                raise InputError(
                    f"--base-image {requested} holds only the {', '.join(sorted(only))} "
                    f"backends, not {backend.backend}",
                    fix=f"use {NGC_REPOSITORY}:{release}-py3",
                )
            return BaseImage(requested, release, "curl", only)

    return BaseImage(
        requested,
        None,
        None,
        None,
        (
            f"{requested} is not an NGC tritonserver image: the packager cannot check that it "
            "has the model's backend, and adds no HEALTHCHECK unless --healthcheck curl is given",
        ),
    )


BASE_SOURCE_TRANSPORTS = (*ARCHIVE_TRANSPORTS, DAEMON_TRANSPORT)
_ARCHIVE_NAME_PREFIX = "localhost/triton-packager/base-archive"


def split_base_source(value: str) -> tuple[str, str | None]:
    """`--base-image` as (the name the Dockerfile's FROM uses, where the image comes from).

    A plain reference is its own source (None). `docker-daemon:NAME` is NAME, copied from the
    local Docker engine. `oci-archive:PATH[:NAME]` / `docker-archive:PATH[:NAME]` is NAME, or
    without one a name derived from the path (the base is then not one the packager knows:
    give --python-version for a Python model)."""
    transport, rest = split_transport(value)
    if transport not in BASE_SOURCE_TRANSPORTS:
        return value, None
    fix = ("give oci-archive:PATH[:NAME], docker-archive:PATH[:NAME] or docker-daemon:NAME, "
           "e.g. oci-archive:/workspace/base.tar:" + LOCAL_CPU_IMAGE)
    if transport == DAEMON_TRANSPORT:
        name = rest
    else:
        path, _, name = rest.partition(":")
        if not path or any(ch in path for ch in "\n\r\0") or len(path) > 4096:
            raise InputError(f"--base-image {bounded(value)} names no usable file", fix=fix)
        if not name:
            digest = hashlib.sha256(path.encode()).hexdigest()[:16]
            name = f"{_ARCHIVE_NAME_PREFIX}:{digest}"
    parse_reference(name, what=f"--base-image {bounded(value)}: image name", allow_digest=False)
    return name, value
