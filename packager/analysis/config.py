"""The config a model is packaged with, and the one check sequence every model (not an
ensemble) passes, whether a model directory or a repository's model (pure): the config given,
or generated from the model file, or minimal; checked against the backend, the versions, the
model file, the files it names and the model's environment files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packager.backends import EntryKind
from packager.configgen import ConfigOptions, check_config, generate_config, read_signature
from packager.detect import Detection
from packager.errors import InputError, bounded
from packager.inputs import CONDA_NAMES, CONFIG_NAME, REQUIREMENTS_NAME, InputTree
from packager.layout import WARMUP_DIR
from packager.modelconfig import (
    ParsedConfig,
    check_against,
    check_servable,
    minimal_config,
    parse_config,
    python_autocompletes,
)
from packager.modelread import ModelSignature
from packager.pyenv import ENV_DIR, EXECUTION_ENV_PATH, check_requirements, with_env_path


@dataclass(frozen=True)
class CheckedConfig:
    """A model's config, checked, as it is packaged."""

    config: ParsedConfig  # as packaged (with EXECUTION_ENV_PATH where it was added)
    text: str
    changed: bool  # the packager added EXECUTION_ENV_PATH to the given or generated text
    signature: ModelSignature | None  # what the model file declares, where it was read
    source: str  # "given", "model" (complete, from the model) or "minimal"
    notes: tuple[str, ...]
    placed: dict[str, str]  # placements(): for a model directory, what moves beside the config


def given_config(tree: InputTree) -> ParsedConfig | None:
    """The input's own config.pbtxt, parsed; None when there is none."""
    text = tree.text(CONFIG_NAME)
    return parse_config(text) if text is not None else None


def check_model_config(
    tree: InputTree, given: ParsedConfig | None, detection: Detection, name: str,
    version_files: dict[int, frozenset[str]], gen: ConfigOptions, *, repository: bool,
    model_tree: InputTree | None = None,
    other_versions: Sequence[tuple[InputTree, Detection]] = (),
) -> CheckedConfig:
    """The check sequence of one model; raises InputError on the first problem.

    Args:
        tree: the model directory (label files, warmup data, environment files).
        given: its config.pbtxt, or None to generate one.
        detection: what the model is (of the latest version in a repository).
        name: the model's name.
        version_files: every packaged version, in the input's order, and the names in it.
        gen: the options that shape a generated config (refused with a given one).
        repository: a repository's layout: label files and warmup data are already in place.
        model_tree: where the model file is read (a repository's latest version); `tree` if None.
        other_versions: the other versions' model files, checked against a given config.
    """
    backend = detection.backend
    versions = tuple(version_files)
    placed: dict[str, str] = {}
    if given is not None:  # the config's own mistakes before the model is read
        check_against(given, backend, name)
        check_servable(given, versions, version_files)
        placed = placements(given, tree, repository=repository)
    config, signature, source, notes = _config_for(
        tree if model_tree is None else model_tree, given, detection, name, gen)
    if given is not None:  # a generated config comes from the latest version's model alone
        for other_tree, other in other_versions:
            _config_for(other_tree, given, other, name, gen)
    if given is None:  # a given config was checked above; a generated one is checked here
        check_against(config, backend, name)
        check_servable(config, versions, version_files)
        placed = placements(config, tree, repository=repository)
    text, changed = _environment(tree, detection, config, notes)
    return CheckedConfig(parse_config(text) if changed else config, text, changed, signature,
                         source, tuple(notes), placed)


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
