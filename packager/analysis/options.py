"""What the user asks of a package (pure): `Options`, the choices that shape its config, base
image, Dockerfile and image name."""

from __future__ import annotations

from dataclasses import dataclass, field

from packager.configgen import ConfigOptions
from packager.imageref import DEFAULT_NAME_TEMPLATE
from packager.pyenv import EnvOptions

HEALTHCHECK_CHOICES = ("auto", "curl", "none")


@dataclass(frozen=True)
class Options:
    base_image: str | None = None
    healthcheck: str = "auto"
    image_template: str = DEFAULT_NAME_TEMPLATE
    tag: str | None = None
    env: EnvOptions = field(default_factory=EnvOptions)
    labels: tuple[tuple[str, str], ...] = ()
    template_dirs: tuple[str, ...] = ()
    model_config: ConfigOptions = field(default_factory=ConfigOptions)
    allow_secret_files: bool = False  # secretfiles.py: refused unless the user says so
    # "runtime": ONNX, OpenVINO and SavedModel models served by the Python backend with their
    # own runtime (packager/runtime.py); "native": by their Triton backend.
    serve_with: str = "native"
