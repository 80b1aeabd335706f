"""Triton's backends as data: which files mark them, what config they need, which servers have them.

Facts come from Triton core's ``constants.h`` and ``model_config_utils.cc``
(see ``shared/reference/triton-facts.md`` sections 1, 2 and 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EntryKind(str, Enum):
    FILE = "file"
    DIR = "dir"


@dataclass(frozen=True)
class ModelFile:
    """One file (or directory) that must sit in the version directory."""

    name: str
    kinds: frozenset[EntryKind]


@dataclass(frozen=True)
class Backend:
    key: str  # our identifier, used in result.json, labels and snapshot names
    title: str
    backend: str  # config.pbtxt `backend:`
    platform: str  # config.pbtxt `platform:` ("" where Triton sets none)
    files: tuple[ModelFile, ...]
    # Triton cannot complete a config for these from the model file alone.
    config_required: bool
    # Whether `max_batch_size: 0` belongs in a generated minimal config.
    batching_field: bool
    # Last NGC release (yy.mm) that ships this backend; None = still shipped.
    last_ngc_release: str | None = None
    accepted_platforms: frozenset[str] = frozenset()

    def platform_ok(self, platform: str) -> bool:
        return platform in ({self.platform} | self.accepted_platforms)


_F = frozenset({EntryKind.FILE})
_D = frozenset({EntryKind.DIR})
_FD = frozenset({EntryKind.FILE, EntryKind.DIR})

BACKENDS: tuple[Backend, ...] = (
    Backend("tensorrt", "TensorRT", "tensorrt", "tensorrt_plan",
            (ModelFile("model.plan", _F),), config_required=False, batching_field=True),
    Backend("tf_savedmodel", "TensorFlow SavedModel", "tensorflow", "tensorflow_savedmodel",
            (ModelFile("model.savedmodel", _D),), config_required=False, batching_field=True,
            last_ngc_release="25.02"),
    Backend("tf_graphdef", "TensorFlow GraphDef", "tensorflow", "tensorflow_graphdef",
            (ModelFile("model.graphdef", _F),), config_required=True, batching_field=True,
            last_ngc_release="25.02"),
    Backend("onnx", "ONNX", "onnxruntime", "onnxruntime_onnx",
            (ModelFile("model.onnx", _FD),), config_required=False, batching_field=True),
    Backend("pytorch", "TorchScript", "pytorch", "pytorch_libtorch",
            (ModelFile("model.pt", _F),), config_required=True, batching_field=True,
            accepted_platforms=frozenset({"libtorch"})),
    Backend("caffe2", "Caffe2 NetDef", "caffe2", "caffe2_netdef",
            (ModelFile("model.netdef", _F), ModelFile("init_model.netdef", _F)),
            config_required=True, batching_field=True, last_ngc_release="20.10"),
    Backend("openvino", "OpenVINO", "openvino", "",
            (ModelFile("model.xml", _F), ModelFile("model.bin", _F)),
            config_required=False, batching_field=True),
    Backend("python", "Python", "python", "",
            (ModelFile("model.py", _F),), config_required=True, batching_field=False),
)

# An ensemble has no model file: only its config, which names the models it chains. Never
# detected from files (it is not in BACKENDS); chosen by `platform: "ensemble"`.
ENSEMBLE = Backend("ensemble", "Ensemble", "", "ensemble", (), config_required=True,
                   batching_field=True)

BY_KEY = {b.key: b for b in (*BACKENDS, ENSEMBLE)}


def backend_for_config(backend: str, platform: str) -> Backend | None:
    """The backend a config's `backend:`/`platform:` pair names, if it names one we know."""
    for b in BACKENDS:
        if platform and b.platform_ok(platform):
            return b
    for b in BACKENDS:
        # tensorflow is shared by two platforms; the file decides between them.
        if backend and b.backend == backend:
            return b
    return None
