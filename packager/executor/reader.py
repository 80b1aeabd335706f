"""Reading the model directory into an InputTree, refusing anything unsafe on the way."""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import re
import stat
import zipfile
from pathlib import Path

from packager.backends import EntryKind
from packager.errors import InputError, bounded
from packager.executor.digestcache import DigestCache
from packager.inputs import (
    IGNORED_NAMES,
    MODEL_BLOBS,
    ONNX_GRAPHS,
    OWNED_MARKER,
    TEXT_FILES,
    TORCHSCRIPT_FILE,
    TORCHSCRIPT_MEMBERS_LIMIT,
    Entry,
    InputTree,
)
from packager.layout import read_roots
from packager.modelread import onnx_skeleton

TEXT_LIMIT = 1 << 20  # manifests and configs are small; a huge one is a mistake
MAX_DEPTH = 32  # Triton trees are shallow; 1 100 nested folders are a mistake or an attack
MAX_ENTRIES = 100_000
_CHUNK = 1 << 20
# Names become paths in the image and lines of the input digest: no control characters.
_BAD_NAME_RE = re.compile(r"[\x00-\x1f\x7f]")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def resolve_inside(root: Path, rel: str) -> Path:
    """The real path of `rel`, which must stay inside `root` (symlinks resolved)."""
    try:
        real = (root / rel).resolve(strict=True)
    except (RuntimeError, OSError) as exc:  # a loop: RuntimeError before 3.13, OSError after
        if isinstance(exc, FileNotFoundError):
            raise InputError(f"{bounded(rel)} is a broken symlink", file=str(root),
                             fix="remove it or point it at a file in the directory") from None
        raise InputError(f"{bounded(rel)} is a symlink loop ({bounded(str(exc), quote=False)})",
                         file=str(root), fix="replace the link with the file itself") from None
    if real != root and root not in real.parents:
        try:
            target = os.readlink(root / rel)
        except OSError:
            target = str(real)
        raise InputError(
            f"{bounded(rel)} is a symlink to {bounded(target)}, outside the input directory",
            file=str(root),
            fix="copy the file into the input directory instead of linking to it",
        )
    return real


def open_inside(root: Path, rel: str, *, expect_size: int | None = None) -> int:
    """A read-only descriptor of the regular file `rel` under `root`, opened one path component
    at a time without following symlinks: a file swapped for a symlink (or a directory for a
    link out) between the scan and this open is refused, never followed out of the input."""
    real = resolve_inside(root, rel)  # links inside the input are allowed: use their target
    parts = real.relative_to(root).parts
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if last else os.O_DIRECTORY)
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise InputError(f"{bounded(rel)} changed while it was being packaged",
                                     file=str(root), fix="package again once nothing is writing "
                                     "to the input directory") from None
                raise
            os.close(fd)
            fd = nxt
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (expect_size is not None and st.st_size != expect_size):
            raise InputError(f"{bounded(rel)} changed while it was being packaged",
                             file=str(root),
                             fix="package again once nothing is writing to the input directory")
        return fd
    except BaseException:
        os.close(fd)
        raise


def _check_name(name: str, rel_dir: str, root: Path) -> str:
    rel = f"{rel_dir}/{name}" if rel_dir else name
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(rel)
        raise InputError(f"file name {bounded(raw)} is not valid UTF-8", file=str(root),
                         fix="rename it with UTF-8 characters only") from None
    if _BAD_NAME_RE.search(name):
        raise InputError(f"file name {bounded(rel)} contains a control character", file=str(root),
                         fix="rename it without newlines, tabs or other control characters")
    return rel


def _digest(path: Path, cache: DigestCache | None) -> str:
    st = os.stat(path)
    if cache is not None:
        known = cache.lookup(path, st)
        if known is not None:
            return known
    digest = sha256_file(path)
    if cache is not None:
        cache.record(path, st, digest)
    return digest


def _walk(root: Path, cache: DigestCache | None) -> tuple[list[Entry], list[str]]:
    """Every entry under root, sorted, iteratively (no recursion limit to hit)."""
    entries: list[Entry] = []
    ignored: list[str] = []
    stack: list[tuple[str, int]] = [("", 0)]
    while stack:
        rel_dir, depth = stack.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as it:
            items = sorted(it, key=lambda d: d.name)
        subdirs: list[str] = []
        for d in items:
            if not rel_dir and d.name == OWNED_MARKER:
                continue  # the packager's own mark (setup/train output), not a model file
            rel = _check_name(d.name, rel_dir, root)
            if d.name in IGNORED_NAMES:
                ignored.append(rel)
                continue
            st = os.lstat(d.path)
            if stat.S_ISLNK(st.st_mode):
                real = resolve_inside(root, rel)
                if real.is_dir():
                    raise InputError(
                        f"{bounded(rel)} is a symlink to a directory", file=str(root),
                        fix="replace it with a real directory (symlinked directories can loop)",
                    )
                st = os.stat(real)
            if stat.S_ISDIR(st.st_mode):
                if depth + 1 >= MAX_DEPTH:
                    raise InputError(
                        f"{bounded(rel, 120)} is nested more than {MAX_DEPTH} directories deep",
                        file=str(root), fix="flatten the directory tree")
                entries.append(Entry(rel, EntryKind.DIR, mode=stat.S_IMODE(st.st_mode)))
                subdirs.append(rel)
            elif stat.S_ISREG(st.st_mode):
                real_file = resolve_inside(root, rel)
                entries.append(Entry(rel, EntryKind.FILE, st.st_size, _digest(real_file, cache),
                                     stat.S_IMODE(st.st_mode)))
            else:
                kind = ("FIFO" if stat.S_ISFIFO(st.st_mode) else
                        "socket" if stat.S_ISSOCK(st.st_mode) else "device file")
                raise InputError(
                    f"{bounded(rel)} is a {kind}; only regular files and directories can be "
                    "packaged",
                    file=str(root),
                    fix=f"remove {bounded(rel)} from the input directory",
                )
            if len(entries) > MAX_ENTRIES:
                raise InputError(f"holds more than {MAX_ENTRIES} files and directories",
                                 file=str(root), fix="package only the model's own files")
        stack.extend((s, depth + 1) for s in reversed(subdirs))
    entries.sort(key=lambda e: e.path.split("/"))  # depth-first order, as a recursive walk gives
    return entries, ignored


