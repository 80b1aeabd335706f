"""A Triton model repository, checked model by model (pure), and a repository's model
directory given on its own (a "model folder"): `<name>/config.pbtxt`, `<name>/<version>/...`,
labels beside the config, warmup data in warmup/, copied in Triton's layout as they are."""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping

from packager.analysis.config import check_model_config, given_config
from packager.analysis.ensemble import analyze_ensemble
from packager.analysis.model import Analysis
from packager.backends import EntryKind
from packager.configgen import ConfigOptions
from packager.detect import Detection, detect
from packager.errors import InputError, bounded
from packager.inputs import CONDA_NAMES, CONFIG_NAME, MANIFEST_NAMES, REQUIREMENTS_NAME, Entry, InputTree
from packager.layout import VERSION_RE, WARMUP_DIR
from packager.manifest import VERSION_MAX, ModelMeta, check_name
from packager.plan import build_repository_model_plan


def analyze_repository(tree: InputTree, gen: ConfigOptions, index: int) -> list[Analysis]:
    """Every model of a repository input (the `index`th input), in name order."""
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


def analyze_model_folder(tree: InputTree, gen: ConfigOptions, index: int) -> Analysis:
    """A repository's model directory given on its own: packaged as a repository of that one
    model, named by its config's name or else by the directory (as Triton names it)."""
    given = given_config(tree)
    name = (given.name if given is not None and given.name else
            posixpath.basename(posixpath.normpath(tree.label)))
    return _repository_model(tree, name, gen, "", index)


def _in_model(err: InputError, label: str) -> InputError:
    """An error about a file of one model of several: name the model's directory too."""
    file = err.file or ""
    if file.startswith(label):
        return err
    where = f"{label}/{file}" if file and not file.startswith("/") else (file or label)
    return InputError(err.message, file=where, fix=err.fix, log_tail=err.log_tail)


def _versions(top: Mapping[str, Entry], label: str) -> list[int]:
    """The version directories among a repository model's `top` entries, in name order."""
    versions: list[int] = []
    for child, e in sorted(top.items()):
        if e.kind is not EntryKind.DIR or child == WARMUP_DIR:
            continue
        if not VERSION_RE.fullmatch(child):
            digits = "".join(c for c in child if c.isdigit()).lstrip("0") or "1"
            raise InputError(
                f"directory {bounded(child)} is not a version directory: Triton reads only "
                "directories named by a number (1, 2, ...) and would ignore it",
                file=label,
                fix=f"rename it to {digits}, or move it into a version directory")
        if int(child) > VERSION_MAX:
            # VERSION_RE admits 19 digits; Triton's stoll throws on those beyond int64 and the
            # directory is skipped, so the model would load with that version missing.
            raise InputError(
                f"directory {bounded(child)} is not a version Triton can read: versions are "
                f"64-bit, at most {VERSION_MAX}",
                file=label, fix="rename it to a smaller number, such as 1")
        versions.append(int(child))
    return versions


def _repository_model(tree: InputTree, name: str, gen: ConfigOptions, prefix: str,
                      input_index: int) -> Analysis:
    """A model directory of a repository input; `prefix` is its place in the input."""
    check_name(name, file=tree.label, field="model directory name")
    top = tree.top_level()
    manifests = [n for n in MANIFEST_NAMES if n in top]
    if manifests:
        raise InputError(
            f"{manifests[0]} names a model, but in a model repository the directory name is "
            "the model's name and the version directories are its versions",
            file=tree.label, fix=f"remove {manifests[0]}")
    versions = _versions(top, tree.label)
    given = given_config(tree)
    env = tuple(n for n in (*CONDA_NAMES, REQUIREMENTS_NAME) if n in top)
    if given is not None and given.is_ensemble:
        meta = ModelMeta(name, max(versions, default=1), None)
        return analyze_ensemble(tree, meta, given, tuple(versions) or (1,), gen, prefix=prefix,
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
    checked = check_model_config(
        tree, given, det, name, {v: frozenset(t.top_level()) for v, t in trees.items()}, gen,
        repository=True, model_tree=trees[latest],
        other_versions=[(trees[v], detections[v]) for v in vs if v != latest])
    skip = frozenset({CONFIG_NAME, *env})
    weight_files = frozenset(det.model_files) if backend.key != "python" else frozenset()
    plan = build_repository_model_plan(
        tree, name, backend.key, vs, weight_files, checked.text,
        config_from_input=given is not None and not checked.changed, env_files=det.env_files,
        skip=skip, prefix=prefix, input_index=input_index)
    notes = list(checked.notes)
    if env and backend.key != "python":
        notes.append(f"{', '.join(env)} found but the model is {backend.title}: ignored")
    meta = ModelMeta(name, latest, None)
    return Analysis(meta, det, checked.config, plan,
                    checked.signature.warnings if checked.signature is not None else (),
                    tuple(notes), checked.signature, checked.source, tree.label)
