"""The model repository plan: every destination path, where it comes from, and its image layer.

Layer order in the image is chosen for the build cache. The legacy builder (the only one the
docker SDK speaks) invalidates every layer after the first changed one, so what changes most
often goes last: environment, then weights, then small files, then config.pbtxt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from packager.backends import ENSEMBLE, EntryKind
from packager.detect import Detection
from packager.inputs import CONFIG_NAME, Entry, InputTree
from packager.layout import WARMUP_DIR
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
class ModelPlan:
    """One model's part of the repository: its config, every version and the files beside it."""

    model_name: str
    version: int  # the highest packaged version (the only one for a model directory input)
    backend_key: str
    config_generated: bool
    config_text: str
    entries: tuple[PlanEntry, ...]
    env_files: tuple[str, ...]  # environment files of the model (conda.yaml, requirements.txt)
    env_texts: tuple[tuple[str, str], ...] = ()
    versions: tuple[int, ...] = ()  # every packaged version, ascending
    input_index: int = 0  # which input directory the entries' sources are relative to

    def env_text(self, name: str) -> str:
        return dict(self.env_texts).get(name, "")

    def listing(self) -> str:
        return listing(self.entries)


@dataclass(frozen=True)
class RepositoryPlan:
    """The whole model repository in the image: one or more models."""

    models: tuple[ModelPlan, ...]

    @property
    def entries(self) -> tuple[PlanEntry, ...]:
        return tuple(sorted((e for m in self.models for e in m.entries), key=lambda e: e.dest))

    def sources(self) -> tuple[tuple[int, PlanEntry], ...]:
        """Every entry with the index of the input directory its source is relative to."""
        return tuple(sorted(((m.input_index, e) for m in self.models for e in m.entries),
                            key=lambda p: p[1].dest))

    def weights(self) -> tuple[PlanEntry, ...]:
        return tuple(e for e in self.entries
                     if e.layer is Layer.WEIGHTS and e.kind is EntryKind.FILE)

    def layers(self) -> tuple[Layer, ...]:
        used = {e.layer for e in self.entries if e.kind is EntryKind.FILE}
        return tuple(layer for layer in LAYER_ORDER if layer in used)

    def listing(self) -> str:
        return listing(self.entries)


def listing(entries: tuple[PlanEntry, ...]) -> str:
    """A human-readable tree listing; pinned by snapshot tests."""
    lines = []
    for e in entries:
        if e.kind is EntryKind.DIR:
            lines.append(f"{e.dest}/")
            continue
        origin = "generated" if e.content is not None else e.source
        lines.append(f"{e.dest}  [{e.layer.value}] <- {origin}")
    return "\n".join(lines) + "\n"


def placed_file(dest: str, e: Entry, layer: Layer, source: str) -> PlanEntry:
    return PlanEntry(dest, e.kind, layer, source=source, size=e.size, mode=e.mode,
                     sha256=e.sha256)


def layer_of(e: Entry, weight: bool) -> Layer:
    if e.kind is EntryKind.DIR:
        return Layer.FILES
    return Layer.WEIGHTS if weight or e.size >= LARGE_FILE else Layer.FILES


def config_entry(name: str, config_text: str, from_input: str | None) -> PlanEntry:
    """config.pbtxt: the input's file as it is, or generated text (`from_input` None)."""
    return PlanEntry(f"{name}/{CONFIG_NAME}", EntryKind.FILE, Layer.CONFIG,
                     source=from_input, content=None if from_input else config_text,
                     size=len(config_text.encode()))


