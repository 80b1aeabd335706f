"""The one error hierarchy. The CLI maps each class to an exit code and prints ``str(err)``."""

from __future__ import annotations

import errno as _errno
import os

VALUE_LIMIT = 80


def bounded(value: object, limit: int = VALUE_LIMIT, *, quote: bool = True) -> str:
    """A user value as messages show it: repr-quoted (control characters escaped), and cut to
    `limit` characters so a 300 kB name or a 5 000-digit number cannot flood the terminal."""
    text = repr(value) if quote else str(value).replace("\n", "\\n").replace("\r", "\\r")
    if len(text) > limit:
        text = f"{text[: limit - 20]}... ({len(text)} characters)"
    return text


class PackagerError(Exception):
    """Base of every error the tool reports to a user (never a traceback)."""

    exit_code = 1
    log_label = "last lines of the log"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        fix: str | None = None,
        log_tail: tuple[str, ...] = (),
    ) -> None:
        self.message = message
        self.file = file
        self.fix = fix
        self.log_tail = log_tail
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.file}: {self.message}" if self.file else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        if self.log_tail:
            text += f"\n  {self.log_label}:\n" + "\n".join(f"    {ln}" for ln in self.log_tail)
        return text


class InputError(PackagerError):
    """The model directory, manifest, config or an option is wrong: the user must fix it."""

    exit_code = 2


class BuildError(PackagerError):
    """Docker could not build the image (daemon down, base image missing, failing step)."""

    exit_code = 3
    log_label = "last lines of the build log"


class VerifyError(PackagerError):
    """The built image did not serve the model as expected."""

    exit_code = 4


class PushError(PackagerError):
    """The image could not be pushed to its registry."""

    exit_code = 5


class TrainError(PackagerError):
    """The training command failed or produced no model."""

    exit_code = 6
    log_label = "last lines of its output"


class EnvironmentFault(PackagerError):
    """The machine, not the input, failed: disk full, read-only filesystem, permission, ..."""

    exit_code = 3

    @classmethod
    def from_oserror(cls, exc: OSError, doing: str = "") -> EnvironmentFault:
        path = exc.filename if exc.filename is not None else ""
        words = os.strerror(exc.errno) if exc.errno else str(exc)
        code = _errno.errorcode.get(exc.errno or 0, "")
        what = f"{doing}: " if doing else ""
        fixes = {
            _errno.ENOSPC: "free space on that filesystem, or choose another --output",
            _errno.EDQUOT: "free space within your quota, or choose another --output",
            _errno.EROFS: "choose an --output on a writable filesystem",
            _errno.EACCES: "check the permissions of that path, or choose another --output",
            _errno.EPERM: "check the permissions of that path, or choose another --output",
        }
        return cls(f"{what}{words} ({code})" if code else f"{what}{words}",
                   file=os.fsdecode(path) if path else None,
                   fix=fixes.get(exc.errno or 0, "check the path and the machine, then retry"))


class Interrupted(PackagerError):
    """SIGINT or SIGTERM: the run stopped, its partial outputs were removed."""

    exit_code = 130
