"""The analysis (pure): input trees and options in; what they hold (model folders,
repositories, ensembles), and the base image, Dockerfile and image name for them out. What it
records (detect.json, phase digests) is `packager.records`; the runner that executes phases
on disk is `packager.executor.phases`."""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from packager.backends import ENSEMBLE, Backend, EntryKind
from packager.basechoice import BaseImage, choose_base_image
from packager.configgen import ConfigOptions, check_config, generate_config, read_signature
from packager.detect import Detection, detect
from packager.dockerfile import DockerfileSpec, render_dockerfile
from packager.ensemble import EnsembleModel, check_ensembles
from packager.errors import InputError, bounded
from packager.imageref import DEFAULT_NAME_TEMPLATE, ImageRef, parse_reference, render_image_name
from packager.inputs import CONDA_NAMES, CONFIG_NAME, MANIFEST_NAMES, REQUIREMENTS_NAME, InputTree
from packager.layout import VERSION_RE, WARMUP_DIR, is_model_folder, is_repository
from packager.manifest import VERSION_MAX, ModelMeta, check_name, parse_manifest
from packager.modelconfig import (
    ParsedConfig,
    check_against,
    check_servable,
    minimal_config,
    parse_config,
    python_autocompletes,
)
from packager.modelread import ModelSignature
from packager.plan import (
    Layer,
    ModelPlan,
    PlanEntry,
    RepositoryPlan,
    build_plan,
    build_repository_model_plan,
    config_entry,
)
from packager.pyenv import ENV_DIR, EXECUTION_ENV_PATH, EnvOptions, check_requirements, with_env_path
from packager.secretfiles import check_input_files

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


@dataclass(frozen=True)
class Analysis:
    """One model, checked: what its input holds and how it is packaged."""

    meta: ModelMeta
    detection: Detection
    config: ParsedConfig
    plan: ModelPlan
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    signature: ModelSignature | None = None  # what the model file declares, where it was read
    config_source: str = "given"  # "given", "model" (complete, from the model) or "minimal"
    label: str = ""  # how messages name the model's input directory

    @property
    def backend(self) -> Backend:
        return self.detection.backend

    @property
    def versions(self) -> tuple[int, ...]:
        return self.plan.versions or (self.meta.version,)


@dataclass(frozen=True)
class Package:
    """Every model of one image, checked one by one and against each other."""

    models: tuple[Analysis, ...]
    plan: RepositoryPlan
    warnings: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def first(self) -> Analysis:
        """The model that names the image ({{ Name }}, {{ Version }}): the first one given."""
        return self.models[0]


def _in_model(err: InputError, label: str) -> InputError:
    """An error about a file of one model of several: name the model's directory too."""
    file = err.file or ""
    if file.startswith(label):
        return err
    where = f"{label}/{file}" if file and not file.startswith("/") else (file or label)
    return InputError(err.message, file=where, fix=err.fix, log_tail=err.log_tail)


def analyze(tree: InputTree, gen: ConfigOptions | None = None) -> Analysis:
    """One model directory, checked; raises InputError on the first problem.

    Args:
        tree: the model directory as the executor read it (model bytes included).
        gen: the options that shape a generated config (refused when config.pbtxt is given).
    """
    gen = gen or ConfigOptions()
    gen.check()
    meta = parse_manifest(tree)
    text = tree.text(CONFIG_NAME)
    given = parse_config(text) if text is not None else None
    if given is not None and given.is_ensemble:
        return _analyze_ensemble(tree, meta, given, (meta.version,), gen, prefix="",
                                 repository=False)
    detection = detect(tree, given)
    version_files = {meta.version: frozenset((*detection.model_files, *detection.extra_files))}
    if given is not None:  # the config's own mistakes before the model is read
        check_against(given, detection.backend, meta.name)
        check_servable(given, (meta.version,), version_files)
        model_level = placements(given, tree, repository=False)  # before the model is read
    config, signature, source, notes = _config_for(tree, given, detection, meta.name, gen)
    if given is None:  # a given config was checked above; a generated one is checked here
        check_against(config, detection.backend, meta.name)
        check_servable(config, (meta.version,), version_files)
        model_level = placements(config, tree, repository=False)
    config_text, changed = _environment(tree, detection, config, notes)
    plan = build_plan(tree, detection, meta, config_text, generated=given is None,
                      config_changed=changed, model_level=model_level)
    warnings = list(meta.warnings)
    warnings.extend(n for n in detection.notes if "ignored" in n)
    warnings.extend(signature.warnings if signature is not None else ())
    if tree.ignored:
        notes.append("skipped tool files: " + ", ".join(tree.ignored))
    return Analysis(meta, detection, parse_config(config_text) if changed else config, plan,
                    tuple(warnings), tuple(notes), signature, source, tree.label)


