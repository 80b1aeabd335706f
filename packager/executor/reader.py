"""Reading the model directory into an InputTree, refusing anything unsafe on the way."""

from __future__ import annotations

import errno
import hashlib
import io
import lzma
import mmap
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from packager.backends import EntryKind
from packager.errors import InputError, bounded
from packager.executor.state.digestcache import DigestCache
from packager.inputs import (
    IGNORED_NAMES,
    MODEL_BLOBS,
    ONNX_GRAPHS,
    OWNED_MARKER,
    SAVEDMODEL_GRAPHS,
    TEXT_FILES,
    TORCHSCRIPT_CODE_LIMIT,
    TORCHSCRIPT_FILE,
    TORCHSCRIPT_MAX_ENTRIES,
    TORCHSCRIPT_MAX_RATIO,
    TORCHSCRIPT_PICKLE_PREFIX,
    Entry,
    InputTree,
)
from packager.layout import read_roots
from packager.modelread import (
    onnx_skeleton,
    savedmodel_skeleton,
    torchscript_class,
    torchscript_code_member,
)

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
    # Each root's files, gathered in one pass: filtering all entries per root made a repository
    # of 10 000 models quadratic (issue 21). A root is "" or "name/" or "name/version/".
    by_root: dict[str, dict[str, Entry]] = {r: {} for r in roots}
    for e in entries:
        if e.kind is not EntryKind.FILE:
            continue
        parts = e.path.split("/")
        for depth in range(min(len(parts) - 1, 2) + 1):
            prefix = "".join(p + "/" for p in parts[:depth])
            if prefix in by_root:
                by_root[prefix][e.path[len(prefix):]] = e
    for prefix in roots:
        b, err = _read_blobs(root, by_root[prefix], prefix)
        blobs.extend(b)
        errors.extend(err)
    return InputTree(str(root_arg), tuple(entries), tuple(texts), tuple(ignored), tuple(blobs),
                     tuple(errors))


def _read_blobs(root: Path, files: dict[str, Entry], prefix: str = ""
                ) -> tuple[tuple[tuple[str, bytes], ...], tuple[tuple[str, str, str], ...]]:
    """The model bytes the generators parse: ONNX graph and SavedModel skeletons (memory-mapped,
    weights and GraphDefs skipped), model.xml within its limit, and of a TorchScript zip the
    start of data.pkl and the one code file forward is in. Never the weights beside them.
    A model file found bad here is recorded, and refused where the checks read the model.
    `files` are the root's files, by their path under `prefix`."""
    blobs: list[tuple[str, bytes]] = []
    errors: list[tuple[str, str, str]] = []
    cutters: list[tuple[str, Callable[[mmap.mmap, str], bytes]]] = [
        *((name, onnx_skeleton) for name in ONNX_GRAPHS),
        *((name, savedmodel_skeleton) for name in SAVEDMODEL_GRAPHS)]
    for name, cut in cutters:
        if name in files:
            with resolve_inside(root, prefix + name).open("rb") as fh:
                if files[name].size == 0:
                    blobs.append((prefix + name, b""))
                    continue
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    try:
                        blobs.append((prefix + name, cut(mm, name)))
                    except InputError as err:  # reported where the checks read the model
                        errors.append((prefix + name, err.message, err.fix or ""))
    for name, limit in MODEL_BLOBS.items():
        e = files.get(name)
        if e is not None and e.size <= limit:
            blobs.append((prefix + name, resolve_inside(root, prefix + name).read_bytes()))
    if TORCHSCRIPT_FILE in files:
        try:
            blobs.extend((f"{prefix}{TORCHSCRIPT_FILE}:{m}", data) for m, data in
                         _torchscript_members(resolve_inside(root, prefix + TORCHSCRIPT_FILE)))
        except InputError as err:
            errors.append((prefix + TORCHSCRIPT_FILE, err.message, err.fix or ""))
    return tuple(blobs), tuple(errors)


_ZIP_FIX = ("save the model again with torch.jit.save (the archive is damaged or was not "
            "written by torch)")


