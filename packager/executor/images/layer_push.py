"""Push an image layer by layer, each as it is best sent (the default pusher of `push`).

- The weights layers (named by the image's `io.triton-packager.weights.layers` label, which the
  weights image's assembly sets) go uncompressed -- `application/vnd.oci.image.layer.v1.tar`,
  digest = diff ID -- streamed again from the files of the weights context, which they were made
  from byte for byte (executor/images/weights.py): nothing is exported, spooled or gzipped.
  Weights do not compress; gzip would bound the push by the CPU, not the wire.
- Every other layer (the base's, the model image's small ones) is gzipped, as usual: it comes
  from the builder (`export_layers`) and a record of its compressed digest (BlobCache) lets
  the next push find it in the registry without exporting or compressing it again. The choice
  is made per layer by what gzip saves: a large exported layer whose samples shrink by less
  than 10% (weights built from a Dockerfile, with --platform) goes uncompressed too.
- Before anything is sent, every layer is looked up in the registry (HEAD) and, failing that,
  mounted from a repository of the same registry it was pushed to before: a layer already
  there is never sent again.

The result is an OCI image manifest; the config is the builder's own, so the image ID (and what
`docker pull` / `buildah pull` give back) is the one that was built.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

from packager import layers
from packager.errors import EnvironmentFault, PushError, bounded
from packager.executor.images import weights
from packager.executor.images.builder import Builder, Credentials, ExportedLayer, Tls
from packager.executor.images.distribution import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Client,
)
from packager.executor.images.docker_load import piped
from packager.executor.report import Reporter
from packager.layers import WEIGHTS

COMPRESSIONS = ("auto", "gzip")  # --layer-compression
GZIP_LEVEL = 1
CHUNK = 1 << 20
WEIGHTS_UPLOADS = 2  # weights layers sent at once


def cache_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    root = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "triton-packager" / "blobs.json"


@dataclass
class BlobCache:
    """diff ID -> how that layer was pushed (digest, media type, size, tar size, repositories
    per registry). A hint only: every entry is checked against the registry before it is
    trusted."""

    path: Path

    def __post_init__(self) -> None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        self.entries: dict[str, dict[str, Any]] = doc if isinstance(doc, dict) else {}
        self.sent: dict[str, int] = {}  # this push's uploads of other layers: diff ID -> bytes

    def get(self, diff_id: str) -> dict[str, Any] | None:
        found = self.entries.get(diff_id)
        return found if isinstance(found, dict) else None

    def record(self, diff_id: str, digest: str, size: int, tar_size: int, host: str,
               repository: str, media_type: str = OCI_LAYER_GZIP) -> None:
        entry = self.entries.setdefault(diff_id, {})
        if entry.get("digest") != digest:
            entry.clear()
        entry.update(digest=digest, size=size, tar_size=tar_size, media_type=media_type)
        repos = entry.setdefault("repositories", {}).setdefault(host, [])
        if repository not in repos:
            repos[:] = [*repos[-7:], repository]

    def save(self) -> None:
        """Written atomically; a home without a writable cache (a cluster step) only loses the
        hint, never the push."""
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".blobs-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.entries, fh)
            Path(tmp).replace(self.path)


@dataclass(frozen=True)
class Plan:
    """What one layer of the image is and how it goes."""

    diff_id: str
    group: layers.LayerGroup | None  # a weights layer: sent from the weights context
    digest: str | None = None  # the blob's digest when known before sending
    size: int | None = None
    media_type: str = OCI_LAYER_GZIP


def _gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    def write(sink: IO[bytes]) -> None:
        with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:
            for chunk in chunks:
                gz.write(chunk)

    return piped(write, "gzip-layer")


SAMPLE = 1 << 20
SAMPLED_LAYER = 64 << 20  # smaller layers are gzipped without asking


def worth_compressing(path: Path) -> bool:
    """gzip a layer unless it is large and three 1 MiB samples of it (start, middle, end)
    shrink by less than 10% at the level used: weights are sent as they are."""
    size = path.stat().st_size
    if size < SAMPLED_LAYER:
        return True
    raw = packed = 0
    with path.open("rb") as fh:
        for offset in (0, size // 2, max(0, size - SAMPLE)):
            fh.seek(offset)
            data = fh.read(SAMPLE)
            raw += len(data)
            packed += len(zlib.compress(data, GZIP_LEVEL))
    return packed < 0.9 * raw


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _weights_plan(labels: dict[str, str], context: Path) -> dict[str, layers.LayerGroup]:
    """diff ID -> weights group, for the weights layers the image's labels name; {} when the
    image names none (its weights were built from a Dockerfile: they go as other layers)."""
    ids = [d for d in labels.get(layers.LAYERS_LABEL, "").split(",") if d]
    if not ids:
        return {}
    bound = int(labels.get(layers.MAX_LAYER_SIZE_LABEL) or layers.DEFAULT_MAX_LAYER_SIZE)
    if not (context / WEIGHTS.context_dir).is_dir():
        raise PushError(f"the weights context {bounded(str(context), 200)} is gone; push sends "
                        "the weights layers from it", fix="package the model again, then push")
    groups = weights.plan(context, bound)
    if len(groups) != len(ids):
        raise PushError("the weights context no longer matches the packaged image ("
                        f"{len(groups)} layers, the image has {len(ids)})",
                        fix="package the model again, then push")
    return dict(zip(ids, groups, strict=True))


def push_image(builder: Builder, image: str, out: Path, target: str, report: Reporter,
               credentials: Credentials, tls: Tls, *, compression: str = "auto",
               cache: BlobCache | None = None) -> str:
    """Push `image` (in `builder`'s store; packaged into `out`) as `target`; its manifest
    digest. `compression` "gzip" sends the weights gzipped too (registries refusing
    uncompressed layers)."""
    report.step(f"push: {target} (weights layers {'gzipped' if compression == 'gzip' else 'uncompressed'}, "
                f"other layers gzipped; credentials from {credentials.source})")
    client = Client(target, credentials, tls)
    cache = cache or BlobCache(cache_path())
    labels = builder.image_labels(image) or {}
    context = out / "context" / "weights"
    by_weights = _weights_plan(labels, context)
    diff_ids = builder.diff_ids(image)
    plans: dict[str, Plan] = {}
    skip: dict[str, int] = {}  # layers the builder need not export: diff ID -> tar size
    for diff_id in diff_ids:
        group = by_weights.get(diff_id)
        if group is not None and compression != "gzip":
            plans[diff_id] = Plan(diff_id, group, diff_id, group.size(), OCI_LAYER)
            skip[diff_id] = group.size()
            continue
        entry = cache.get(diff_id)
        if entry is not None and entry.get("media_type", OCI_LAYER_GZIP) == OCI_LAYER_GZIP \
                and _present(client, str(entry["digest"]), entry):
            plans[diff_id] = Plan(diff_id, group, str(entry["digest"]), int(entry["size"]))
            skip[diff_id] = int(entry["tar_size"])
        elif group is not None:
            plans[diff_id] = Plan(diff_id, group)
            skip[diff_id] = group.size()
    missing = [p for p in plans.values() if p.media_type == OCI_LAYER
               and not _present(client, p.diff_id, cache.get(p.diff_id) or {})]
    try:
        return _push(builder, image, out, target, report, client, cache, diff_ids, plans, skip,
                     missing, context, compression)
    except OSError as exc:  # writing an exported or compressed layer: a full disk
        # The machine's fault, not the registry's: exit 3, as a full disk during a build. The
        # spool (a temporary directory in `out`) is gone already; nothing was recorded.
        raise EnvironmentFault(f"cannot write the layers to push under {bounded(str(out), 200)}: "
                               f"{exc.strerror or exc}",
                               fix="free space beside the output directory (the base image's "
                               "layers and the model image's are written there once, gzipped, "
                               "before they are sent) and push again") from None


def _push(builder: Builder, image: str, out: Path, target: str, report: Reporter,
          client: Client, cache: BlobCache, diff_ids: list[str], plans: dict[str, Plan],
          skip: dict[str, int], missing: list[Plan], context: Path, compression: str) -> str:
    # The weights go while the builder exports the rest (`docker save` first copies the whole
    # image inside the engine): two uploads at a time, each layer on its own connection.
    sent = 0
    with tempfile.TemporaryDirectory(prefix=".push-", dir=out) as tmp, \
            ThreadPoolExecutor(max_workers=WEIGHTS_UPLOADS) as pool:
        uploads = []
        for plan in missing:
            assert plan.group is not None
            report.log(f"push: weights layer {plan.diff_id[7:19]} ({plan.size} bytes, "
                       "uncompressed)")
            uploads.append(pool.submit(client.upload, piped(
                partial(_write, context=context, group=plan.group), "weights-layer"),
                expected=plan.diff_id, uncompressed=True))
            sent += plan.size or 0
        try:
            config = _push_rest(builder, image, client, cache, diff_ids, plans, skip, context,
                                report, Path(tmp))
        except BaseException:
            for upload in uploads:
                upload.cancel()
            raise
        for upload in uploads:
            upload.result()  # a failed upload fails the push
    sent += sum(int(v) for v in cache.sent.values())
    config_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    cache.save()
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": plans[d].media_type, "digest": plans[d].digest,
                    "size": plans[d].size} for d in diff_ids],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    digest = client.put_manifest(body, OCI_MANIFEST, uncompressed=any(
        plans[d].media_type == OCI_LAYER for d in diff_ids))
    report.log(f"push: {sent} bytes of layers sent; the rest was in the registry already")
    return digest


def _push_rest(builder: Builder, image: str, client: Client, cache: BlobCache,
               diff_ids: list[str], plans: dict[str, Plan], skip: dict[str, int],
               context: Path, report: Reporter, tmp: Path) -> bytes:
    """Everything but the uncompressed weights: the config and the other layers; the config."""
    config, exported = builder.export_layers(image, skip, tmp)
    needed = [d for d in diff_ids if d not in plans or (
        plans[d].digest is None and plans[d].group is None)]
    if any(d not in exported for d in needed):
        # a layer passed over for its size was not the one of that size it was taken for
        config, exported = builder.export_layers(image, {}, tmp)
    if f"sha256:{hashlib.sha256(config).hexdigest()}" != builder.image_id(image):
        raise PushError(f"the image config read from the builder is not {bounded(image)}'s",
                        fix="package the model again, then push")
    got = json.loads(config).get("rootfs", {}).get("diff_ids", [])
    if list(got) != diff_ids:
        raise PushError("the builder's config and layer list disagree",
                        fix="package the model again, then push")
    for diff_id in diff_ids:
        plan = plans.get(diff_id)
        if plan is not None and plan.digest is not None:
            if plan.media_type == OCI_LAYER:  # where it is now, for a mount next time
                cache.record(diff_id, diff_id, plan.size or 0, plan.size or 0, client.host,
                             client.repository, OCI_LAYER)
            continue
        if plan is not None and plan.group is not None:  # weights, gzipped on request
            digest, size = client.upload(_gzipped(piped(
                partial(_write, context=context, group=plan.group), "weights-layer")))
            plans[diff_id] = Plan(diff_id, plan.group, digest, size)
            cache.record(diff_id, digest, size, plan.group.size(), client.host,
                         client.repository)
            cache.sent[diff_id] = size
            continue
        layer = exported.get(diff_id)
        if layer is None:
            raise PushError(f"the builder exported no layer {diff_id[:19]} of {bounded(image)}",
                            fix="push again; if it persists, package again")
        plans[diff_id], size = _send_exported(client, cache, diff_id, layer, report)
        cache.sent[diff_id] = size
    config_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    if not client.exists(config_digest):
        client.upload(iter([config]), expected=config_digest)
    return config


def _write(sink: IO[bytes], context: Path, group: layers.LayerGroup) -> None:
    weights.write_layer(sink, context, group)


def _present(client: Client, digest: str, entry: dict[str, Any]) -> bool:
    if client.exists(digest):
        return True
    for repo in reversed((entry.get("repositories") or {}).get(client.host, [])):
        if client.mount(digest, str(repo)):
            return True
    return False


def _send_exported(client: Client, cache: BlobCache, diff_id: str, layer: ExportedLayer,
                   report: Reporter) -> tuple[Plan, int]:
    """A layer the builder exported: gzipped (unless it already is), looked up, sent."""
    if layer.gzipped:
        digest = layer.digest
        size = layer.path.stat().st_size
        if not _present(client, digest, cache.get(diff_id) or {}):
            client.upload(_file_chunks(layer.path), expected=digest)
            report.log(f"push: layer {diff_id[7:19]} ({size} bytes, gzip)")
        else:
            size_sent = 0
            cache.record(diff_id, digest, size, layer.tar_size, client.host, client.repository)
            return Plan(diff_id, None, digest, size), size_sent
        cache.record(diff_id, digest, size, layer.tar_size, client.host, client.repository)
        return Plan(diff_id, None, digest, size), size
    if not worth_compressing(layer.path):
        # weights the image does not name (built from a Dockerfile, --platform): as they are
        sent = 0
        if not _present(client, diff_id, cache.get(diff_id) or {}):
            client.upload(_file_chunks(layer.path), expected=diff_id, uncompressed=True)
            report.log(f"push: layer {diff_id[7:19]} ({layer.tar_size} bytes, uncompressed: "
                       "gzip would save under 10%)")
            sent = layer.tar_size
        cache.record(diff_id, diff_id, layer.tar_size, layer.tar_size, client.host,
                     client.repository, OCI_LAYER)
        return Plan(diff_id, None, diff_id, layer.tar_size, OCI_LAYER), sent
    # Compressed once to a file beside the export, so the digest is known before the upload
    # and a layer the registry has is not sent.
    packed = layer.path.with_suffix(".gz")
    sha = hashlib.sha256()
    with packed.open("wb") as raw:
        for chunk in _gzipped(_file_chunks(layer.path)):
            sha.update(chunk)
            raw.write(chunk)
    with contextlib.suppress(OSError):
        layer.path.unlink()
    digest = f"sha256:{sha.hexdigest()}"
    size = packed.stat().st_size
    sent = 0
    if not _present(client, digest, cache.get(diff_id) or {}):
        client.upload(_file_chunks(packed), expected=digest)
        report.log(f"push: layer {diff_id[7:19]} ({size} bytes, gzip)")
        sent = size
    cache.record(diff_id, digest, size, layer.tar_size, client.host, client.repository)
    return Plan(diff_id, None, digest, size), sent
