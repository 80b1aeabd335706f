"""An ensemble's directory, checked (pure): it holds only its config. The models it chains are
checked across the package (`packager.ensemble`, called by `package.check_package`)."""

from __future__ import annotations

from packager.analysis.model import Analysis
from packager.backends import ENSEMBLE, EntryKind
from packager.configgen import ConfigOptions
from packager.detect import Detection
from packager.errors import InputError, bounded
from packager.inputs import CONFIG_NAME, MANIFEST_NAMES, InputTree
from packager.manifest import ModelMeta
from packager.modelconfig import ParsedConfig, check_against, check_servable
from packager.plan import build_ensemble_plan


def analyze_ensemble(tree: InputTree, meta: ModelMeta, config: ParsedConfig,
                     versions: tuple[int, ...], gen: ConfigOptions, *, prefix: str,
                     repository: bool, input_index: int = 0) -> Analysis:
    """An ensemble given as a model directory or as a repository's model (`repository`);
    `prefix` is its directory in the input."""
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
    plan = build_ensemble_plan(name, config.text, versions, prefix, input_index)
    detection = Detection(ENSEMBLE, (), (), ())
    notes = [f"ensemble of {len(config.ensemble_steps)} step(s): "
             + ", ".join(s.model_name for s in config.ensemble_steps)]
    if not repository:
        notes.append(f"created the empty version directory {name}/{meta.version}/ Triton needs")
    return Analysis(meta, detection, config, plan, meta.warnings, tuple(notes), None, "given",
                    tree.label)
