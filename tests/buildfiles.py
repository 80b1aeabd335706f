"""What noxfile.py and the Makefile define, read the way nox and make read them, without either
installed: the noxfile is run against a stand-in `nox` module that records each session, and
the Makefile's targets are read with the files it includes."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import REPO


def nox_sessions(noxfile: Path = REPO / "noxfile.py") -> dict[str, str]:
    """Every session the noxfile registers (loops included), by name, with its docstring."""
    sessions: dict[str, str] = {}

    def session(func: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            sessions[kwargs.get("name") or f.__name__] = f.__doc__ or ""
            return f

        return register(func) if func is not None else register

    stand_in = types.ModuleType("nox")
    stand_in.session = session  # type: ignore[attr-defined]
    stand_in.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    stand_in.Session = object  # type: ignore[attr-defined]
    saved, saved_path = sys.modules.get("nox"), list(sys.path)
    sys.modules["nox"] = stand_in
    try:
        code = compile(noxfile.read_text(), str(noxfile), "exec")
        exec(code, {"__file__": str(noxfile), "__name__": "noxfile"})
    finally:
        sys.path[:] = saved_path  # the noxfile puts its own directory first
        if saved is None:
            del sys.modules["nox"]
        else:
            sys.modules["nox"] = saved
    return sessions


def makefile_targets(makefile: Path = REPO / "Makefile") -> set[str]:
    """The targets of the Makefile and of the files it includes."""
    targets: set[str] = set()
    for line in makefile.read_text().splitlines():
        if m := re.match(r"^include\s+(\S+)\s*$", line):
            targets |= makefile_targets(makefile.parent / m.group(1))
        elif m := re.match(r"^([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)*)\s*:(?!=)", line):
            targets.update(m.group(1).split())
    return targets
