"""Reading the model directory into an InputTree, refusing anything unsafe on the way."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from packager.backends import EntryKind
from packager.errors import InputError
from packager.inputs import IGNORED_NAMES, TEXT_FILES, Entry, InputTree

TEXT_LIMIT = 1 << 20  # manifests and configs are small; a huge one is a mistake
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def resolve_inside(root: Path, rel: str) -> Path:
    """The real path of `rel`, which must stay inside `root` (symlinks resolved)."""
    real = (root / rel).resolve()
    if real != root and root not in real.parents:
        raise InputError(
            f"{rel} is a symlink to {os.readlink(root / rel)!r}, outside the input directory",
            file=str(root),
            fix="copy the file into the input directory instead of linking to it",
        )
    return real


def read_input(path: str | os.PathLike[str]) -> InputTree:
    root_arg = Path(path)
    if not root_arg.exists():
        raise InputError("does not exist", file=str(root_arg),
                         fix="give the path of the directory holding the model files")
    if not root_arg.is_dir():
        raise InputError("is not a directory", file=str(root_arg),
                         fix="give the directory holding the model files, not a file in it")
    root = root_arg.resolve()
    entries: list[Entry] = []
    ignored: list[str] = []

    def walk(rel_dir: str) -> None:
        with os.scandir(root / rel_dir if rel_dir else root) as it:
            items = sorted(it, key=lambda d: d.name)
        for d in items:
            rel = f"{rel_dir}/{d.name}" if rel_dir else d.name
            if d.name in IGNORED_NAMES:
                ignored.append(rel)
                continue
            st = os.lstat(d.path)
            if stat.S_ISLNK(st.st_mode):
                real = resolve_inside(root, rel)
                if not real.exists():
                    raise InputError(f"{rel} is a broken symlink", file=str(root),
                                     fix="remove it or point it at a file in the directory")
                if real.is_dir():
                    raise InputError(
                        f"{rel} is a symlink to a directory", file=str(root),
                        fix="replace it with a real directory (symlinked directories can loop)",
                    )
                st = os.stat(real)
            if stat.S_ISDIR(st.st_mode):
                entries.append(Entry(rel, EntryKind.DIR, mode=stat.S_IMODE(st.st_mode)))
                walk(rel)
            elif stat.S_ISREG(st.st_mode):
                real_file = resolve_inside(root, rel)
                entries.append(Entry(rel, EntryKind.FILE, st.st_size, sha256_file(real_file),
                                     stat.S_IMODE(st.st_mode)))
            else:
                kind = ("FIFO" if stat.S_ISFIFO(st.st_mode) else
                        "socket" if stat.S_ISSOCK(st.st_mode) else "device file")
                raise InputError(
                    f"{rel} is a {kind}; only regular files and directories can be packaged",
                    file=str(root),
                    fix=f"remove {rel} from the input directory",
                )

    walk("")
    texts: list[tuple[str, str]] = []
    top = {e.path: e for e in entries if "/" not in e.path}
    for name in TEXT_FILES:
        e = top.get(name)
        if e is None or e.kind is not EntryKind.FILE:
            continue
        if e.size > TEXT_LIMIT:
            raise InputError(f"is {e.size} bytes; at most {TEXT_LIMIT} are expected", file=name,
                             fix=f"check that {name} is the right file")
        raw = resolve_inside(root, name).read_bytes()
        try:
            texts.append((name, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise InputError(f"is not UTF-8 text (byte {exc.start})", file=name,
                             fix=f"save {name} as UTF-8") from None
    return InputTree(str(root_arg), tuple(entries), tuple(texts), tuple(ignored))
