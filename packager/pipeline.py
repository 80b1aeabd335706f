"""The pure pipeline: an InputTree and options in, every generated artefact out."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from packager import __version__
from packager.backends import Backend
from packager.baseimage import BaseImage, choose_base_image
from packager.detect import Detection, detect
from packager.dockerfile import DockerfileSpec, render_dockerfile
from packager.errors import InputError, bounded
from packager.imageref import DEFAULT_NAME_TEMPLATE, ImageRef, parse_reference, render_image_name
from packager.inputs import CONDA_NAMES, CONFIG_NAME, REQUIREMENTS_NAME, InputTree
from packager.manifest import ModelMeta, parse_manifest
from packager.modelconfig import (
    ParsedConfig,
    check_against,
    check_servable,
    minimal_config,
    parse_config,
    python_autocompletes,
)
from packager.plan import RepositoryPlan, build_plan
from packager.pyenv import ENV_DIR, EXECUTION_ENV_PATH, EnvOptions, check_requirements, with_env_path

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


@dataclass(frozen=True)
class Analysis:
    meta: ModelMeta
    detection: Detection
    config: ParsedConfig
    plan: RepositoryPlan
    warnings: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def backend(self) -> Backend:
        return self.detection.backend


def analyze(tree: InputTree) -> Analysis:
    meta = parse_manifest(tree)
    text = tree.text(CONFIG_NAME)
    given = parse_config(text) if text is not None else None
    detection = detect(tree, given)
    backend = detection.backend
    notes = list(detection.notes)
    if given is None:
        optional = not backend.config_required or (
            backend.key == "python" and python_autocompletes(tree.text("model.py"))
        )
        if not optional:
            extra = (
                " (or define TritonPythonModel.auto_complete_config in model.py)"
                if backend.key == "python"
                else ""
            )
            raise InputError(
                f"{CONFIG_NAME} is missing; Triton cannot complete a config for a "
                f"{backend.title} model from the model file alone",
                file=tree.label,
                fix=f"add {CONFIG_NAME} with the model's inputs and outputs{extra}",
            )
        config = parse_config(minimal_config(backend, meta.name))
        notes.append(f"no {CONFIG_NAME} given: generated a minimal one for {backend.title}")
    else:
        config = given
    check_against(config, backend, meta.name)
    check_servable(config, meta.version,
                   frozenset((*detection.model_files, *detection.extra_files)))
    if backend.key == "python" and REQUIREMENTS_NAME in detection.env_files:
        check_requirements(tree.text(REQUIREMENTS_NAME) or "")
    config_text, changed = config.text, False
    if backend.key == "python" and any(n in detection.env_files for n in CONDA_NAMES):
        config_text, changed = with_env_path(config.text, config.parameters)
        if changed:
            config = parse_config(config_text)
            notes.append(f"{CONFIG_NAME}: added parameter {EXECUTION_ENV_PATH} = "
                         f"$$TRITON_MODEL_DIRECTORY/{ENV_DIR} for the conda environment")
        else:
            notes.append(f"{CONFIG_NAME} sets {EXECUTION_ENV_PATH} itself; left as it is")
    plan = build_plan(tree, detection, meta, config_text, generated=given is None,
                      config_changed=changed)
    warnings = list(meta.warnings)
    warnings.extend(n for n in detection.notes if "ignored" in n)
    if tree.ignored:
        notes.append("skipped tool files: " + ", ".join(tree.ignored))
    return Analysis(meta, detection, config, plan, tuple(warnings), tuple(notes))


def base_image_for(analysis: Analysis, options: Options) -> BaseImage:
    if options.healthcheck not in HEALTHCHECK_CHOICES:
        raise InputError(
            f"--healthcheck has value {bounded(options.healthcheck)}",
            fix=f"use one of {', '.join(HEALTHCHECK_CHOICES)}",
        )
    base = choose_base_image(analysis.backend, options.base_image)
    if options.healthcheck == "none":
        base = BaseImage(base.ref, base.ngc_release, None, base.backends, base.warnings)
    elif options.healthcheck == "curl":
        base = BaseImage(base.ref, base.ngc_release, "curl", base.backends, base.warnings)
    return base


def dockerfile_for(analysis: Analysis, options: Options) -> DockerfileSpec:
    return render_dockerfile(analysis.plan, base_image_for(analysis, options), options.env,
                             options.labels, options.template_dirs)


def image_name_for(analysis: Analysis, options: Options, random_uuid: str) -> ImageRef:
    if options.tag is not None:  # an empty --tag is a wrong tag, not "no tag"
        return parse_reference(options.tag, what="--tag", allow_digest=False)
    return render_image_name(
        options.image_template,
        name=analysis.meta.name,
        version=analysis.meta.version,
        random_uuid=random_uuid,
    )


def detection_document(analysis: Analysis) -> str:
    b = analysis.backend
    doc = {
        "backend": b.key,
        "title": b.title,
        "triton_backend": b.backend,
        "platform": b.platform or None,
        "model_files": list(analysis.detection.model_files),
        "extra_files": list(analysis.detection.extra_files),
        "environment_files": list(analysis.detection.env_files),
        "model": {"name": analysis.meta.name, "version": analysis.meta.version,
                  "manifest": analysis.meta.source},
        "config": {"generated": analysis.plan.config_generated,
                   "inputs": [[*list(t[:2]), list(t[2])] for t in analysis.config.inputs],
                   "outputs": [[*list(t[:2]), list(t[2])] for t in analysis.config.outputs]},
        "warnings": list(analysis.warnings),
        "notes": list(analysis.notes),
    }
    return json.dumps(doc, indent=2) + "\n"


def phase_digest(phase: str, tree: InputTree, *parts: str) -> str:
    """What a phase's output depends on: the tool version, every input byte, its options."""
    h = hashlib.sha256()
    for line in (phase, __version__, *tree.digest_lines(), *parts):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()