def _config_for(tree: InputTree, given: ParsedConfig | None, detection: Detection, name: str,
                gen: ConfigOptions) -> tuple[ParsedConfig, ModelSignature | None, str, list[str]]:
    """The config to package (given, generated from the model, or minimal) and what the
    model file says, checked against each other. `tree` holds the model file."""
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
            config = parse_config(generate_config(backend, name, read, gen))
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
            config = parse_config(minimal_config(backend, name))
            source = "minimal"
            notes.append(f"no {CONFIG_NAME} given: generated a minimal one for {backend.title}")
        return config, signature, source, notes
    read = read_signature(tree, backend)
    if isinstance(read, ModelSignature):
        check_config(given, read, backend)
        signature = read
        if given.inputs or given.outputs:
            notes.append(f"{CONFIG_NAME} agrees with {read.file}: "
                         + ("input names and count" if read.names_only
                            else "names, data types and shapes"))
    elif isinstance(read, str):
        notes.append(read)
    elif (given.inputs or given.outputs) and backend.key != "python":
        notes.append(f"{CONFIG_NAME} not checked against the model: the packager cannot "
                     f"read a {backend.title} model's inputs and outputs")
    return given, signature, source, notes


def _environment(env_tree: InputTree, detection: Detection, config: ParsedConfig,
                 notes: list[str]) -> tuple[str, bool]:
    """Check a Python model's environment files; the config text, with EXECUTION_ENV_PATH
    added for a conda environment (and whether it changed)."""
    backend = detection.backend
    if backend.key == "python" and REQUIREMENTS_NAME in detection.env_files:
        check_requirements(env_tree.text(REQUIREMENTS_NAME) or "")
    if backend.key == "python" and any(n in detection.env_files for n in CONDA_NAMES):
        config_text, changed = with_env_path(config.text, config.parameters)
        if changed:
            notes.append(f"{CONFIG_NAME}: added parameter {EXECUTION_ENV_PATH} = "
                         f"$$TRITON_MODEL_DIRECTORY/{ENV_DIR} for the conda environment")
        else:
            notes.append(f"{CONFIG_NAME} sets {EXECUTION_ENV_PATH} itself; left as it is")
        return config_text, changed
    return config.text, False


def placements(config: ParsedConfig, tree: InputTree, *, repository: bool) -> dict[str, str]:
    """The files config.pbtxt names, from where they are in the input to where Triton reads
    them: `label_filename` beside config.pbtxt, `model_warmup` data under warmup/. A repository
    input has them there already; a model directory may have warmup data at its top."""
    files = {e.path for e in tree.entries if e.kind is EntryKind.FILE}
    out: dict[str, str] = {}
    named = [(f"output {o!r}", "label_filename", f, f) for o, f in config.label_files] + [
        (f"model_warmup {w!r} input {i!r}", "input_data_file", f, f"{WARMUP_DIR}/{f}")
        for w, i, f in config.warmup_files]
    for what, field_name, name, dest in named:
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or \
                "\\" in name or "\x00" in name:
            raise InputError(
                f"{CONFIG_NAME}: field '{field_name}' of {what} is {bounded(name)}; Triton "
                f"reads it relative to the model directory",
                fix="give a file name such as labels.txt, without '..' or a leading '/'")
        candidates = [dest] if repository or dest == name else [dest, name]
        found = next((c for c in candidates if c in files), None)
        if found is None:
            where = (f"beside {CONFIG_NAME}" if field_name == "label_filename"
                     else f"in {WARMUP_DIR}/")
            raise InputError(
                f"{CONFIG_NAME}: field '{field_name}' of {what} names {bounded(name)}, which is "
                f"not in the model directory",
                file=tree.label,
                fix=f"add {bounded(name)} {where} (Triton reads it from "
                f"<model>/{bounded(dest, quote=False)}), or correct {field_name}")
        if not repository:
            out[found] = dest
    return out


