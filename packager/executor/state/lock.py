"""One run per output: an exclusive flock held for the whole run.

The lock file is never deleted (unlinking a flock'ed file lets a third run lock a new inode
while the second still holds the old one). The kernel drops the lock when the process dies,
so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from packager.errors import EnvironmentFault
from packager.executor.report import Reporter

DEFAULT_WAIT = 900.0


def lock_for(directory: Path) -> Path:
    """The one lock of an output directory, whichever command writes it (package, push, setup,
    train): a hidden file beside it, so it exists before the directory does and survives the
    directory being replaced."""
    real = directory.resolve()
    return real.parent / f".{real.name}.lock"


@contextlib.contextmanager
def exclusive(lock_path: Path, *, what: str, report: Reporter,
              wait: float = DEFAULT_WAIT) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                if time.monotonic() >= deadline:
                    raise EnvironmentFault(
                        f"{what} is in use by another triton-packager run (pid {holder}) and "
                        f"stayed busy for {wait:.0f}s",
                        file=str(lock_path.parent),
                        fix="wait for that run to finish, or use another output directory",
                    ) from None
                if not told:
                    report.step(f"waiting for another run (pid {holder}) to release {what}")
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
