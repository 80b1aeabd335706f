"""Which Triton backend a model directory is for, from Triton's fixed file names."""

from __future__ import annotations

from dataclasses import dataclass

from packager.backends import BACKENDS, Backend, EntryKind, backend_for_config
from packager.errors import InputError
from packager.inputs import (
    CONDA_NAMES,
    CONFIG_NAME,
    MANIFEST_NAMES,
    REQUIREMENTS_NAME,
    InputTree,
)
from packager.modelconfig import ParsedConfig

_DOC = "https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/model_repository.html"


@dataclass(frozen=True)
class Detection:
    backend: Backend
    model_files: tuple[str, ...]  # top-level names that are the model itself
    extra_files: tuple[str, ...]  # top-level names copied next to the model
    env_files: tuple[str, ...]  # conda.yaml / requirements.txt: environment, not model files
    notes: tuple[str, ...] = ()


def _matches(backend: Backend, top: dict[str, EntryKind]) -> tuple[list[str], list[str]]:
    """(present, missing) model files of one backend."""
    present: list[str] = []
    missing: list[str] = []
    for f in backend.files:
        kind = top.get(f.name)
        (present if kind is not None else missing).append(f.name)
    return present, missing


def detect(tree: InputTree, config: ParsedConfig | None = None) -> Detection:
    top = {name: e.kind for name, e in tree.top_level().items()}
    if not top:
        raise InputError(
            "the input directory is empty",
            file=tree.label,
            fix="point the packager at the directory holding the trained model files",
        )
    candidates: list[Backend] = []
    for b in BACKENDS:
        present, missing = _matches(b, top)
        if not present:
            continue
        if missing:
            raise InputError(
                f"found {', '.join(present)} but not {', '.join(missing)}; a {b.title} model "
                f"needs all of: {', '.join(f.name for f in b.files)}",
                file=tree.label,
                fix=f"add {', '.join(missing)} next to {present[0]}",
            )
        for f in b.files:
            if top[f.name] not in f.kinds:
                want = " or ".join(sorted(k.value for k in f.kinds))
                raise InputError(
                    f"{f.name} is a {top[f.name].value}, but {b.title} expects a {want}",
                    file=tree.label,
                    fix=f"make {f.name} a {want} as Triton expects ({_DOC})",
                )
        if b.key == "onnx" and top["model.onnx"] is EntryKind.DIR:
            inner = {e.path for e in tree.under("model.onnx")}
            if "model.onnx/model.onnx" not in inner:
                raise InputError(
                    "model.onnx is a directory without model.onnx inside it",
                    file=tree.label,
                    fix="put the main graph at model.onnx/model.onnx, its external data beside it",
                )
        candidates.append(b)

    notes: list[str] = []
    if not candidates:
        names = ", ".join(sorted(top)) or "nothing"
        expected = "; ".join(f"{b.title}: {' + '.join(f.name for f in b.files)}" for b in BACKENDS)
        raise InputError(
            f"no model file with a name Triton recognises (found: {names})",
            file=tree.label,
            fix=f"name the model file as Triton expects ({expected})",
        )
    if len(candidates) > 1:
        chosen = (
            backend_for_config(config.backend, config.platform) if config is not None else None
        )
        if chosen is None or chosen not in candidates:
            kinds = " and ".join(f"{b.title} ({', '.join(f.name for f in b.files)})"
                                 for b in candidates)
            raise InputError(
                f"found two model kinds: {kinds}",
                file=tree.label,
                fix="keep one model per directory, or say which one is served with "
                f"'backend:' in {CONFIG_NAME} (the other files are then copied beside it)",
            )
        others = [b for b in candidates if b is not chosen]
        notes.append(
            f"{CONFIG_NAME} selects {chosen.title}; "
            + ", ".join(f.name for b in others for f in b.files)
            + " copied beside it as data"
        )
        candidates = [chosen]

    backend = candidates[0]
    model_files = tuple(f.name for f in backend.files)
    special = {CONFIG_NAME, *MANIFEST_NAMES}
    env = tuple(n for n in (*CONDA_NAMES, REQUIREMENTS_NAME) if n in top)
    if env and backend.key != "python":
        notes.append(
            f"{', '.join(env)} found but the model is {backend.title}: the environment is only "
            "used by the Python backend, so it is ignored"
        )
    extra = tuple(
        sorted(n for n in top if n not in special and n not in model_files and n not in env)
    )
    return Detection(backend, model_files, extra, env, tuple(notes))
