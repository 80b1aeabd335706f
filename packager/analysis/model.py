"""One model, checked (pure): `Analysis`, what a model's input holds and how it is packaged.
Every kind of input (a model directory, a repository's model, an ensemble) ends in one."""

from __future__ import annotations

from dataclasses import dataclass

from packager.backends import Backend
from packager.detect import Detection
from packager.manifest import ModelMeta
from packager.modelconfig import ParsedConfig
from packager.modelread import ModelSignature
from packager.plan import ModelPlan


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
