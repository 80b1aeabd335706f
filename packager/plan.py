"""The model repository plan: every destination path, where it comes from, and its image layer.

Layer order in the image is chosen for the build cache. The legacy builder (the only one the
docker SDK speaks) invalidates every layer after the first changed one, so what changes most
often goes last: environment, then weights, then small files, then config.pbtxt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from packager.backends import EntryKind
from packager.detect import Detection
from packager.inputs import CONFIG_NAME, InputTree
from packager.manifest import ModelMeta

# Files at least this large go to the weights layer even when they are not "the model file":
# a joblib pickle loaded by model.py is a weight too.
LARGE_FILE = 1 << 20


class Layer(str, Enum):
    WEIGHTS = "weights"
    FILES = "files"
    CONFIG = "config"


LAYER_ORDER = (Layer.WEIGHTS, Layer.FILES, Layer.CONFIG)


@dataclass(frozen=True)
class PlanEntry:
    dest: str  # path inside the model repository, e.g. "wine/1/model.onnx"
    kind: EntryKind
    layer: Layer
    source: str | None = None  # input-relative path; None for generated content
    content: str | None = None  # generated text
    size: int = 0
    mode: int = 0o644
    sha256: str = ""  # content digest of a source file ("" for directories and generated text)


@dataclass(frozen=True)
class RepositoryPlan:
    model_name: str
    version: int
    backend_key: str
    config_generated: bool
    config_text: str
    entries: tuple[PlanEntry, ...]
    env_files: tuple[str, ...]  # input-relative environment files (conda.yaml, requirements.txt)
    env_texts: tuple[tuple[str, str], ...] = ()

    def env_text(self, name: str) -> str:
        return dict(self.env_texts).get(name, "")

    def weights(self) -> tuple[PlanEntry, ...]:
        return tuple(e for e in self.entries
                     if e.layer is Layer.WEIGHTS and e.kind is EntryKind.FILE)

    def layers(self) -> tuple[Layer, ...]:
        used = {e.layer for e in self.entries if e.kind is EntryKind.FILE}
        return tuple(layer for layer in LAYER_ORDER if layer in used)

    def listing(self) -> str:
        """A human-readable tree listing; pinned by snapshot tests."""
        lines = []
        for e in self.entries:
            if e.kind is EntryKind.DIR:
                lines.append(f"{e.dest}/")
                continue
            origin = "generated" if e.content is not None else e.source
            lines.append(f"{e.dest}  [{e.layer.value}] <- {origin}")
        return "\n".join(lines) + "\n"


def build_plan(
    tree: InputTree, detection: Detection, meta: ModelMeta, config_text: str, generated: bool,
    config_changed: bool = False,
) -> RepositoryPlan:
    name, version = meta.name, meta.version
    model_dir = f"{name}/{version}"
    weight_tops = set(detection.model_files) if detection.backend.key != "python" else set()
    entries: list[PlanEntry] = [
        PlanEntry(name, EntryKind.DIR, Layer.FILES),
        PlanEntry(model_dir, EntryKind.DIR, Layer.FILES),
        PlanEntry(
            f"{name}/{CONFIG_NAME}",
            EntryKind.FILE,
            Layer.CONFIG,
            source=None if generated or config_changed else CONFIG_NAME,
            content=config_text if generated or config_changed else None,
            size=len(config_text.encode()),
        ),
    ]
    for top in sorted((*detection.model_files, *detection.extra_files)):
        for e in tree.under(top):
            if e.kind is EntryKind.DIR:
                layer = Layer.FILES
            elif e.top in weight_tops or e.size >= LARGE_FILE:
                layer = Layer.WEIGHTS
            else:
                layer = Layer.FILES
            entries.append(
                PlanEntry(f"{model_dir}/{e.path}", e.kind, layer, source=e.path,
                          size=e.size, mode=e.mode, sha256=e.sha256)
            )
    entries.sort(key=lambda p: p.dest)
    return RepositoryPlan(
        name, version, detection.backend.key, generated, config_text, tuple(entries),
        detection.env_files,
        tuple((n, tree.text(n) or "") for n in detection.env_files),
    )