def build_plan(
    tree: InputTree, detection: Detection, meta: ModelMeta, config_text: str, generated: bool,
    config_changed: bool = False, model_level: dict[str, str] | None = None,
) -> ModelPlan:
    """A model directory's plan. `model_level` maps input paths that Triton reads from the
    model directory (label files, warmup data) to their place there."""
    name, version = meta.name, meta.version
    model_level = model_level or {}
    model_dir = f"{name}/{version}"
    weight_tops = set(detection.model_files) if detection.backend.key != "python" else set()
    entries: list[PlanEntry] = [
        PlanEntry(name, EntryKind.DIR, Layer.FILES),
        PlanEntry(model_dir, EntryKind.DIR, Layer.FILES),
        config_entry(name, config_text,
                     None if generated or config_changed else CONFIG_NAME),
    ]
    for top in sorted((*detection.model_files, *detection.extra_files)):
        for e in tree.under(top):
            if e.path in model_level:
                continue
            layer = layer_of(e, e.top in weight_tops)
            if e.path == WARMUP_DIR or e.path.startswith(WARMUP_DIR + "/"):
                if e.kind is EntryKind.FILE:  # warmup/ data not named by the config: beside it
                    entries.append(placed_file(f"{name}/{e.path}", e, layer, e.path))
                continue
            entries.append(placed_file(f"{model_dir}/{e.path}", e, layer, e.path))
    files = {e.path: e for e in tree.entries}
    for src, dest in sorted(model_level.items()):
        e = files[src]
        entries.append(placed_file(f"{name}/{dest}", e, layer_of(e, False), src))
    entries.extend(_parent_dirs(entries))
    entries.sort(key=lambda p: p.dest)
    return ModelPlan(
        name, version, detection.backend.key, generated, config_text, tuple(entries),
        detection.env_files,
        tuple((n, tree.text(n) or "") for n in detection.env_files),
        (version,),
    )


def _parent_dirs(entries: list[PlanEntry]) -> list[PlanEntry]:
    """Directory entries for every parent of a placed file that no entry names yet."""
    have = {e.dest for e in entries if e.kind is EntryKind.DIR}
    missing: set[str] = set()
    for e in entries:
        parts = e.dest.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in have:
                missing.add(d)
    return [PlanEntry(d, EntryKind.DIR, Layer.FILES) for d in sorted(missing)]


def build_repository_model_plan(
    tree: InputTree, name: str, backend_key: str, versions: tuple[int, ...],
    weight_files: frozenset[str], config_text: str, config_from_input: bool,
    env_files: tuple[str, ...], skip: frozenset[str], prefix: str, input_index: int,
) -> ModelPlan:
    """A model of a repository input: its tree is copied as it is (Triton's layout already),
    version directories included; `skip` names the files that are not copied (config.pbtxt,
    manifests, environment files). `weight_files` are version-relative model file names."""
    entries: list[PlanEntry] = [
        PlanEntry(name, EntryKind.DIR, Layer.FILES),
        config_entry(name, config_text, f"{prefix}{CONFIG_NAME}" if config_from_input else None),
    ]
    entries.extend(PlanEntry(f"{name}/{v}", EntryKind.DIR, Layer.FILES) for v in versions)
    for e in tree.entries:
        if e.path in skip or e.path.split("/", 1)[0] in skip:
            continue
        parts = e.path.split("/")
        weight = len(parts) > 1 and parts[0].isdigit() and parts[1] in weight_files
        if e.kind is EntryKind.DIR and e.path in {str(v) for v in versions}:
            continue
        entries.append(placed_file(f"{name}/{e.path}", e, layer_of(e, weight),
                                   prefix + e.path))
    entries.sort(key=lambda p: p.dest)
    return ModelPlan(name, max(versions), backend_key, not config_from_input, config_text,
                     tuple(entries), env_files,
                     tuple((n, tree.text(n) or "") for n in env_files), versions, input_index)


def build_ensemble_plan(name: str, config_text: str, versions: tuple[int, ...], prefix: str,
                        input_index: int) -> ModelPlan:
    """An ensemble's plan: its config, always the input's, and the empty version directories
    Triton requires (an ensemble has no files of its own)."""
    entries = [PlanEntry(name, EntryKind.DIR, Layer.FILES),
               config_entry(name, config_text, f"{prefix}{CONFIG_NAME}")]
    entries.extend(PlanEntry(f"{name}/{v}", EntryKind.DIR, Layer.FILES) for v in versions)
    return ModelPlan(name, max(versions), ENSEMBLE.key, False, config_text,
                     tuple(sorted(entries, key=lambda e: e.dest)), (), (), versions,
                     input_index)
