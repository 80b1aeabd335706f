"""One model directory, checked (pure): a model file, config.pbtxt or manifest at its top,
packaged as `<name>/<version>/` with what Triton reads beside the config placed there."""

from __future__ import annotations

from packager.analysis.config import check_model_config, given_config
from packager.analysis.ensemble import analyze_ensemble
from packager.analysis.model import Analysis
from packager.configgen import ConfigOptions
from packager.detect import detect
from packager.inputs import InputTree
from packager.manifest import parse_manifest
from packager.plan import build_plan


def analyze(tree: InputTree, gen: ConfigOptions | None = None) -> Analysis:
    """One model directory, checked; raises InputError on the first problem.

    Args:
        tree: the model directory as the executor read it (model bytes included).
        gen: the options that shape a generated config (refused when config.pbtxt is given).
    """
    gen = gen or ConfigOptions()
    gen.check()
    meta = parse_manifest(tree)
    given = given_config(tree)
    if given is not None and given.is_ensemble:
        return analyze_ensemble(tree, meta, given, (meta.version,), gen, prefix="",
                                repository=False)
    detection = detect(tree, given)
    version_files = {meta.version: frozenset((*detection.model_files, *detection.extra_files))}
    checked = check_model_config(tree, given, detection, meta.name, version_files, gen,
                                 repository=False)
    plan = build_plan(tree, detection, meta, checked.text, generated=given is None,
                      config_changed=checked.changed, model_level=checked.placed)
    warnings = list(meta.warnings)
    warnings.extend(n for n in detection.notes if "ignored" in n)
    warnings.extend(checked.signature.warnings if checked.signature is not None else ())
    notes = list(checked.notes)
    if tree.ignored:
        notes.append("skipped tool files: " + ", ".join(tree.ignored))
    return Analysis(meta, detection, checked.config, plan, tuple(warnings), tuple(notes),
                    checked.signature, checked.source, tree.label)
