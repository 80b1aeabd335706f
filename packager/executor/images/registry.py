"""The image builders by name, and the choice among them (`--builder`).

A builder is one module of this package holding a class that satisfies `builder.Builder`; it is
registered by one line in `BUILDERS` (module and class, imported only when the builder is used,
so the docker SDK is not imported for a buildah run). The order is `--builder auto`'s preference.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from packager.errors import BuildError, InputError, PackagerError, bounded
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
    reads_file = split_transport(source or "")[0] in ARCHIVE_TRANSPORTS
    if reads_file:
        builders.sort(key=lambda b: not b.reads_archives)
    for i, candidate in enumerate(builders):
        if candidate.available():
            # Chosen only because the preferred one does not run here (an image file as the
            # base is a reason of its own): a user who expected the preferred builder sees this
            # one's errors (a pull from docker.io, a storage driver) and would not guess why it
            # ran, so they say so in their first line.
            if i and not reads_file:
                return cast(Builder, _ChosenByAuto(candidate, f"{builders[0].missing}, so "
                                                   f"--builder auto chose {candidate.name}"))
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


def fallback_note(builder: Builder) -> str | None:
    """Why `auto` chose `builder` when it was not the preferred one, else None."""
    return builder.note if isinstance(builder, _ChosenByAuto) else None


class _ChosenByAuto:
    """A builder `--builder auto` fell back to: every method of the builder, its errors prefixed
    with why it was chosen."""

    def __init__(self, inner: Builder, note: str) -> None:
        self.inner = inner
        self.note = note

    @contextmanager
    def _explained(self) -> Iterator[None]:
        try:
            yield
        except PackagerError as err:
            where = f"{bounded(err.file, 300, quote=False)}: " if err.file else ""
            raise type(err)(f"{self.note}; {where}{err.message}",
                            fix=f"{err.fix or 'fix the cause above'}; or start the preferred "
                            "builder and rerun (the Docker engine: dockerd or DOCKER_HOST), or "
                            f"pass --builder {self.inner.name} to choose it on purpose",
                            log_tail=err.log_tail) from err

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.inner, attr)
        if not callable(value):
            return value

        @functools.wraps(value)
        def explained(*args: Any, **kwargs: Any) -> Any:
            with self._explained():
                return value(*args, **kwargs)

        return cast(Callable[..., Any], explained)
