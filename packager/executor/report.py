"""Progress output: rich on a terminal, plain lines otherwise, JSON lines for machines."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from packager.errors import printable, redact


@dataclass
class Reporter:
    mode: str = "plain"  # "tty" | "plain" | "json" | "quiet"
    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def create(cls, *, quiet: bool = False, json_lines: bool = False) -> Reporter:
        if json_lines:
            return cls("json", sys.stdout)
        if quiet:
            return cls("quiet")
        return cls("tty" if sys.stderr.isatty() else "plain")

    def _emit(self, kind: str, text: str, **extra: Any) -> None:
        if self.mode == "quiet" and kind not in ("error",):
            return
        if kind != "log":  # our own messages: no terminal escapes from user values, no secrets
            text = printable(redact(text))
        if self.mode == "json":
            doc = {"event": kind, "message": text,
                   "elapsed": round(time.monotonic() - self.started, 3), **extra}
            print(json.dumps(doc), file=self.stream, flush=True)
            return
        prefix = {"warning": "warning: ", "error": "error: ", "log": "  | "}.get(kind, "")
        if self.mode == "tty":
            colour = {"warning": "\x1b[33m", "error": "\x1b[31m", "step": "\x1b[1m",
                      "log": "\x1b[2m"}.get(kind, "")
            print(f"{colour}{prefix}{text}\x1b[0m", file=self.stream, flush=True)
        else:
            print(f"{prefix}{text}", file=self.stream, flush=True)

    def step(self, text: str, **extra: Any) -> None:
        self._emit("step", text, **extra)

    def info(self, text: str, **extra: Any) -> None:
        self._emit("info", text, **extra)

    def warn(self, text: str) -> None:
        self._emit("warning", text)

    def error(self, text: str, **extra: Any) -> None:
        self._emit("error", text, **extra)

    def log(self, line: str) -> None:
        self._emit("log", line)