def _zip_counts(fh: io.BufferedReader, size: int) -> tuple[int, int] | None:
    """(entries, central-directory bytes) from the end records, read before zipfile builds an
    object per entry; None when there is no end record (not a zip)."""
    tail_len = min(size, 22 + 0xFFFF)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    entries, cd_size = struct.unpack_from("<xxxxxxxxxxHI", tail, at)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:  # zip64: the counts are in its own record
        loc = tail.rfind(b"PK\x06\x07", 0, at)
        if loc >= 0 and loc + 20 <= len(tail):
            (offset,) = struct.unpack_from("<Q", tail, loc + 8)
            if offset + 56 <= size:
                fh.seek(offset)
                rec = fh.read(56)
                if rec[:4] == b"PK\x06\x06":
                    entries, cd_size = struct.unpack_from("<QQ", rec, 32)
    return entries, cd_size


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """At most `limit` bytes of a member, read in chunks; an entry that inflates beyond its
    declared size is refused as it inflates, never buffered first."""
    want = min(info.file_size, limit)
    out = bytearray()
    with zf.open(info) as fh:
        while len(out) < want:
            chunk = fh.read(min(_CHUNK, want - len(out)))
            if not chunk:
                break
            out += chunk
    if len(out) < want:
        raise InputError(f"member {bounded(info.filename)} holds {len(out)} bytes but declares "
                         f"{info.file_size}", file=TORCHSCRIPT_FILE, fix=_ZIP_FIX)
    return bytes(out)


def _torchscript_members(path: Path) -> list[tuple[str, bytes]]:
    """The start of ``*/data.pkl`` and the code file of its class, within the budgets of
    inputs.py. [] for a file that is not a zip (a note, not a refusal: torch.save pickles exist);
    InputError for a zip that is damaged, lies about its sizes or is a bomb."""
    size = path.stat().st_size
    with path.open("rb") as raw:
        counts = _zip_counts(raw, size)
        if counts is None:
            raw.seek(0)
            if raw.read(4) == b"PK\x03\x04":  # a zip's start without its end: cut short
                raise InputError("is a damaged zip (no end of central directory: the file is "
                                 "cut short)", file=TORCHSCRIPT_FILE, fix=_ZIP_FIX)
            return []
        entries, cd_size = counts
        if entries > TORCHSCRIPT_MAX_ENTRIES:
            raise InputError(f"is a zip of {entries} entries; at most {TORCHSCRIPT_MAX_ENTRIES} "
                             "are read", file=TORCHSCRIPT_FILE, fix=_ZIP_FIX)
        if cd_size > size:
            raise InputError(f"declares a central directory of {cd_size} bytes in a file of "
                             f"{size}", file=TORCHSCRIPT_FILE, fix=_ZIP_FIX)
        member = ""
        try:
            with zipfile.ZipFile(raw) as zf:
                infos = zf.infolist()
                if len(infos) > TORCHSCRIPT_MAX_ENTRIES:
                    raise InputError(f"is a zip of more than {TORCHSCRIPT_MAX_ENTRIES} entries",
                                     file=TORCHSCRIPT_FILE, fix=_ZIP_FIX)
                for info in infos:
                    member = info.filename
                    if not 0 <= info.header_offset < size or info.compress_size > size:
                        raise InputError(
                            f"member {bounded(member)} lies about its place (offset "
                            f"{info.header_offset}, {info.compress_size} bytes, in a file of "
                            f"{size})", file=TORCHSCRIPT_FILE, fix=_ZIP_FIX)
                    if info.file_size > TORCHSCRIPT_MAX_RATIO * max(info.compress_size, 1) \
                            and info.file_size > _CHUNK:
                        raise InputError(
                            f"member {bounded(member)} expands {info.compress_size} bytes to "
                            f"{info.file_size}, more than {TORCHSCRIPT_MAX_RATIO}x (a zip bomb)",
                            file=TORCHSCRIPT_FILE, fix=_ZIP_FIX)
                pkl = next((i for i in sorted(infos, key=lambda i: i.filename)
                            if i.filename.endswith("/data.pkl")), None)
                if pkl is None:
                    return []
                member = pkl.filename
                out = [(member, _read_member(zf, pkl, TORCHSCRIPT_PICKLE_PREFIX))]
                top = torchscript_class(out[0][1])
                if top is None:
                    return out
                suffix = torchscript_code_member(top[0])
                code = next((i for i in sorted(infos, key=lambda i: i.filename)
                             if i.filename.endswith(suffix)), None)
                if code is not None and code.file_size <= TORCHSCRIPT_CODE_LIMIT:
                    member = code.filename
                    out.append((member, _read_member(zf, code, TORCHSCRIPT_CODE_LIMIT)))
                return out
        except OSError as exc:
            if exc.errno is not None:  # the disk, not the archive: an environment fault
                raise
            # bz2 reports a corrupt stream as an OSError without errno
            raise _zip_error(member, exc) from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError,
                EOFError, RuntimeError, zlib.error, lzma.LZMAError, struct.error,
                OverflowError) as exc:
            raise _zip_error(member, exc) from None


def _zip_error(member: str, exc: BaseException) -> InputError:
    where = f"member {bounded(member)}: " if member else ""
    return InputError(f"is a damaged zip ({where}{bounded(type(exc).__name__, quote=False)}: "
                      f"{bounded(str(exc), 120, quote=False)})", file=TORCHSCRIPT_FILE,
                      fix=_ZIP_FIX)
