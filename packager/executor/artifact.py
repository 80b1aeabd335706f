"""Training artifacts: packing a directory as .tar.gz/.zip, and unpacking one safely.

Unpacking refuses anything that could write outside the destination or fill the disk:
absolute paths, `..`, links of any kind, devices and FIFOs, and archives that expand past a
size limit (checked on the bytes actually written, not only on the sizes the archive claims).
"""

from __future__ import annotations

import functools
import os
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO

from packager.errors import InputError
from packager.executor.fs import staged_dir
from packager.executor.report import Reporter

DEFAULT_MAX_BYTES = 64 << 30
_CHUNK = 1 << 20


def pack(src: Path, dest: Path) -> Path:
    """Archive the contents of `src` (not `src` itself) as dest (.zip, .tar or .tar.gz)."""
    name = dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=dest.parent)
    os.close(fd)
    try:
        files = sorted(p for p in src.rglob("*"))
        if name.endswith(".zip"):
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in files:
                    zf.write(p, p.relative_to(src).as_posix())
        elif name.endswith((".tar.gz", ".tgz", ".tar")):
            mode = "w" if name.endswith(".tar") else "w:gz"
            with tarfile.open(tmp, mode) as tf:  # type: ignore[call-overload]
                for p in files:
                    tf.add(p, p.relative_to(src).as_posix(), recursive=False)
        else:
            raise InputError(f"archive name {name!r} has an unknown suffix",
                             fix="use .zip, .tar or .tar.gz")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _safe_name(name: str, label: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or ".." in path.parts or \
            "\\" in name or (path.parts and ":" in path.parts[0]):
        raise InputError(f"entry {name!r} would be written outside the output directory",
                         file=label, fix="rebuild the archive with relative paths only")
    return path


class _Budget:
    def __init__(self, limit: int, label: str) -> None:
        self.left, self.limit, self.label = limit, limit, label

    def copy(self, src: IO[bytes], dest: Path) -> None:
        with dest.open("wb") as out:
            while chunk := src.read(_CHUNK):
                self.left -= len(chunk)
                if self.left < 0:
                    raise InputError(f"expands past the limit of {self.limit} bytes",
                                     file=self.label,
                                     fix="raise --max-size if the artifact really is that large")
                out.write(chunk)


def _place(stage: Path, rel: PurePosixPath, *, is_dir: bool, executable: bool,
           open_src: Callable[[], IO[bytes]], budget: _Budget) -> None:
    """Write one checked entry under stage: a directory, or a file within the size budget."""
    target = stage / rel
    if is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open_src() as src:
        budget.copy(src, target)
    os.chmod(target, 0o755 if executable else 0o644)


def _unpack_zip(path: Path, stage: Path, budget: _Budget, label: str) -> None:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if sum(i.file_size for i in infos) > budget.limit:
            raise InputError(f"declares more than {budget.limit} bytes of content", file=label,
                             fix="raise --max-size if the artifact really is that large")
        for info in infos:
            rel = _safe_name(info.filename, label)
            mode = info.external_attr >> 16
            # Zip writers that set no file type leave S_IFMT empty: that is a regular file.
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise InputError(f"entry {info.filename!r} is a link or special file", file=label,
                                 fix="archive regular files only")
            _place(stage, rel, is_dir=info.is_dir(), executable=bool(mode & 0o111),
                   open_src=functools.partial(zf.open, info), budget=budget)


def _member(tf: tarfile.TarFile, m: tarfile.TarInfo) -> IO[bytes]:
    src = tf.extractfile(m)
    assert src is not None  # only regular files reach here
    return src


def _unpack_tar(path: Path, stage: Path, budget: _Budget, label: str) -> None:
    with tarfile.open(path) as tf:
        for m in tf:
            rel = _safe_name(m.name, label)
            if not (m.isfile() or m.isdir()):
                raise InputError(f"entry {m.name!r} is a link or special file", file=label,
                                 fix="archive regular files only")
            _place(stage, rel, is_dir=m.isdir(), executable=bool(m.mode & 0o111),
                   open_src=functools.partial(_member, tf, m), budget=budget)


def _download(url: str, dest: Path, limit: int) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, dest.open("wb") as out:
            budget = _Budget(limit, url)
            while chunk := resp.read(_CHUNK):
                budget.left -= len(chunk)
                if budget.left < 0:
                    raise InputError(f"is larger than {limit} bytes", file=url,
                                     fix="raise --max-size if the artifact really is that large")
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"cannot be downloaded: {reason}", file=url,
                         fix="check the URL and that the server is reachable") from None


def unpack(artifact: str, output: Path, report: Reporter, max_bytes: int = DEFAULT_MAX_BYTES,
           ) -> Path:
    """Unpack a local or http(s) archive into `output`, all or nothing."""
    with tempfile.TemporaryDirectory(prefix="triton-setup-") as tmp:
        if artifact.startswith(("http://", "https://")):
            report.step(f"setup: downloading {artifact}")
            local = Path(tmp) / "artifact"
            _download(artifact, local, max_bytes)
        else:
            local = Path(artifact)
            if not local.is_file():
                raise InputError("does not exist or is not a file", file=artifact,
                                 fix="give a .zip or .tar[.gz] file or an http(s) URL")
        with staged_dir(output) as stage:
            budget = _Budget(max_bytes, artifact)
            if zipfile.is_zipfile(local):
                _unpack_zip(local, stage, budget, artifact)
            elif tarfile.is_tarfile(local):
                _unpack_tar(local, stage, budget, artifact)
            else:
                raise InputError("is neither a zip nor a tar archive", file=artifact,
                                 fix="give a .zip, .tar or .tar.gz file")
            for d in [stage, *(p for p in stage.rglob("*") if p.is_dir())]:
                os.chmod(d, 0o755)
    report.step(f"setup: unpacked into {output}")
    return output


