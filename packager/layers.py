"""The weights layers (pure): what every weights layer holds, whichever way it is made, and the
layers assembled directly -- the tar members of a weights layer, their exact byte layout, and the
image config and manifest of a `docker load` archive.

`WEIGHTS` is the one specification of a weights layer: templates/weights.Dockerfile.j2 renders
its COPY lines from it (buildah, and the Docker engine with --platform), and the docker load path
(executor/images/docker_load.py) assembles the same layer from it byte by byte.

Why: a Dockerfile `COPY` of gigabytes through the Docker engine's legacy builder writes the bytes
three times (the received context, the container's layer, the committed layer). `docker load`
of a layer the packager streams writes them twice (the unpacked archive, the registered layer),
and the layer tar is deterministic -- fixed owner, modes and mtime -- so the same weights on the
same base give the same image ID on every machine.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
MODEL_REPOSITORY = "/models"  # Triton's model repository in every generated image
LAYERS_LABEL = "io.triton-packager.weights.layers"
MAX_LAYER_SIZE_LABEL = "io.triton-packager.weights.max-layer-size"


@dataclass(frozen=True)
class WeightsLayer:
    """One model's weights layer: context/weights/<context_dir>/<model>/ at <root>/<model>/ in
    the image, files and directories below <root> owned by owner:group (Triton's uid 1000 in
    NGC images), files keeping their mode from the context (0644, or 0755 for executables),
    directories `dir_mode`, <root> itself owned by root (as COPY creates a missing parent),
    every entry's mtime `mtime` (so equal weights on an equal base give an equal image ID).
    The history entry of a layer assembled directly is the COPY it stands for, marked."""

    root: str = MODEL_REPOSITORY
    context_dir: str = "models"
    owner: int = 1000
    group: int = 1000
    dir_mode: int = 0o755
    root_owner: int = 0
    mtime: int = 0
    marker: str = "# triton-packager"

    @property
    def chown(self) -> str:
        return f"{self.owner}:{self.group}"

    def copy_instruction(self, model: str) -> str:
        """The Dockerfile instruction that makes `model`'s layer."""
        return f"COPY --chown={self.chown} {self.context_dir}/{model}/ {self.root}/{model}/"

    def history(self, model: str) -> str:
        """`created_by` of `model`'s layer when it is assembled, not built."""
        return f"{self.copy_instruction(model)} {self.marker}"


WEIGHTS = WeightsLayer()


@dataclass(frozen=True)
class Member:
    """One tar entry of a layer: `name` is the path inside the image without a leading `/`."""

    name: str
    size: int = 0  # regular files only
    mode: int = 0o644
    is_dir: bool = False
    owner: int = WEIGHTS.owner
    group: int = WEIGHTS.group

    def header(self, mtime: int) -> bytes:
        info = tarfile.TarInfo(self.name + ("/" if self.is_dir else ""))
        info.type = tarfile.DIRTYPE if self.is_dir else tarfile.REGTYPE
        info.size = 0 if self.is_dir else self.size
        info.mode = self.mode
        info.uid, info.gid = self.owner, self.group
        info.uname = info.gname = ""
        info.mtime = mtime
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> int:
    return -size % BLOCK


def members(files: Iterable[tuple[str, int, int]], root: str) -> list[Member]:
    """The members of a layer holding `files` ((path below `root`, size, mode)), in tar order:
    `root` owned by root (as COPY creates a missing parent), every directory below it and every
    file owned by uid/gid 1000, parents before children, sorted."""
    root = root.strip("/")
    dirs: set[str] = set()
    out: list[Member] = []
    for rel, size, mode in sorted(files):
        parts = rel.strip("/").split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
        out.append(Member(f"{root}/{rel.strip('/')}", size=size, mode=mode & 0o7777))
    out += [Member(f"{root}/{d}", mode=WEIGHTS.dir_mode, is_dir=True) for d in dirs]
    out.append(Member(root, mode=WEIGHTS.dir_mode, is_dir=True, owner=WEIGHTS.root_owner,
                      group=WEIGHTS.root_owner))
    return sorted(out, key=lambda m: m.name)


