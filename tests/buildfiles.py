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


def nox_session_functions(noxfile: Path = REPO / "noxfile.py") -> dict[str, Callable[..., Any]]:
    """Every session function the noxfile registers (loops included), by session name."""
    sessions: dict[str, Callable[..., Any]] = {}

    def session(func: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            sessions[kwargs.get("name") or f.__name__] = f
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


def nox_sessions(noxfile: Path = REPO / "noxfile.py") -> dict[str, str]:
    """Every session the noxfile registers, by name, with its docstring (what `nox -l` shows)."""
    return {name: f.__doc__ or "" for name, f in nox_session_functions(noxfile).items()}


class RecordingSession:
    """A stand-in for nox.Session that records the commands a session would run."""

    def __init__(self, *posargs: str) -> None:
        self.posargs = list(posargs)
        self.commands: list[tuple[str, ...]] = []

    def install(self, *args: str) -> None:
        pass

    def log(self, *args: object) -> None:
        pass

    def run(self, *args: str, **kwargs: object) -> None:
        self.commands.append(args)


def makefile_targets(makefile: Path = REPO / "Makefile") -> set[str]:
    """The targets of the Makefile and of the files it includes."""
    targets: set[str] = set()
    for line in makefile.read_text().splitlines():
        if m := re.match(r"^include\s+(\S+)\s*$", line):
            targets |= makefile_targets(makefile.parent / m.group(1))
        elif m := re.match(r"^([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)*)\s*:(?!=)", line):
            targets.update(m.group(1).split())
    return targets
