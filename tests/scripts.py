"""The repository's scripts outside the package (deploy/tekton/check.py, deploy/image/build.py),
imported by path for their tests: they run as files, not as modules of an installed package."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from conftest import REPO


def load_script(path: str, name: str) -> ModuleType:
    """The script at `path` (relative to the repository), executed afresh as module `name`."""
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
