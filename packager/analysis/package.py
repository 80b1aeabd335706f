"""Every input of one image, checked (pure): `Package`, the models of model directories or of
one model repository, checked one by one and then against each other (unique names, versions
served, ensembles)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from packager.analysis.directory import analyze
from packager.analysis.model import Analysis
from packager.analysis.repository import analyze_model_folder, analyze_repository
from packager.configgen import ConfigOptions
from packager.ensemble import EnsembleModel, check_ensembles
from packager.errors import InputError
from packager.inputs import InputTree
from packager.layout import is_model_folder, is_repository
from packager.modelconfig import ParsedConfig
from packager.plan import RepositoryPlan
from packager.secretfiles import check_input_files


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
            models.extend(analyze_repository(tree, gen, index))
        elif is_model_folder(tree.entries):
            models.append(analyze_model_folder(tree, gen, index))
        else:
            a = analyze(tree, gen)
            models.append(dataclasses.replace(
                a, plan=dataclasses.replace(a.plan, input_index=index)))
    warnings, notes = check_package(models)
    plan = RepositoryPlan(tuple(m.plan for m in models))
    return Package(tuple(models), plan,
                   tuple(file_warnings) + tuple(w for m in models for w in m.warnings) + warnings,
                   tuple(n for m in models for n in m.notes) + notes)


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
