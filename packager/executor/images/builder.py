"""What the packager asks of an image builder: the `Builder` protocol, and the values push hands
it (`Credentials`, `Tls`).

Phases, verify, push and base-image talk to a `Builder` only, and never ask which one they have:
what differs between engines is behind these methods. A builder is one module beside this one
(docker.py, buildah.py), registered by name in registry.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from packager.executor.report import Reporter
from packager.layers import DEFAULT_MAX_LAYER_SIZE


@dataclass(frozen=True)
class Credentials:
    """Where push takes registry credentials from. The password never reaches a command line,
    a log line, result.json or an image; `repr` leaves it out."""

    authfile: Path | None = None  # a Docker-style auth file ({"auths": {...}})
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = "the builder's own defaults"  # named in messages, never the secret


@dataclass(frozen=True)
class Tls:
    """How push trusts the registry: a CA bundle of its own, or (test registries) no check."""

    ca_bundle: Path | None = None
    verify: bool = True


def registry_host(reference: str) -> str:
    """The registry part of a reference, as auth files key it (Docker Hub: docker.io)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


@dataclass(frozen=True)
class ExportedLayer:
    """One layer the builder wrote to a file for the registry pusher (layer_push.py)."""

    path: Path
    digest: str  # of the file's bytes
    gzipped: bool
    tar_size: int = 0  # the uncompressed tar's size, 0 when unknown


@dataclass(frozen=True)
class ImageInfo:
    """One image in the builder's store, as `prune` reads it."""

    id: str
    names: tuple[str, ...]
    labels: Mapping[str, str]
    diff_ids: tuple[str, ...]
    size: int = 0


class Builder(Protocol):
    """An image engine. References are image names or IDs in the builder's own store; a
    `source` may also carry a transport (`oci-archive:PATH[:NAME]`, `docker-daemon:NAME`, ...,
    parsed by packager.imageref.split_transport)."""

    # --- what it is ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """As `--builder` and result.json name it."""

    @property
    def missing(self) -> str:
        """What is missing when it cannot run here ("no Docker engine answers")."""

    @property
    def setup_hint(self) -> str:
        """How to make it run here (the `fix:` of "no image builder here")."""

    @property
    def reads_archives(self) -> bool:
        """It builds from a base given as an image file (`oci-archive:`, `docker-archive:`)."""

    @property
    def writes_archives(self) -> bool:
        """`export_image` can write an image file."""

    def available(self) -> bool:
        """It can run here (for `--builder auto`); never raises."""

    def require(self) -> None:
        """BuildError (exit 3) naming how to make it run here, unless it can."""

    # --- build -----------------------------------------------------------------------------
    def build_image(self, context: Path, tag: str, report: Reporter,
                    buildargs: dict[str, str] | None = None, *, nocache: bool = False,
                    platform: str | None = None, labels: dict[str, str] | None = None) -> str:
        """Build `context` (its Dockerfile, honouring its .dockerignore) as `tag`; every base
        it starts FROM is brought in first. Return the image ID (sha256:...)."""

    def build_weights(self, context: Path, tag: str, base_ref: str, report: Reporter, *,
                      labels: dict[str, str], nocache: bool = False,
                      platform: str | None = None,
                      max_layer_size: int = DEFAULT_MAX_LAYER_SIZE) -> str:
        """The weights image `tag` from context/weights: the layers assembled (each as
        packager.layers.WEIGHTS says, grouped into layers of at most `max_layer_size` bytes by
        packager.layers.group_files), or -- `weights_from_dockerfile` -- its Dockerfile built
        (FROM the base, one COPY per model, unbounded); return its ID."""

    def weights_from_dockerfile(self, platform: str | None) -> bool:
        """`build_weights` builds context/weights/Dockerfile (so a --template-dir's
        weights.Dockerfile.j2 applies); False: it assembles the layers itself."""

    # --- images it holds -------------------------------------------------------------------
    def image_id(self, reference: str) -> str | None:
        """The ID of `reference`, None when absent (or the builder cannot be asked)."""

    def image_exists(self, reference: str, image_id: str) -> bool:
        """`reference` names the image `image_id`."""

    def image_labels(self, reference: str) -> dict[str, str] | None:
        """The labels of `reference`, None when absent."""

    def manifest_digest(self, reference: str) -> str | None:
        """The registry manifest digest (sha256:...) `reference` was pulled or pushed with,
        None when absent or never in a registry (provenance: Tekton's BASE_IMAGE_DIGEST)."""

    def ensure_image(self, reference: str, name: str | None = None, *,
                     pull: bool = False) -> str:
        """The ID of `reference` (a name, or a `base_source`), bringing it in when absent;
        `name` is what a Dockerfile's FROM calls it. `pull`: a registry name is pulled from its
        registry even when the builder holds an image of that name (`package --pull always`:
        a kept store may hold another image under the base's name)."""

    def check_base_source(self, source: str | None) -> None:
        """Refuse a base image source this builder cannot read (before the first write)."""

    def import_rootfs(self, tar_path: Path, reference: str, *, env: Sequence[str],
                      workdir: str, labels: Mapping[str, str], cmd: Sequence[str]) -> str:
        """An image from a root filesystem tar (`docker import`), tagged `reference`; its ID."""

    def export_image(self, reference: str, output: str, *, name: str | None = None) -> Path:
        """Write the image to the file `output` (`oci-archive:PATH`, `docker-archive:PATH`),
        named `name` inside; InputError when this builder writes no image files."""

    def remove_image_id(self, image_id: str) -> None:
        """Remove the image `image_id` and every name it has from the builder's store (layers
        other images use stay); an image already gone is no error."""

    # --- run and push ----------------------------------------------------------------------
    def make_runnable(self, image: str, image_id: str | None, report: Reporter) -> None:
        """Make `image` runnable where verify runs images (the local Docker engine)."""

    def run_hint(self, image: str) -> str:
        """What to add to "run it" advice for `image` ("" when `docker run` finds it)."""

    def check_push(self, tls: Tls) -> None:
        """Refuse push options this builder cannot honour (before anything is pushed)."""

    def diff_ids(self, image: str) -> list[str]:
        """The diff IDs of `image`'s layers, base first."""

    def export_layers(self, image: str, skip: Mapping[str, int], workdir: Path,
                      ) -> tuple[bytes, dict[str, ExportedLayer]]:
        """`image`'s config (its exact bytes) and its layers as files under `workdir`, except
        those in `skip` (diff ID -> uncompressed tar size), which need not be written."""

    def tag_image(self, image: str, name: str) -> None:
        """Name `image` (an ID or a name) `name` too."""

    def list_images(self) -> list[ImageInfo]:
        """Every image in the store (for `prune`)."""

    def remove_image(self, name: str) -> None:
        """Remove the name `name` (and the image, when no other name holds it); never forced:
        an image a container uses stays."""

    def push(self, image: str, target: str, report: Reporter, credentials: Credentials,
             tls: Tls, image_id: str | None = None) -> str:
        """Push `image` (ID `image_id`, when known) as `target`, which names it locally too
        afterwards; return the manifest digest (sha256:...)."""
