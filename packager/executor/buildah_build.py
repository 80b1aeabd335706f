"""Compatibility for code written against the old path (tests/test_tekton_run.py): the buildah
builder is packager/executor/images/buildah.py. Remove once nothing imports this."""

from packager.executor.images.buildah import (
    ENV_DRIVER,
    ENV_ROOT,
    ENV_RUNROOT,
    Storage,
    ensure_image,
    export_image,
)

__all__ = ["ENV_DRIVER", "ENV_ROOT", "ENV_RUNROOT", "Storage", "ensure_image", "export_image"]