def layer_size(layer: Sequence[Member], mtime: int) -> int:
    """The exact byte length of the layer tar `stream_layer` writes."""
    total = len(END_OF_ARCHIVE)
    for m in layer:
        total += len(m.header(mtime))
        if not m.is_dir:
            total += m.size + padding(m.size)
    return total


def image_config(base: Mapping[str, Any], diff_ids: Sequence[str], *,
                 labels: Mapping[str, str], created_by: Sequence[str]) -> bytes:
    """The config of an image made of `base` plus one layer per `diff_ids` entry: the base's
    runtime config (env, cmd, workdir, user) and labels, with `labels` added. Deterministic:
    the base's creation time is reused, so equal inputs give an equal image ID."""
    config = dict(base.get("config") or {})
    # The weights layers' diff IDs, in order: push finds them in the model image built FROM
    # this one and sends them from the weights context, uncompressed (executor/push.py).
    config["Labels"] = {**(config.get("Labels") or {}), **labels,
                        LAYERS_LABEL: ",".join(diff_ids)}
    created = str(base.get("created") or "1970-01-01T00:00:00Z")
    history = [*list(base.get("history") or []),
               *({"created": created, "created_by": c} for c in created_by)]
    doc = {
        "architecture": base.get("architecture", "amd64"),
        "os": base.get("os", "linux"),
        **({"variant": base["variant"]} if base.get("variant") else {}),
        "config": config,
        "created": created,
        "history": history,
        "rootfs": {"type": "layers",
                   "diff_ids": [*((base.get("rootfs") or {}).get("diff_ids") or []),
                                *diff_ids]},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def base_history(api_history: Sequence[Mapping[str, Any]], layer_count: int) -> list[dict[str, Any]]:
    """The base image's config history from the engine's history API (newest first: Created in
    epoch seconds, CreatedBy, Size). An entry made a layer where its Size is not zero; when that
    does not account for every layer (a layer can be empty), one plain entry per layer instead,
    so that history and layers still agree."""
    entries = list(reversed(api_history))

    def when(h: Mapping[str, Any]) -> str:
        stamp = int(h.get("Created") or 0)
        return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    if sum(1 for h in entries if h.get("Size")) != layer_count:
        return [{"created": when(entries[-1]) if entries else "1970-01-01T00:00:00Z",
                 "comment": "base image layer"} for _ in range(layer_count)]
    out: list[dict[str, Any]] = []
    for h in entries:
        entry: dict[str, Any] = {"created": when(h)}
        if h.get("CreatedBy"):
            entry["created_by"] = str(h["CreatedBy"])
        if h.get("Comment"):
            entry["comment"] = str(h["Comment"])
        if not h.get("Size"):
            entry["empty_layer"] = True
        out.append(entry)
    return out


def config_name(config: bytes) -> str:
    return hashlib.sha256(config).hexdigest() + ".json"


def manifest(config: bytes, tag: str, layer_paths: Sequence[str]) -> bytes:
    """`docker load`'s manifest.json. Layers already on the engine (the base's) are named but not
    in the archive: the engine looks a layer up by its chain ID before it opens the file."""
    return json.dumps([{"Config": config_name(config), "RepoTags": [tag],
                        "Layers": list(layer_paths)}]).encode()


def outer_header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = mtime
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


# --- bounded weights layers --------------------------------------------------------------------

GIB = 1 << 30
MIB = 1 << 20
# 1 GiB: below the 2 GB (and 2^31 - 1 byte) caps some registries and proxies put on one request
# -- a pull fetches each layer in one GET, so chunked uploads alone do not help --, far below
# Harbor's reported failures at 12-13.5 GB layers, and small enough that a 16 GiB model pulls on
# several connections at once. Larger bounds mean fewer layers; smaller ones, more per-layer work.
DEFAULT_MAX_LAYER_SIZE = GIB
MIN_MAX_LAYER_SIZE = 16 * MIB  # below this, per-layer overhead (a tar, a request, a mount) wins
# overlay2 stacks at most 128 layers; the base image brings its own (NGC images: ~40).
MAX_WEIGHTS_LAYERS = 64
# header bytes reserved per file when grouping: a PAX header for a long path is 3 blocks
_HEADER_RESERVE = 4 * BLOCK

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": MIB, "mb": 10**6,
               "mib": MIB, "g": GIB, "gb": 10**9, "gib": GIB, "t": 1 << 40, "tb": 10**12,
               "tib": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from `1GiB`, `512MiB`, `2G` (binary), `2GB` (decimal) or a plain byte count.
    ValueError naming the problem when `text` is not a size."""
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("kmgtib")
    unit = value[len(number):]
    if not number or unit not in _SIZE_UNITS or len(text) > 40:
        msg = f"{text[:40]!r} is not a size (give e.g. 1GiB, 512MiB or a byte count)"
        raise ValueError(msg)
    try:
        amount = float(number)
    except ValueError:
        msg = f"{text[:40]!r} is not a size (give e.g. 1GiB, 512MiB or a byte count)"
        raise ValueError(msg) from None
    if not amount >= 0 or amount == float("inf"):
        msg = f"{text[:40]!r} is not a size"
        raise ValueError(msg)
    return int(amount * _SIZE_UNITS[unit])


def check_max_layer_size(size: int) -> None:
    """ValueError when `size` is too small to be a useful layer bound."""
    if size < MIN_MAX_LAYER_SIZE:
        msg = (f"a layer bound of {size} bytes is below the minimum of "
               f"{MIN_MAX_LAYER_SIZE >> 20} MiB")
        raise ValueError(msg)


@dataclass(frozen=True)
class LayerGroup:
    """One weights layer: `files` ((path below the model repository, size, mode)) of `model`;
    `part` of `parts` of that model's layers; `oversized`: one file larger than the bound."""

    model: str
    files: tuple[tuple[str, int, int], ...]
    part: int = 1
    parts: int = 1
    oversized: bool = False

    def members(self) -> list[Member]:
        return members(self.files, WEIGHTS.root)

    def size(self, mtime: int = WEIGHTS.mtime) -> int:
        return layer_size(self.members(), mtime)

    def history(self) -> str:
        note = f" (part {self.part} of {self.parts})" if self.parts > 1 else ""
        return WEIGHTS.history(self.model) + note


def group_files(model: str, files: Sequence[tuple[str, int, int]],
                max_layer_size: int) -> list[LayerGroup]:
    """`model`'s files in layers of at most `max_layer_size` bytes each (tar headers included),
    deterministic: files in path order, a layer closed when the next file would pass the bound.
    A file is never split (Triton must see it whole): one larger than the bound is a layer of its
    own (`oversized`). Files keep their place in the model's tree; only which layer carries them
    changes. A file whose bytes change but not its size changes only its own layer."""
    budget = max_layer_size - len(END_OF_ARCHIVE) - 8 * _HEADER_RESERVE  # root + parent dirs
    groups: list[list[tuple[str, int, int]]] = []
    oversized: list[bool] = []
    used = budget + 1
    for entry in sorted(files):
        cost = entry[1] + padding(entry[1]) + _HEADER_RESERVE * (1 + entry[0].count("/"))
        if cost > budget:
            groups.append([entry])
            oversized.append(True)
            used = budget + 1  # nothing joins an oversized layer
            continue
        if used + cost > budget:
            groups.append([])
            oversized.append(False)
            used = 0
        groups[-1].append(entry)
        used += cost
    if not groups:  # a model without files still gets its (empty) directory layer
        groups, oversized = [[]], [False]
    # The budget above reserves headers conservatively, so a file alone may still fit the bound
    # once its real headers are counted: `oversized` says what the layer is, not the estimate.
    return [LayerGroup(model, tuple(g), i + 1, len(groups),
                       big and LayerGroup(model, tuple(g)).size() > max_layer_size)
            for i, (g, big) in enumerate(zip(groups, oversized, strict=True))]
