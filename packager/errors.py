"""The one error hierarchy. The CLI maps each class to an exit code and prints ``str(err)``."""

from __future__ import annotations


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
