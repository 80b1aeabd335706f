"""Reading an MLflow project from disk: finding its MLproject, reading small text files
safely, and checking that declared files stay inside the project. The parsing and checking of
what was read is pure and lives in `packager.mlproject`."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NoReturn

from packager import safeyaml
from packager.errors import InputError, bounded
from packager.mlproject import FORMAT_FIX, MLPROJECT, MLProject, parse_mlproject


def _refuse(file: str, message: str, fix: str) -> NoReturn:
    raise InputError(message, file=file, fix=fix)


def read_text(path: Path, *, fix: str, limit: int = safeyaml.MAX_BYTES) -> str:
    """A small UTF-8 text file. O_NONBLOCK so a FIFO planted under the expected name cannot
    hang the run; the size cap is checked before decoding so a huge file is never read whole."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            _refuse(str(path), "is not a regular file", "replace it with a plain text file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        _refuse(str(path), f"is larger than {limit} bytes", "this file holds settings, not data; "
                "shrink it")
    return decode_text(data, file=str(path), fix=fix)


def decode_text(data: bytes, *, file: str, fix: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"is not UTF-8 text: byte {exc.start} (line {line}) is "
                         f"{data[exc.start]:#04x}", file=file,
                         fix=f"save it as UTF-8; {fix}") from None


def find_mlproject(project: Path) -> Path:
    if not project.is_dir():
        _refuse(str(project), "is not a directory", "give the path of an MLproject repository")
    found = sorted(c for c in project.iterdir() if c.name.lower() == MLPROJECT.lower())
    if len(found) > 1:
        _refuse(str(project), f"has {len(found)} MLproject files ({', '.join(c.name for c in found)})"
                "; which one applies depends on the filesystem", f"keep only {MLPROJECT}")
    if not found:
        _refuse(str(project), f"has no {MLPROJECT} file",
                f"add an {MLPROJECT} file (MLflow's format) with a main entry point")
    return stays_inside(project, found[0])


def stays_inside(project: Path, path: Path) -> Path:
    """`path`, refused when it is a symlink that leads out of the project (or loops): a linked
    MLproject or requirements.txt would otherwise read, and echo, a file of someone else's."""
    try:
        real = path.resolve()
    except (RuntimeError, OSError):  # a symlink loop (RuntimeError before Python 3.13)
        _refuse(str(path), "is a symlink loop", "replace the link with the file itself")
    if project not in real.parents:
        _refuse(str(path), "is a symlink that points outside the project",
                "copy the file into the project instead of linking to it")
    return path


def load_project(project: Path) -> tuple[Path, MLProject]:
    """Find, read, parse and check the MLproject of `project` (an absolute, resolved path)."""
    path = find_mlproject(project)
    spec = parse_mlproject(read_text(path, fix=FORMAT_FIX), default_name=project.name,
                           file=str(path))
    for field, value in (("conda_env", spec.conda_env), ("python_env", spec.python_env)):
        if value is not None:
            check_env_file(project, field, value, file=str(path))
    return path, spec


def check_env_file(project: Path, field: str, value: str, *, file: str) -> Path:
    """The declared environment file exists inside the project, symlinks resolved."""
    fix = f"set {field}: to the name of a file in the project, e.g. {field}: {field}.yaml"
    try:
        real = (project / value).resolve()
    except (RuntimeError, OSError):  # a symlink loop (RuntimeError before Python 3.13)
        _refuse(file, f"field '{field}' names {bounded(value)}, which is a symlink loop", fix)
    if project not in real.parents:
        _refuse(file, f"field '{field}' names {bounded(value)}, which points outside the project "
                f"(to {bounded(str(real))})", fix)
    if not real.is_file():
        what = "a directory or special file" if real.exists() else "missing"
        _refuse(file, f"field '{field}' names {bounded(value)}, which is {what}", fix)
    return real
