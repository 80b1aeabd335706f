"""Materialising plans on disk: staged beside the destination, then renamed into place."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from packager.backends import EntryKind
from packager.dockerfile import WEIGHTS_CONTEXT
from packager.errors import EnvironmentFault
from packager.executor.reader import open_inside
from packager.executor.state.ownership import check_replaceable, claim, clean_leftovers
from packager.plan import Layer, PlanEntry, RepositoryPlan

# World-readable so the image runs under any uid (OpenShift, `docker run --user`).
FILE_MODE, EXEC_MODE, DIR_MODE = 0o644, 0o755, 0o755


@contextlib.contextmanager
def staged_dir(final: Path, kind: str | None = None, *, force: bool = False) -> Iterator[Path]:
    """Yield an empty staging dir next to `final`; on success it replaces `final` atomically.

    The staging and trash names carry this process's pid, so the next run can tell the
    leftovers of an interrupted run (dead pid) from a run in progress. With `kind`, the new
    directory is marked as the packager's (see ownership.py), and an existing `final` is only
    replaced when it carries that mark or is empty: callers check this before their first
    write; this is the last line of defence.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(final)
    if kind is not None:
        check_replaceable(final, option=kind, force=force)
    stage: Path | None = None
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-{os.getpid()}-",
                                      dir=final.parent))
        if kind is not None:
            claim(stage, kind)
        yield stage
        _swap_into_place(stage, final)
    except BaseException as exc:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # A copy's write names no file: name the directory that filled, whose half-written
            # staging copy is gone.
            raise EnvironmentFault.from_oserror(
                OSError(exc.errno, exc.strerror, str(final.parent)),
                doing=f"writing {final.name}") from exc
        raise


def _swap_into_place(stage: Path, final: Path) -> None:
    """Rename stage onto final. SIGINT/SIGTERM are held back between the two renames, so a
    signal never leaves `final` missing; after a SIGKILL there, the next run's
    clean_leftovers puts the old `final` back."""
    if not (final.exists() or final.is_symlink()):
        os.rename(stage, final)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{os.getpid()}-", dir=final.parent))
    blocked = {signal.SIGINT, signal.SIGTERM}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        os.rename(final, trash / "old")
        try:
            os.rename(stage, final)
        except BaseException:
            os.rename(trash / "old", final)
            raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    shutil.rmtree(trash, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def place_file(src_fd: int, dest: Path, executable: bool) -> str:
    """Hardlink when the filesystem allows and the source is already world-readable, else copy.

    The source is an open descriptor (reader.open_inside), linked through /proc/self/fd, so
    what lands in the output is exactly the inode that was checked. A hardlink shares the
    source's mode, so a private (0600) file is copied and chmod-ed rather than hardlinked, to
    keep the input's own permissions untouched.
    """
    want = EXEC_MODE if executable else FILE_MODE
    if (os.fstat(src_fd).st_mode & 0o444) == 0o444:
        try:
            # A dir_fd makes CPython call linkat(AT_SYMLINK_FOLLOW); plain link() would try to
            # link the /proc magic link itself.
            proc_fd = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.link(str(src_fd), dest, src_dir_fd=proc_fd, follow_symlinks=True)
            finally:
                os.close(proc_fd)
            return "link"
        except OSError:
            pass
    with os.fdopen(os.dup(src_fd), "rb") as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(dest, want)
    return "copy"


def place_input(input_root: Path, rel: str, dest: Path, executable: bool,
                expect_size: int | None = None) -> str:
    """place_file for the input file `rel`, opened without following links out of the input."""
    fd = open_inside(input_root, rel, expect_size=expect_size)
    try:
        return place_file(fd, dest, executable)
    finally:
        os.close(fd)


def layer_path(e: PlanEntry) -> str:
    """Where an entry goes in the build context: weights in the weights image's own context
    (context/weights/models/...), everything else under its layer's folder."""
    if e.layer is Layer.WEIGHTS:
        return f"{WEIGHTS_CONTEXT}/models/{e.dest}"
    return f"{e.layer.value}/{e.dest}"


def materialize(plan: RepositoryPlan, input_roots: list[Path], dest_root: Path,
                by_layer: bool = False) -> dict[str, int]:
    """Write the plan under dest_root: as the Triton tree, or split by image layer. Each
    entry's source is relative to the input directory its model came from."""
    counts = {"link": 0, "copy": 0, "generated": 0}
    for index, e in plan.sources():
        input_root = input_roots[index]
        target = dest_root / (layer_path(e) if by_layer else e.dest)
        if e.kind is EntryKind.DIR:
            target.mkdir(parents=True, exist_ok=True)
            os.chmod(target, DIR_MODE)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if e.content is not None:
            target.write_text(e.content, encoding="utf-8")
            os.chmod(target, FILE_MODE)
            counts["generated"] += 1
        else:
            assert e.source is not None
            counts[place_input(input_root, e.source, target, bool(e.mode & 0o111),
                               expect_size=e.size)] += 1
    for d in sorted({p for p in dest_root.rglob("*") if p.is_dir()}):
        os.chmod(d, DIR_MODE)
    return counts
