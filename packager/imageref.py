"""Docker image references: validated with `re.fullmatch`, never passed through unchecked.

docker-py's own tag regex ends in `$` and so accepts a trailing newline; these do not.
Grammar from distribution/reference (`reference.go`).

Also where an image is, as containers/image writes it (`TRANSPORT:REST`: `oci-archive:PATH`,
`docker-daemon:NAME`, ...): parsed here and nowhere else (`split_transport`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packager.errors import InputError, bounded

_DOMAIN_COMP = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMP}(?:\.{_DOMAIN_COMP})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMP = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REFERENCE_RE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMP}(?:/{_PATH_COMP})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
NAME_TOTAL_MAX = 255

DEFAULT_NAME_TEMPLATE = "{{ Name }}-{{ Version }}:{{ RandomUUID }}"


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str, *, what: str = "image reference",
                    allow_digest: bool = True) -> ImageRef:
    m = REFERENCE_RE.fullmatch(text) if len(text) <= 2 * NAME_TOTAL_MAX else None
    if not m or len(m.group("name")) > NAME_TOTAL_MAX:
        raise InputError(
            f"{what} {bounded(text)} is not a valid Docker image reference",
            fix="use [registry/]repository[:tag] with a lower-case repository of at most "
            f"{NAME_TOTAL_MAX} characters and a tag of at most 128, for example "
            "registry.example.com/team/model:1",
        )
    if m.group("digest") and not allow_digest:
        raise InputError(
            f"{what} {bounded(text)} names a digest (@{m.group('digest').split(':')[0]}:...); a "
            "built image gets its digest from its content, it cannot be given one",
            fix="drop the @sha256:... part; push records the digest in result.json",
        )
    return ImageRef(m.group("name"), m.group("tag"), m.group("digest"))


TEMPLATE_MAX = 512
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
TEMPLATE_NAMES = ("Name", "Version", "RandomUUID")


def render_image_name(template: str, *, name: str, version: int, random_uuid: str) -> ImageRef:
    """The original packager's naming: `{{ Name }}`, `{{ Version }}` and `{{ RandomUUID }}`
    substituted into the template, lower-cased. Only these placeholders: a general template
    language would let a name template loop, multiply strings or read attributes."""
    fix = f"use only {{{{ Name }}}}, {{{{ Version }}}} and {{{{ RandomUUID }}}}, e.g. " \
          f"{DEFAULT_NAME_TEMPLATE!r}"
    if len(template) > TEMPLATE_MAX:
        raise InputError(f"--image-name is {len(template)} characters long; at most "
                         f"{TEMPLATE_MAX} are accepted", fix=fix)
    values = {"Name": name, "Version": str(version), "RandomUUID": random_uuid}

    def substitute(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise InputError(f"--image-name {bounded(template)} uses {{{{ {key} }}}}, which is "
                             "not a known name", fix=fix)
        return values[key]

    text = _PLACEHOLDER_RE.sub(substitute, template)
    if any(mark in text for mark in ("{{", "}}", "{%", "%}", "{#")):
        raise InputError(f"--image-name {bounded(template)} has template syntax other than "
                         "plain placeholders", fix=fix)
    return parse_reference(text.lower(), what=f"--image-name {bounded(template)}: the name",
                           allow_digest=False)


# --- names a built or pushed image must not take ---------------------------------------------
# The content-addressed weights images (packager.dockerfile.WEIGHTS_REPOSITORY) live under this
# repository in the builder's store; a model image of that name could stand in for one.
RESERVED_REPOSITORY = "triton-packager/weights"


def canonical_repository(reference: str) -> str:
    """The repository of `reference` as registries and auth files name it: Docker Hub's short
    names spelled out (`ubuntu` -> `docker.io/library/ubuntu`). Not for transports."""
    repository = parse_reference(reference).repository
    first, sep, rest = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if first in ("index.docker.io", "registry-1.docker.io"):
            first = "docker.io"
        if first == "docker.io" and "/" not in rest:
            rest = "library/" + rest
        return f"{first}/{rest}"
    return f"docker.io/{repository if sep else 'library/' + repository}"


def refuse_base_repository(image: str, base: str, *, what: str) -> None:
    """InputError when `image` (a name to build or push) is in the base image's repository, or
    in the repository the packager keeps its weights images in. A store kept between runs (the
    Tekton build cache) would then hold another image under the base's name, and a push with a
    credential that may write the mirror would replace the base for every later run."""
    try:
        base_repository = canonical_repository(base)
    except InputError:  # not a reference (checked where it is given): nothing it could shadow
        base_repository = ""
    if canonical_repository(image) == base_repository:
        raise InputError(f"{what} {bounded(image)} is in the base image's repository "
                         f"({bounded(parse_reference(base).repository)})",
                         fix="push model images to a repository of their own (another "
                         "--registry path or --image-name), never where the base image is "
                         "pulled from")
    repository = parse_reference(image).repository
    if repository == RESERVED_REPOSITORY or repository.endswith("/" + RESERVED_REPOSITORY):
        raise InputError(f"{what} {bounded(image)} is in {RESERVED_REPOSITORY}, the repository "
                         "of the packager's own weights images", fix="choose another name")


# --- transports: where an image is --------------------------------------------------------------
ARCHIVE_TRANSPORTS = ("oci-archive", "docker-archive")  # an image file: PATH[:NAME]
DAEMON_TRANSPORT = "docker-daemon"  # the local Docker engine's images: NAME
REGISTRY_TRANSPORT = "docker"  # a registry: docker://REF
STORAGE_TRANSPORT = "containers-storage"  # buildah's (podman's) own storage: NAME
TRANSPORTS = (*ARCHIVE_TRANSPORTS, DAEMON_TRANSPORT, STORAGE_TRANSPORT, REGISTRY_TRANSPORT)


def split_transport(reference: str) -> tuple[str, str]:
    """(transport, the rest) of `TRANSPORT:REST`; ("", reference) for a plain name.
    `docker://REF` is ("docker", "REF"); `docker:5000/x` is a plain name (a registry host)."""
    for transport in TRANSPORTS:
        prefix = transport + ("://" if transport == REGISTRY_TRANSPORT else ":")
        if reference.startswith(prefix):
            return transport, reference[len(prefix):]
    return "", reference


def archive_path(reference: str) -> tuple[str, Path]:
    """(transport, file) of an `oci-archive:PATH[:NAME]` / `docker-archive:...` reference;
    ("", Path()) for anything else."""
    transport, rest = split_transport(reference)
    if transport not in ARCHIVE_TRANSPORTS:
        return "", Path()
    return transport, Path(rest.split(":", 1)[0])


def check_archive_output(output: str) -> tuple[str, Path]:
    """`oci-archive:PATH` or `docker-archive:PATH` -> (transport, path); anything else is bad
    input (an image file to write: a name inside is added by the writer)."""
    transport, rest = split_transport(output)
    if transport not in ARCHIVE_TRANSPORTS or not rest or "\n" in rest:
        raise InputError(f"image output {bounded(output)} is not oci-archive:PATH or "
                         "docker-archive:PATH", fix="e.g. oci-archive:/tmp/model.tar")
    if ":" in rest:
        raise InputError(f"image output path {bounded(rest)} contains ':'",
                         fix="choose a file name without ':' (the image's name is added for you)")
    return transport, Path(rest)
