"""The one error hierarchy. The CLI maps each class to an exit code and prints ``str(err)``."""

from __future__ import annotations

import errno as _errno
import os
import re

VALUE_LIMIT = 80


# user:password@ in URLs and registry references: never echoed.
# Scheme-less `user:pw@host` only at the start of a word, and never `name:tag@sha256:...`.
_USERINFO_RE = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,32}://)|(?<![^\s'\"(=]))"
    r"[^\s/@:'\"=]{1,256}:[^\s/@'\"]{0,256}@(?![A-Za-z][A-Za-z0-9]*:[0-9a-fA-F]{32})")
# Bounded repetitions keep both patterns linear on a megabyte without separators.
_TOKEN_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,32}://)[^\s/@'\"]{1,256}@")
# C0 and C1 controls but newline: escape sequences must not reach a terminal from a message.
_CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def redact(text: str) -> str:
    """Credentials in URLs (`https://user:pw@host`, `https://token@host`, `user:pw@host`)."""
    text = _TOKEN_RE.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _USERINFO_RE.sub(lambda m: f"{m.group('scheme') or ''}***@", text)


def printable(text: str) -> str:
    """`text` with every control character but newline shown as an escape (\\x1b, ...)."""
    return _CONTROL_RE.sub(lambda m: repr(m.group(0))[1:-1], text)


def bounded(value: object, limit: int = VALUE_LIMIT, *, quote: bool = True) -> str:
    """A user value as messages show it: credentials masked, repr-quoted or with control
    characters escaped, and cut to `limit` characters so a 300 kB name or a 5 000-digit
    number cannot flood the terminal."""
    total: int | None = None
    if isinstance(value, str):
        if len(value) > limit * 4:  # what is cut away is never shown: don't scan it
            total, value = len(value), value[: limit * 4]
        value = redact(value)
    text = repr(value) if quote else printable(str(value).replace("\n", "\\n"))
    if len(text) > limit or total is not None:
        text = f"{text[: limit - 20]}... ({total or len(text)} characters)"
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
        where = bounded(self.file, 300, quote=False) if self.file else ""
        text = f"{where}: {self.message}" if where else self.message
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
            _errno.EACCES: "check the permissions of that path (and of the directories above it)",
            _errno.EPERM: "check the permissions of that path (and of the directories above it)",
            _errno.ENAMETOOLONG: "use shorter file and directory names",
        }
        return cls(f"{what}{words} ({code})" if code else f"{what}{words}",
                   file=os.fsdecode(path) if path else None,
                   fix=fixes.get(exc.errno or 0, "check the path and the machine, then retry"))


class Interrupted(PackagerError):
    """SIGINT or SIGTERM: the run stopped, its partial outputs were removed."""

    exit_code = 130