def _analyze_ensemble(tree: InputTree, meta: ModelMeta, config: ParsedConfig,
                      versions: tuple[int, ...], gen: ConfigOptions, *, prefix: str,
                      repository: bool, input_index: int = 0) -> Analysis:
    """An ensemble: only its config (the models it chains are checked across the package)."""
    if gen.flags():
        raise InputError(f"{', '.join(gen.flags())} shape(s) a generated config, but an "
                         "ensemble's config is always given", file=tree.label,
                         fix="drop the option(s)")
    if config.backend:
        raise InputError(f"{CONFIG_NAME}: field 'backend' is {bounded(config.backend)}, but an "
                         "ensemble (platform: \"ensemble\") must have no backend",
                         file=tree.label, fix="remove the backend line")
    if config.name and config.name != meta.name:
        check_against(config, ENSEMBLE, meta.name)
    if not config.ensemble_steps:
        raise InputError(f"{CONFIG_NAME}: an ensemble needs 'ensemble_scheduling' with at least "
                         "one step", file=tree.label,
                         fix="add ensemble_scheduling { step [ ... ] } naming the models it chains")
    allowed = {CONFIG_NAME, *MANIFEST_NAMES}
    stray = sorted(e.path for e in tree.entries
                   if e.kind is EntryKind.FILE and e.path not in allowed
                   and not e.path.endswith("/.gitkeep") and e.path != ".gitkeep")
    if stray:
        raise InputError(
            f"an ensemble's directory holds only its {CONFIG_NAME}, but it has "
            f"{', '.join(bounded(s) for s in stray[:3])}",
            file=tree.label,
            fix="move the files to the model that uses them (the packager creates the empty "
            "version directory Triton requires)")
    check_servable(config, versions, {v: frozenset() for v in versions})
    name = meta.name
    entries = [PlanEntry(name, EntryKind.DIR, Layer.FILES),
               config_entry(name, config.text, f"{prefix}{CONFIG_NAME}")]
    entries.extend(PlanEntry(f"{name}/{v}", EntryKind.DIR, Layer.FILES) for v in versions)
    plan = ModelPlan(name, max(versions), ENSEMBLE.key, False, config.text,
                     tuple(sorted(entries, key=lambda e: e.dest)), (), (), versions,
                     input_index)
    detection = Detection(ENSEMBLE, (), (), ())
    notes = [f"ensemble of {len(config.ensemble_steps)} step(s): "
             + ", ".join(s.model_name for s in config.ensemble_steps)]
    if not repository:
        notes.append(f"created the empty version directory {name}/{meta.version}/ Triton needs")
    return Analysis(meta, detection, config, plan, meta.warnings, tuple(notes), None, "given",
                    tree.label)


