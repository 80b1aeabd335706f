"""Picking the lines of a Triton server log that explain a failure."""

from __future__ import annotations

import re

_ERROR = re.compile(r"^E\d{4} |UNAVAILABLE|error:|Traceback|Error\b")
_BORDER = re.compile(r"^\+[-+]+\+$")


def summarize(log: str, tail: int = 8, limit: int = 30) -> str:
    """Error lines (glog `E....`, UNAVAILABLE model rows, tracebacks) plus the last lines."""
    lines = [ln.rstrip() for ln in log.splitlines() if ln.strip() and not _BORDER.match(ln.strip())]
    picked = [ln for ln in lines if _ERROR.search(ln) and "NVML" not in ln]
    for ln in lines[-tail:]:
        if ln not in picked:
            picked.append(ln)
    return "\n".join(f"    {ln[:400]}" for ln in picked[-limit:])
