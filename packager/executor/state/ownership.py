"""What the packager may replace or delete: only directories it created itself.

A directory the packager creates (an --output, a phase folder in it, `train --target`,
`setup -o`) gets a marker file when it is created. A later run replaces it only when the marker is there;
anything else that exists and is not empty is the user's and is refused unless `--force`.
Inputs and outputs must not overlap in either direction: replacing an output that contains
the input (or sits inside it) would destroy the input.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from pathlib import Path

from packager import __version__
from packager.errors import InputError
from packager.inputs import OWNED_MARKER as MARKER

STATE_DIR = ".triton-packager"  # the phases' state, inside --output
_LEFTOVER_RE = re.compile(r"^\.(?P<name>.+)\.(?:staging|old)-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def claim(directory: Path, kind: str) -> None:
    """Mark a directory the packager is creating (call on the staging dir, before the rename)."""
    (directory / MARKER).write_text(
        json.dumps({"tool": "triton-packager", "version": __version__, "kind": kind}) + "\n",
        encoding="utf-8")


def is_owned(directory: Path) -> bool:
    """Only the mark counts: a state folder that a `--force` run put into a user's directory
    does not make the directory the packager's."""
    with contextlib.suppress(OSError):
        return stat.S_ISREG(os.lstat(directory / MARKER).st_mode)
    return False


def _is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def check_replaceable(path: Path, *, option: str, force: bool = False) -> None:
    """`path` may be created or replaced: it is absent, an empty directory, the packager's own,
    or the user said --force. A file, a symlink or a foreign non-empty directory is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise InputError(f"{option} {path} is below a file, not a directory", file=str(path),
                         fix=f"choose another {option}") from None
    if stat.S_ISLNK(st.st_mode):
        raise InputError(f"{option} is a symlink", file=str(path),
                         fix=f"give the real directory as {option}, or another path")
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{option} exists and is not a directory", file=str(path),
                         fix=f"choose another {option}, or move the file away")
    if force or is_owned(path) or _is_empty_dir(path):
        return
    raise InputError(
        f"{option} is a non-empty directory that triton-packager did not create; it would be "
        "replaced",
        file=str(path),
        fix=f"choose a new or empty {option}, or pass --force to replace its contents",
    )


def check_disjoint(inp: Path, inp_label: str, out: Path, out_label: str) -> None:
    """Refuse an output equal to, inside, or containing the input (symlinks resolved)."""
    a, b = inp.resolve(), out.resolve()
    if a == b or a in b.parents or b in a.parents:
        where = ("is the same directory as" if a == b else
                 "is inside" if a in b.parents else "contains")
        raise InputError(
            f"{out_label} {out} {where} the {inp_label} {inp}; writing it would destroy the input",
            file=str(out), fix=f"choose an {out_label} outside {inp} that does not contain it")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(final: Path) -> list[Path]:
    """Remove staging and trash folders that interrupted runs left beside `final`."""
    removed: list[Path] = []
    try:
        siblings = list(os.scandir(final.parent))
    except OSError:
        return removed
    for d in siblings:
        m = _LEFTOVER_RE.match(d.name)
        if not m or m.group("name") != final.name or not d.is_dir(follow_symlinks=False):
            continue
        if _pid_alive(int(m.group("pid"))):
            continue
        old = Path(d.path) / "old"
        if ".old-" in d.name and old.is_dir() and not (final.exists() or final.is_symlink()):
            # Killed between its two renames: the previous output is intact here; restore it.
            with contextlib.suppress(OSError):
                os.rename(old, final)
        shutil.rmtree(d.path, ignore_errors=True)
        removed.append(Path(d.path))
    return removed