def read_input(path: str | os.PathLike[str], cache: DigestCache | None = None) -> InputTree:
    """The input as a value. With `cache`, unchanged files are not read again (digestcache.py)."""
    root_arg = Path(path)
    if not root_arg.exists():
        raise InputError("does not exist", file=str(root_arg),
                         fix="give the path of the directory holding the model files")
    if not root_arg.is_dir():
        raise InputError("is not a directory", file=str(root_arg),
                         fix="give the directory holding the model files, not a file in it")
    root = root_arg.resolve()
    entries, ignored = _walk(root, cache)
    texts: list[tuple[str, str]] = []
    files = {e.path: e for e in entries}
    roots = read_roots(entries)
    for prefix in roots:
        for base in TEXT_FILES:
            name = prefix + base
            e = files.get(name)
            if e is None:
                continue
            if e.kind is not EntryKind.FILE:
                raise InputError("is a directory; the packager reads it as a file", file=name,
                                 fix=f"replace the directory {name} with the file, or rename it")
            if e.size > TEXT_LIMIT:
                raise InputError(f"is {e.size} bytes; at most {TEXT_LIMIT} are expected",
                                 file=name, fix=f"check that {name} is the right file")
            raw = resolve_inside(root, name).read_bytes()
            try:
                texts.append((name, raw.decode("utf-8")))
            except UnicodeDecodeError as exc:
                raise InputError(f"is not UTF-8 text (byte {exc.start})", file=name,
                                 fix=f"save {name} as UTF-8") from None
    blobs: list[tuple[str, bytes]] = []
    errors: list[tuple[str, str, str]] = []
    for prefix in roots:
        b, err = _read_blobs(root, entries, prefix)
        blobs.extend(b)
        errors.extend(err)
    return InputTree(str(root_arg), tuple(entries), tuple(texts), tuple(ignored), tuple(blobs),
                     tuple(errors))


def _read_blobs(root: Path, entries: list[Entry], prefix: str = ""
                ) -> tuple[tuple[tuple[str, bytes], ...], tuple[tuple[str, str, str], ...]]:
    """The model bytes the generators parse: ONNX graph skeletons (memory-mapped, weights
    skipped), model.xml and saved_model.pb within their limits, and the code and data.pkl
    members of a TorchScript zip. Never the weights beside them."""
    n = len(prefix)
    files = {e.path[n:]: e for e in entries
             if e.kind is EntryKind.FILE and e.path.startswith(prefix)}
    blobs: list[tuple[str, bytes]] = []
    errors: list[tuple[str, str, str]] = []
    for name in ONNX_GRAPHS:
        if name in files:
            with resolve_inside(root, prefix + name).open("rb") as fh:
                if files[name].size == 0:
                    blobs.append((prefix + name, b""))
                    continue
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    try:
                        blobs.append((prefix + name, onnx_skeleton(mm, name)))
                    except InputError as err:  # reported where the checks read the model
                        errors.append((prefix + name, err.message, err.fix or ""))
    for name, limit in MODEL_BLOBS.items():
        e = files.get(name)
        if e is not None and e.size <= limit:
            blobs.append((prefix + name, resolve_inside(root, prefix + name).read_bytes()))
    if TORCHSCRIPT_FILE in files:
        try:
            with zipfile.ZipFile(resolve_inside(root, prefix + TORCHSCRIPT_FILE)) as zf:
                total = 0
                for info in zf.infolist():
                    wanted = info.filename.endswith("/data.pkl") or (
                        "/code/" in info.filename and info.filename.endswith(".py"))
                    if not wanted or info.file_size > TORCHSCRIPT_MEMBERS_LIMIT - total:
                        continue
                    total += info.file_size
                    blobs.append((f"{prefix}{TORCHSCRIPT_FILE}:{info.filename}", zf.read(info)))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError,
                EOFError, RuntimeError):
            pass  # not a zip TorchScript archive: the generators note it and do not guess
    return tuple(blobs), tuple(errors)
