"""The image builders by name, and the choice among them (`--builder`).

A builder is one module of this package holding a class that satisfies `builder.Builder`; it is
registered by one line in `BUILDERS` (module and class, imported only when the builder is used,
so the docker SDK is not imported for a buildah run). The order is `--builder auto`'s preference.
"""

from __future__ import annotations

import importlib

from packager.errors import BuildError, InputError
from packager.executor.images.builder import Builder
from packager.imageref import ARCHIVE_TRANSPORTS, split_transport

BUILDERS: dict[str, str] = {
    "docker": "packager.executor.images.docker:DockerBuilder",
    "buildah": "packager.executor.images.buildah:BuildahBuilder",
}
AUTO = "auto"


def names() -> tuple[str, ...]:
    return tuple(BUILDERS)


def choices() -> tuple[str, ...]:
    """What `--builder` accepts."""
    return (AUTO, *names())


def get(name: str) -> Builder:
    """The builder registered as `name`, not yet checked to run here."""
    if name not in BUILDERS:
        raise InputError(f"--builder {name[:40]!r} is not a builder",
                         fix=f"use one of {', '.join(choices())}")
    module, _, cls = BUILDERS[name].partition(":")
    builder: Builder = getattr(importlib.import_module(module), cls)()
    return builder


def select(name: str, *, source: str | None = None) -> Builder:
    """The builder `--builder NAME` asks for, after checking that it can run here (so a missing
    builder is found before the first write). `auto`: the first registered builder that runs
    here, one that reads image files first when the base `source` is one."""
    if name != AUTO:
        chosen = get(name)
        chosen.require()  # BuildError (exit 3) naming how to make it run
        return chosen
    builders = []
    for n in names():
        try:
            builders.append(get(n))
        except ImportError:  # its client library is not installed: it cannot run here
            continue
    if split_transport(source or "")[0] in ARCHIVE_TRANSPORTS:
        builders.sort(key=lambda b: not b.reads_archives)
    for candidate in builders:
        if candidate.available():
            return candidate
    raise BuildError("no image builder here: " + " and ".join(b.missing for b in builders),
                     fix=", or ".join(b.setup_hint for b in builders))


def for_archive_output(name: str) -> str:
    """The builder that writes an image file when `--builder NAME` is asked for one."""
    writers = [n for n in names() if get(n).writes_archives]
    if name == AUTO:
        return writers[0]
    if name not in writers:
        raise InputError(f"--output writes an image file with {' or '.join(writers)}",
                         fix=f"add --builder {writers[0]} (or leave --builder out)")
    return name
