"""What to build for an analysed package (pure): its base image, Dockerfile and image name,
from the package and the user's `Options`."""

from __future__ import annotations

import dataclasses

from packager.analysis.model import Analysis
from packager.analysis.options import HEALTHCHECK_CHOICES, Options
from packager.analysis.package import Package, as_package
from packager.backends import ENSEMBLE
from packager.basechoice import BaseImage, choose_base_image
from packager.dockerfile import DockerfileSpec, render_dockerfile
from packager.errors import InputError, bounded
from packager.imageref import ImageRef, parse_reference, render_image_name


def base_image_for(x: Analysis | Package, options: Options) -> BaseImage:
    if options.healthcheck not in HEALTHCHECK_CHOICES:
        raise InputError(
            f"--healthcheck has value {bounded(options.healthcheck)}",
            fix=f"use one of {', '.join(HEALTHCHECK_CHOICES)}",
        )
    package = as_package(x)
    backends = list(dict.fromkeys(m.backend for m in package.models if m.backend is not ENSEMBLE))
    bases = [choose_base_image(b, options.base_image) for b in backends or [ENSEMBLE]]
    # Several backends: the oldest default release still ships all of them (TensorFlow left
    # after 25.02); a given --base-image is the same for all, with every model's warnings.
    base = min(bases, key=lambda b: b.ngc_release or "")
    warnings = tuple(dict.fromkeys(w for b in bases for w in b.warnings))
    base = dataclasses.replace(base, warnings=warnings)
    if options.healthcheck == "none":
        base = dataclasses.replace(base, health_tool=None)
    elif options.healthcheck == "curl":
        base = dataclasses.replace(base, health_tool="curl")
    return base


def dockerfile_for(x: Analysis | Package, options: Options) -> DockerfileSpec:
    return render_dockerfile(as_package(x).plan, base_image_for(x, options), options.env,
                             options.labels, options.template_dirs)


def image_name_for(x: Analysis | Package, options: Options, random_uuid: str) -> ImageRef:
    if options.tag is not None:  # an empty --tag is a wrong tag, not "no tag"
        return parse_reference(options.tag, what="--tag", allow_digest=False)
    first = as_package(x).first
    return render_image_name(
        options.image_template,
        name=first.meta.name,
        version=first.meta.version,
        random_uuid=random_uuid,
    )
