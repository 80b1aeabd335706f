"""What an analysis records, as text (pure): detect.json, and the digest of what a phase's
output depends on (the tool version, every input byte, its options)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from packager import __version__
from packager.analysis import Analysis, Package, as_package
from packager.inputs import InputTree


def _model_document(analysis: Analysis) -> dict[str, object]:
    b = analysis.backend
    return {
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
    }


def detection_document(x: Analysis | Package) -> str:
    """detect.json: one model's document as it always was; for several, each model's
    (with its versions) under "models"."""
    package = as_package(x)
    if len(package.models) == 1 and len(package.first.versions) == 1:
        doc = _model_document(package.first)
    else:
        doc = {"models": [{**_model_document(m), "versions": list(m.versions),
                           "served": list(m.config.served(m.versions))}
                          for m in package.models]}
    doc["warnings"] = list(package.warnings)
    doc["notes"] = list(package.notes)
    return json.dumps(doc, indent=2) + "\n"


def phase_digest(phase: str, trees: InputTree | Sequence[InputTree], *parts: str) -> str:
    """What a phase's output depends on: the tool version, every input byte, its options."""
    h = hashlib.sha256()
    lines: list[str] = []
    for i, tree in enumerate([trees] if isinstance(trees, InputTree) else trees):
        lines.extend((f"input {i}",) if i else ())
        lines.extend(tree.digest_lines())
    for line in (phase, __version__, *lines, *parts):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()
