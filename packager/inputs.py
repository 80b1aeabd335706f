"""The model directory as a value: what the executor read, handed to the pure generators."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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
# model.xml is parsed streaming (modelread._ov_parse), but its bytes are held: the IR of a
# 70 B-parameter LLM is a few MiB, so 64 MiB leaves room without letting a file claim gigabytes.
MODEL_BLOBS = {
    "model.xml": 64 << 20,
}
# SavedModels of any size: memory-mapped, and only their tags and signatures kept
# (modelread.savedmodel_skeleton); the GraphDef that makes a saved_model.pb big is never copied.
SAVEDMODEL_GRAPHS = ("model.savedmodel/saved_model.pb",)
# ONNX graphs of any size: the executor memory-maps them and keeps only their skeleton
# (modelread.onnx_skeleton: inputs, outputs, initializer names), never the weights. External
# data files beside model.onnx/model.onnx are never opened.
ONNX_GRAPHS = ("model.onnx", "model.onnx/model.onnx")
# TorchScript archives are zips: only their `*/data.pkl` and `*/code/**.py` members are read.
TORCHSCRIPT_FILE = "model.pt"
# Budgets of the zip reader (executor/reader.py), checked before and while it reads:
# - central-directory entries: torch writes one per tensor storage plus a few; 200 000 is far
#   beyond any real archive and keeps zipfile's per-entry objects under ~100 MiB;
TORCHSCRIPT_MAX_ENTRIES = 200_000
# - the bytes read of data.pkl: its top-level class is in its first opcodes, so only a prefix
#   is read -- a data.pkl of gigabytes or of millions of strings costs 1 MiB here;
TORCHSCRIPT_PICKLE_PREFIX = 1 << 20
# - the one code file read (forward's source), as modelread.MAX_CODE_BYTES;
TORCHSCRIPT_CODE_LIMIT = 8 << 20
# - declared expansion of any entry: torch stores tensors uncompressed (ratio 1) and deflated
#   code rarely passes 10x; an entry declaring more than 100x is a zip bomb, refused. Reading
#   also stops when an entry inflates past its declared size (a lying header).
TORCHSCRIPT_MAX_RATIO = 100

# The mark of a directory triton-packager created (executor/state/ownership.py): never an input file.
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

    @cached_property
    def _by_top(self) -> dict[str, tuple[list[Entry], list[tuple[str, str]],
                                          list[tuple[str, bytes]], list[tuple[str, str, str]]]]:
        """Entries, texts, blobs and blob errors grouped by their first path component, built
        once: scanning everything for each of a repository's 10 000 models made `subtree`
        quadratic (issue 21). Not a field: equality and the digest ignore it."""
        groups: dict[str, tuple[list[Entry], list[tuple[str, str]], list[tuple[str, bytes]],
                                list[tuple[str, str, str]]]] = {}

        def group(path: str) -> tuple[list[Entry], list[tuple[str, str]],
                                      list[tuple[str, bytes]], list[tuple[str, str, str]]]:
            return groups.setdefault(path.split("/", 1)[0], ([], [], [], []))

        for e in self.entries:
            group(e.path)[0].append(e)
        for t in self.texts:
            group(t[0])[1].append(t)
        for b in self.blobs:
            group(b[0])[2].append(b)
        for err in self.blob_errors:
            group(err[0])[3].append(err)
        return groups

    def subtree(self, prefix: str, label: str | None = None) -> InputTree:
        """The entries under `prefix` ("name/" or "name/1/"), re-rooted there, with their texts
        and model bytes: a repository's model or version directory as a tree of its own."""
        n = len(prefix)

        def inside(path: str) -> bool:
            return path.startswith(prefix) and len(path) > n

        entries, texts, blobs, errors = self._by_top.get(prefix.split("/", 1)[0],
                                                         ([], [], [], []))
        return InputTree(
            label if label is not None else f"{self.label.rstrip('/')}/{prefix.rstrip('/')}",
            tuple(Entry(e.path[n:], e.kind, e.size, e.sha256, e.mode)
                  for e in entries if inside(e.path)),
            tuple((p[n:], t) for p, t in texts if inside(p)),
            (),
            tuple((p[n:], b) for p, b in blobs if inside(p)),
            tuple((p[n:], m, f) for p, m, f in errors if inside(p)),
        )

    def digest_lines(self) -> tuple[str, ...]:
        """Stable lines that change whenever a byte, name, kind or mode of the input changes."""
        return tuple(
            f"{e.kind.value} {e.mode:o} {e.size} {e.sha256} {e.path}" for e in self.entries
        )