def _repository_model(tree: InputTree, name: str, gen: ConfigOptions, prefix: str,
                      input_index: int) -> Analysis:
    """A model directory of a repository input: `<name>/config.pbtxt`, `<name>/<version>/...`,
    labels beside the config, warmup data in warmup/."""
    check_name(name, file=tree.label, field="model directory name")
    top = tree.top_level()
    manifests = [n for n in MANIFEST_NAMES if n in top]
    if manifests:
        raise InputError(
            f"{manifests[0]} names a model, but in a model repository the directory name is "
            "the model's name and the version directories are its versions",
            file=tree.label, fix=f"remove {manifests[0]}")
    versions: list[int] = []
    for child, e in sorted(top.items()):
        if e.kind is not EntryKind.DIR or child == WARMUP_DIR:
            continue
        if not VERSION_RE.fullmatch(child):
            digits = "".join(c for c in child if c.isdigit()).lstrip("0") or "1"
            raise InputError(
                f"directory {bounded(child)} is not a version directory: Triton reads only "
                "directories named by a number (1, 2, ...) and would ignore it",
                file=tree.label,
                fix=f"rename it to {digits}, or move it into a version directory")
        if int(child) > VERSION_MAX:
            # VERSION_RE admits 19 digits; Triton's stoll throws on those beyond int64 and the
            # directory is skipped, so the model would load with that version missing.
            raise InputError(
                f"directory {bounded(child)} is not a version Triton can read: versions are "
                f"64-bit, at most {VERSION_MAX}",
                file=tree.label, fix="rename it to a smaller number, such as 1")
        versions.append(int(child))
    text = tree.text(CONFIG_NAME)
    given = parse_config(text) if text is not None else None
    env = tuple(n for n in (*CONDA_NAMES, REQUIREMENTS_NAME) if n in top)
    if given is not None and given.is_ensemble:
        meta = ModelMeta(name, max(versions, default=1), None)
        return _analyze_ensemble(tree, meta, given, tuple(versions) or (1,), gen, prefix=prefix,
                                 repository=True, input_index=input_index)
    if not versions:
        raise InputError(
            "has no version directory; Triton serves a model from <name>/<version>/",
            file=tree.label, fix="put the model files in a directory named 1")
    vs = tuple(versions)
    trees = {v: tree.subtree(f"{v}/") for v in vs}
    detections = {v: detect(t, given) for v, t in trees.items()}
    latest = max(vs)
    backend = detections[latest].backend
    for v, d in detections.items():
        if d.backend is not backend:
            raise InputError(
                f"version {v} is a {d.backend.title} model but version {latest} is "
                f"{backend.title}; one model has one backend",
                file=tree.label, fix="make every version the same kind of model")
    det = detections[latest]
    det = Detection(backend, det.model_files, det.extra_files,
                    env if backend.key == "python" else (), det.notes)
    version_files = {v: frozenset(t.top_level()) for v, t in trees.items()}
    if given is not None:
        check_against(given, backend, name)
        check_servable(given, vs, version_files)
        placements(given, tree, repository=True)
    config, signature, source, notes = _config_for(trees[latest], given, det, name, gen)
    if given is not None:
        for v in vs:
            if v != latest:
                _config_for(trees[v], given, detections[v], name, gen)
    if given is None:  # a given config was checked above; a generated one is checked here
        check_against(config, backend, name)
        check_servable(config, vs, version_files)
    config_text, changed = _environment(tree, det, config, notes)
    skip = frozenset({CONFIG_NAME, *env})
    weight_files = frozenset(det.model_files) if backend.key != "python" else frozenset()
    plan = build_repository_model_plan(
        tree, name, backend.key, vs, weight_files, config_text,
        config_from_input=given is not None and not changed, env_files=det.env_files,
        skip=skip, prefix=prefix, input_index=input_index)
    if env and backend.key != "python":
        notes.append(f"{', '.join(env)} found but the model is {backend.title}: ignored")
    meta = ModelMeta(name, latest, None)
    return Analysis(meta, det, parse_config(config_text) if changed else config, plan,
                    signature.warnings if signature is not None else (),
                    tuple(notes), signature, source, tree.label)


