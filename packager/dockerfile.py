"""Dockerfile text, rendered from `templates/` with Jinja2 (StrictUndefined)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from packager import __version__
from packager.backends import BY_KEY
from packager.baseimage import BaseImage
from packager.errors import InputError
from packager.plan import RepositoryPlan

MODEL_REPOSITORY = "/models"

# Anything that could end a Dockerfile instruction, continue it, quote out of a value or
# expand a variable. Values are validated upstream; this is the last line of defence.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\$`]')


def templates_dir() -> Path:
    """`templates/` beside the package (source checkout) or inside it (installed wheel)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates", here.parent / "templates"):
        if (candidate / "Dockerfile.j2").is_file():
            return candidate
    raise FileNotFoundError("triton-packager templates are missing from the installation")


def _dq(value: object) -> str:
    text = str(value)
    if _UNSAFE.search(text):
        raise InputError(
            f"value {text!r} contains a character that is not allowed in a Dockerfile "
            "(newline, quote, backslash, backtick or '$')",
            fix="remove the character from the model name, version or option",
        )
    return f'"{text}"'


@cache
def _environment(path: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(path),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["dq"] = _dq
    return env


@dataclass(frozen=True)
class DockerfileSpec:
    text: str
    sha256: str
    base: BaseImage


def render_dockerfile(plan: RepositoryPlan, base: BaseImage) -> DockerfileSpec:
    backend = BY_KEY[plan.backend_key]
    env = _environment(str(templates_dir()))
    name = f"backends/{backend.key}.j2"
    template = env.get_template(name if name in env.list_templates() else "backends/default.j2")
    text = template.render(
        packager_version=__version__,
        name=plan.model_name,
        version=plan.version,
        backend=backend,
        base=base,
        layers=[layer.value for layer in plan.layers()],
        model_repository=MODEL_REPOSITORY,
        health_tool=base.health_tool,
        env_files=list(plan.env_files),
    )
    # A rendered line must never start a second instruction by accident.
    for line in text.splitlines():
        if "\r" in line:
            raise InputError("rendered Dockerfile contains a carriage return", fix="report a bug")
    return DockerfileSpec(text, hashlib.sha256(text.encode()).hexdigest(), base)
