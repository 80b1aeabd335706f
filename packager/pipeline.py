"""The pure pipeline: an InputTree and options in, every generated artefact out."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from packager import __version__
from packager.backends import Backend
from packager.baseimage import BaseImage, choose_base_image
from packager.configgen import ConfigOptions, check_config, generate_config, read_signature
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
from packager.modelread import ModelSignature
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
    model_config: ConfigOptions = field(default_factory=ConfigOptions)


@dataclass(frozen=True)
class Analysis:
    meta: ModelMeta
    detection: Detection
    config: ParsedConfig
    plan: RepositoryPlan
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    signature: ModelSignature | None = None  # what the model file declares, where it was read
    config_source: str = "given"  # "given", "model" (complete, from the model) or "minimal"

    @property
    def backend(self) -> Backend:
        return self.detection.backend


def analyze(tree: InputTree, gen: ConfigOptions | None = None) -> Analysis:
    """Everything the later phases need, checked; raises InputError on the first problem.

    Args:
        tree: the model directory as the executor read it (model bytes included).
        gen: the options that shape a generated config (refused when config.pbtxt is given).
    """
    gen = gen or ConfigOptions()
    gen.check()
    meta = parse_manifest(tree)
    text = tree.text(CONFIG_NAME)
    given = parse_config(text) if text is not None else None
    detection = detect(tree, given)
    backend = detection.backend
    notes = list(detection.notes)
    if given is not None and gen.flags():
        raise InputError(
            f"{', '.join(gen.flags())} shape(s) a generated config, but the model directory "
            f"has its own {CONFIG_NAME}, which is used as it is",
            file=tree.label,
            fix=f"edit {CONFIG_NAME} instead (max_batch_size, dynamic_batching, instance_group), "
            f"or remove it to have one generated from the model",
        )
    signature: ModelSignature | None = None
    source = "given"
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
        read = read_signature(tree, backend)
        if isinstance(read, ModelSignature) and not read.names_only:
            signature = read
            config = parse_config(generate_config(backend, meta.name, read, gen))
            source = "model"
            notes.append(
                f"no {CONFIG_NAME} given: generated a complete one from {read.file} "
                f"({len(read.inputs)} input(s), {len(read.outputs or ())} output(s), "
                f"max_batch_size {config.max_batch_size})")
        else:
            if gen.flags():
                raise InputError(
                    f"{', '.join(gen.flags())} shape(s) a config generated from the model, but "
                    f"the packager cannot read a {backend.title} model's inputs and outputs",
                    file=tree.label,
                    fix=f"drop the option(s) and add {CONFIG_NAME} with the settings you want",
                )
            if isinstance(read, str):
                notes.append(read)
            config = parse_config(minimal_config(backend, meta.name))
            source = "minimal"
            notes.append(f"no {CONFIG_NAME} given: generated a minimal one for {backend.title}")
    else:
        config = given
    check_against(config, backend, meta.name)
    check_servable(config, meta.version,
                   frozenset((*detection.model_files, *detection.extra_files)))
    if given is not None:
        read = read_signature(tree, backend)
        if isinstance(read, ModelSignature):
            check_config(config, read, backend)
            signature = read
            if config.inputs or config.outputs:
                notes.append(f"{CONFIG_NAME} agrees with {read.file}: "
                             + ("input names and count" if read.names_only
                                else "names, data types and shapes"))
        elif isinstance(read, str):
            notes.append(read)
        elif (config.inputs or config.outputs) and backend.key != "python":
            notes.append(f"{CONFIG_NAME} not checked against the model: the packager cannot "
                         f"read a {backend.title} model's inputs and outputs")
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
    return Analysis(meta, detection, config, plan, tuple(warnings), tuple(notes), signature,
                    source)


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
                   "source": analysis.config_source,
                   "max_batch_size": analysis.config.max_batch_size,
                   "inputs": [[*list(t[:2]), list(t[2])] for t in analysis.config.inputs],
                   "outputs": [[*list(t[:2]), list(t[2])] for t in analysis.config.outputs]},
        # The model file the packager read: the config was generated from it, or checked
        # against it (its tensors are the config's above, so they are not repeated here).
        "model_read": None if analysis.signature is None else {
            "file": analysis.signature.file,
            "format": analysis.signature.format,
            "config": "generated from it" if analysis.config_source == "model"
            else "checked against it",
        },
        "warnings": list(analysis.warnings),
        "notes": list(analysis.notes),
    }
    return json.dumps(doc, indent=2) + "\n"


def config_text_for(tree: InputTree, gen: ConfigOptions | None = None) -> str:
    """The config.pbtxt the packager would package: given, or generated (`config` command)."""
    return analyze(tree, gen).plan.config_text


def phase_digest(phase: str, tree: InputTree, *parts: str) -> str:
    """What a phase's output depends on: the tool version, every input byte, its options."""
    h = hashlib.sha256()
    for line in (phase, __version__, *tree.digest_lines(), *parts):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()
