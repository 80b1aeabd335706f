"""`prune`: remove the content-addressed weights images (`triton-packager/weights:<digest>`)
that no remaining image uses.

Every cold package leaves one weights image behind: the model image starts FROM it, and a later
package of the same weights reuses it. Once no tagged image is built on it, it only holds disk.
An image is a weights image here only when it is in the weights repository *and* carries the
label the packager sets on every weights image it makes (`io.triton-packager.weights.base-id`):
an image someone else named so is never touched. "Uses" is read from the layers: an image uses a
weights image when the weights image's layers are the first layers of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packager.dockerfile import WEIGHTS_REPOSITORY
from packager.executor.images.builder import Builder, ImageInfo
from packager.executor.report import Reporter

OWNER_LABEL = "io.triton-packager.weights.base-id"


@dataclass(frozen=True)
class PruneResult:
    removed: tuple[str, ...]  # the names removed (or that would be, with dry_run)
    kept: tuple[str, ...]  # weights images still used
    freed_bytes: int  # the weights images' sizes as the builder reports them (upper bound)


def _is_weights(name: str) -> bool:
    repo = name.rsplit(":", 1)[0]
    return repo.removeprefix("localhost/").removeprefix("docker.io/") == WEIGHTS_REPOSITORY


def unused_weights(images: Sequence[ImageInfo]) -> tuple[list[ImageInfo], list[ImageInfo]]:
    """(unused, used) weights images the packager made, among `images` (pure)."""
    ours = [i for i in images if OWNER_LABEL in i.labels and any(map(_is_weights, i.names))]
    others = [i for i in images if i not in ours and i.names]
    unused, used = [], []
    for w in ours:
        n = len(w.diff_ids)
        if any(o.id != w.id and len(o.diff_ids) > n and list(o.diff_ids[:n]) == list(w.diff_ids)
               for o in others):
            used.append(w)
        else:
            unused.append(w)
    return unused, used


def prune(builder: Builder, report: Reporter, *, dry_run: bool = False) -> PruneResult:
    unused, used = unused_weights(builder.list_images())
    removed: list[str] = []
    freed = 0
    for image in unused:
        names = [n for n in image.names if _is_weights(n)]
        for name in names:
            report.step(f"prune: {'would remove' if dry_run else 'removing'} {name}")
            if not dry_run:
                builder.remove_image(name)
            removed.append(name)
        freed += image.size
    kept = tuple(n for i in used for n in i.names if _is_weights(n))
    report.step(f"prune: {len(removed)} weights image(s) {'unused' if dry_run else 'removed'}, "
                f"{len(kept)} still used, {freed / (1 << 30):.2f} GiB "
                f"{'to reclaim' if dry_run else 'reclaimed'} (at most: layers shared with "
                "other images stay)")
    return PruneResult(tuple(removed), kept, freed)
