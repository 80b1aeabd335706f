"""The model directory as a value: what the executor read, handed to the pure generators."""

from __future__ import annotations

from dataclasses import dataclass

from packager.backends import EntryKind

MANIFEST_NAMES = (
    "odahuflow.model.yaml",
    "odahuflow.model.yml",
    "odahuflow.project.yaml",
    "odahuflow.project.yml",
)
CONFIG_NAME = "config.pbtxt"
CONDA_NAMES = ("conda.yaml", "conda.yml")
REQUIREMENTS_NAME = "requirements.txt"

# Files whose text the generators need; the executor reads exactly these (when present).
TEXT_FILES = (*MANIFEST_NAMES, CONFIG_NAME, *CONDA_NAMES, REQUIREMENTS_NAME, "model.py")

# Model files whose bytes the generators parse (modelread.py), with the most the executor reads.
MODEL_BLOBS = {
    "model.xml": 256 << 20,
    "model.savedmodel/saved_model.pb": 2 << 30,
}
# ONNX graphs of any size: the executor memory-maps them and keeps only their skeleton
# (modelread.onnx_skeleton: inputs, outputs, initializer names), never the weights. External
# data files beside model.onnx/model.onnx are never opened.
ONNX_GRAPHS = ("model.onnx", "model.onnx/model.onnx")
# TorchScript archives are zips: only their `*/data.pkl` and `*/code/**.py` members are read.
TORCHSCRIPT_FILE = "model.pt"
TORCHSCRIPT_MEMBERS_LIMIT = 64 << 20

# The mark of a directory triton-packager created (executor/ownership.py): never an input file.
OWNED_MARKER = ".triton-packager-owned"

# Produced by tools, never part of a model: skipped (and reported) rather than copied.
IGNORED_NAMES = frozenset({".git", "__pycache__", ".ipynb_checkpoints", ".DS_Store", "result.json"})


@dataclass(frozen=True)
class Entry:
    path: str  # POSIX path relative to the input directory
    kind: EntryKind
    size: int = 0
    sha256: str = ""  # content digest for files, "" for directories
    mode: int = 0o644

    @property
    def top(self) -> str:
        return self.path.split("/", 1)[0]


@dataclass(frozen=True)
class InputTree:
    """Every entry of the input directory (sorted), plus the texts of the few files we parse."""

    label: str  # how messages name the input directory
    entries: tuple[Entry, ...]
    texts: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()
    # Model bytes (MODEL_BLOBS), and TorchScript members as "model.pt:<member>"; dropped with
    # `without_blobs()` once analysed, so the build does not hold them.
    blobs: tuple[tuple[str, bytes], ...] = ()
    # Model files the executor could not even cut a skeleton from: (name, message, fix), raised
    # by the generators at the point in the checks where the model is read.
    blob_errors: tuple[tuple[str, str, str], ...] = ()

    def blob_error(self, name: str) -> tuple[str, str] | None:
        return next(((m, f) for n, m, f in self.blob_errors if n == name), None)

    def blob(self, name: str) -> bytes | None:
        return next((data for n, data in self.blobs if n == name), None)

    def members(self, archive: str) -> dict[str, bytes]:
        prefix = archive + ":"
        return {n[len(prefix):]: data for n, data in self.blobs if n.startswith(prefix)}

    def without_blobs(self) -> InputTree:
        return InputTree(self.label, self.entries, self.texts, self.ignored, (), self.blob_errors)

    def text(self, name: str) -> str | None:
        return dict(self.texts).get(name)

    def top_level(self) -> dict[str, Entry]:
        return {e.path: e for e in self.entries if "/" not in e.path}

    def under(self, top: str) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.path == top or e.path.startswith(top + "/"))

    def subtree(self, prefix: str, label: str | None = None) -> InputTree:
        """The entries under `prefix` ("name/" or "name/1/"), re-rooted there, with their texts
        and model bytes: a repository's model or version directory as a tree of its own."""
        n = len(prefix)

        def inside(path: str) -> bool:
            return path.startswith(prefix) and len(path) > n

        return InputTree(
            label if label is not None else f"{self.label.rstrip('/')}/{prefix.rstrip('/')}",
            tuple(Entry(e.path[n:], e.kind, e.size, e.sha256, e.mode)
                  for e in self.entries if inside(e.path)),
            tuple((p[n:], t) for p, t in self.texts if inside(p)),
            (),
            tuple((p[n:], b) for p, b in self.blobs if inside(p)),
            tuple((p[n:], m, f) for p, m, f in self.blob_errors if inside(p)),
        )

    def digest_lines(self) -> tuple[str, ...]:
        """Stable lines that change whenever a byte, name, kind or mode of the input changes."""
        return tuple(
            f"{e.kind.value} {e.mode:o} {e.size} {e.sha256} {e.path}" for e in self.entries
        )
