"""Child processes with a deadline, in their own process group, that die with the packager.

Each child starts a new session, so the packager can signal the whole group (a training
script's own workers included) when it is interrupted or the deadline passes; on Linux the
direct child also gets SIGKILL if the packager itself is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

KILL_GRACE = 5.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def kill_group(proc: subprocess.Popen[Any], grace: float = KILL_GRACE) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after `grace` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no member of its group outlives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


@contextlib.contextmanager
def child(cmd: Sequence[str], **kwargs: Any) -> Iterator[subprocess.Popen[Any]]:
    """Popen in a new session; on leaving the block (normally or not) the group is killed."""
    proc = subprocess.Popen(list(cmd), start_new_session=True, preexec_fn=_die_with_parent,
                            **kwargs)
    try:
        yield proc
    finally:
        kill_group(proc)
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class Timeout(Exception):
    def __init__(self, seconds: float, output: str) -> None:
        super().__init__(f"timed out after {seconds:.0f}s")
        self.seconds = seconds
        self.output = output


def run(cmd: Sequence[str], *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run with text output, a deadline for the whole group, and no stray children.
    Raises Timeout (with what it printed) when the deadline passes."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    with child(cmd, text=True, errors="replace", **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            kill_group(proc)
            partial = exc.stdout or ""
            raise Timeout(timeout, partial if isinstance(partial, str) else "") from None
        return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)
