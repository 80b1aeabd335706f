"""Docker image references: validated with `re.fullmatch`, never passed through unchecked.

docker-py's own tag regex ends in `$` and so accepts a trailing newline; these do not.
Grammar from distribution/reference (`reference.go`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jinja2
import jinja2.sandbox

from packager.errors import InputError

_DOMAIN_COMP = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMP}(?:\.{_DOMAIN_COMP})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMP = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
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


def parse_reference(text: str, *, what: str = "image reference") -> ImageRef:
    m = REFERENCE_RE.fullmatch(text)
    if not m or len(m.group("name")) > NAME_TOTAL_MAX:
        raise InputError(
            f"{what} {text!r} is not a valid Docker image reference",
            fix="use [registry/]repository[:tag] with a lower-case repository, for example "
            "registry.example.com/team/model:1",
        )
    return ImageRef(m.group("name"), m.group("tag"), m.group("digest"))


def render_image_name(template: str, *, name: str, version: int, random_uuid: str) -> ImageRef:
    """The original packager's naming: a Jinja template over Name/Version/RandomUUID, lower-cased."""
    env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    try:
        text = env.from_string(template).render(
            Name=name, Version=str(version), RandomUUID=random_uuid
        )
    except jinja2.TemplateError as exc:
        raise InputError(
            f"image name template {template!r} cannot be rendered: {exc}",
            fix=f"use only Name, Version and RandomUUID, e.g. {DEFAULT_NAME_TEMPLATE!r}",
        ) from None
    return parse_reference(text.lower(), what=f"image name rendered from {template!r}:")