def analyze_package(trees: Sequence[InputTree], gen: ConfigOptions | None = None, *,
                    allow_secret_files: bool = False) -> Package:
    """Every input (model directories, or one model repository), checked one by one and
    then across the package: unique names, ensembles, versions."""
    gen = gen or ConfigOptions()
    gen.check()
    models: list[Analysis] = []
    file_warnings: list[str] = []
    for tree in trees:  # secrets first: nothing else about a leaking input matters
        file_warnings.extend(check_input_files(tree.entries, tree.label,
                                               allow_secrets=allow_secret_files))
    for index, tree in enumerate(trees):
        if is_repository(tree.entries):
            if len(trees) > 1:
                raise InputError(
                    "is a model repository; a repository is packaged on its own",
                    file=tree.label,
                    fix="give either one repository or several model directories")
            models.extend(_repository_models(tree, gen, index))
        elif is_model_folder(tree.entries):
            models.append(_model_folder(tree, gen, index))
        else:
            a = analyze(tree, gen)
            models.append(dataclasses.replace(
                a, plan=dataclasses.replace(a.plan, input_index=index)))
    warnings, notes = check_package(models)
    plan = RepositoryPlan(tuple(m.plan for m in models))
    return Package(tuple(models), plan,
                   tuple(file_warnings) + tuple(w for m in models for w in m.warnings) + warnings,
                   tuple(n for m in models for n in m.notes) + notes)


def _model_folder(tree: InputTree, gen: ConfigOptions, index: int) -> Analysis:
    """A repository's model directory given on its own: packaged as a repository of that one
    model, named by its config's name or else by the directory (as Triton names it)."""
    text = tree.text(CONFIG_NAME)
    given = parse_config(text) if text is not None else None
    name = (given.name if given is not None and given.name else
            posixpath.basename(posixpath.normpath(tree.label)))
    return _repository_model(tree, name, gen, "", index)


def _repository_models(tree: InputTree, gen: ConfigOptions, index: int) -> list[Analysis]:
    out = []
    for name, e in sorted(tree.top_level().items()):
        if e.kind is not EntryKind.DIR:
            raise InputError(
                f"{bounded(name)} is a file at the top of a model repository, where Triton "
                "expects only model directories",
                file=tree.label,
                fix="move it into the model directory that uses it, or remove it")
        label = f"{tree.label.rstrip('/')}/{name}"
        try:
            out.append(_repository_model(tree.subtree(f"{name}/", label), name, gen,
                                         f"{name}/", index))
        except InputError as err:
            raise _in_model(err, label) from None
    if tree.ignored:
        out[0] = dataclasses.replace(out[0], notes=(
            *out[0].notes, "skipped tool files: " + ", ".join(tree.ignored)))
    return out


def check_package(models: Sequence[Analysis]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Checks across models (before anything is written); (warnings, notes)."""
    seen: dict[str, str] = {}
    for m in models:
        name = m.meta.name
        if name in seen:
            raise InputError(
                f"two models are named {name!r}: {seen[name]} and {m.label}; Triton serves "
                "one model per name",
                file=m.label,
                fix="rename one of them (its manifest's name, or its directory in a repository)")
        seen[name] = m.label
    warnings: list[str] = []
    for m in models:
        served = m.config.served(m.versions)
        idle = [v for v in m.versions if v not in served]
        if idle:
            warnings.append(
                f"model {m.meta.name}: version(s) {', '.join(map(str, idle))} are packaged but "
                f"not served by its version_policy ({_policy(m.config)}); set version_policy "
                "to serve them, or leave them out")
    notes = list(check_ensembles(
        [EnsembleModel(m.meta.name, m.label, m.config, m.versions,
                       m.config.served(m.versions)) for m in models]))
    return tuple(warnings), tuple(notes)


def _policy(config: ParsedConfig) -> str:
    if config.policy == "specific":
        return "specific " + ", ".join(map(str, config.specific_versions))
    return "all" if config.policy == "all" else f"latest {config.latest_n}"


def as_package(x: Analysis | Package) -> Package:
    """One model directory is a package of one model."""
    if isinstance(x, Package):
        return x
    return Package((x,), RepositoryPlan((x.plan,)), x.warnings, x.notes)


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
