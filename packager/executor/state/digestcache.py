"""Input digests cached by file identity, the way git's index caches them.

A no-change run should not read gigabytes of weights again. A file's SHA-256 is reused when its
identity and metadata are unchanged: device, inode, size, modification time and change time
(nanoseconds). What this can and cannot see:

- Caught: any write through the filesystem (it moves mtime and ctime), a rewrite that keeps
  the size, a file replaced by another (new inode), a restored mtime (`touch -d`, `os.utime`
  change ctime, which no user can set), a move to another filesystem (device).
- Not caught: writes that bypass the filesystem (a raw block device, a disk image edited
  offline), and a clock set back to reproduce an earlier ctime. `--force` rehashes everything.
- Racy entries: a file changed within the filesystem's timestamp granularity after it was
  stat-ed would keep its stamp. So a digest is only cached when the file's mtime and ctime are
  at least RACY_NS older than the moment hashing started; younger files are hashed again
  next time (git's "racy clean" rule).

The cache is written atomically (temporary file + rename) under the output's lock, so an
interrupted run leaves either the previous cache or the new one; an unreadable or
inconsistent cache is ignored, never trusted in part.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

VERSION = 1
RACY_NS = 2_000_000_000  # 2 s: coarser than any Linux filesystem's timestamp granularity


@dataclass(frozen=True)
class Stamp:
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stamp:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def as_list(self) -> list[int]:
        return [self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns]


@dataclass
class DigestCache:
    entries: dict[str, tuple[Stamp, str]] = field(default_factory=dict)
    started_ns: int = field(default_factory=time.time_ns)
    used: dict[str, tuple[Stamp, str]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    @classmethod
    def load(cls, path: Path) -> DigestCache:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("version") != VERSION:
                return cls()
            entries = {}
            for real, (stamp, digest) in doc["entries"].items():
                if not (isinstance(real, str) and isinstance(digest, str) and len(digest) == 64
                        and isinstance(stamp, list) and len(stamp) == 5
                        and all(isinstance(v, int) for v in stamp)):
                    return cls()  # not ours, or damaged: trust none of it
                entries[real] = (Stamp(*stamp), digest)
            return cls(entries)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return cls()

    def lookup(self, real: Path, st: os.stat_result) -> str | None:
        hit = self.entries.get(str(real))
        stamp = Stamp.of(st)
        if hit is not None and hit[0] == stamp:
            self.hits += 1
            self.used[str(real)] = hit
            return hit[1]
        self.misses += 1
        return None

    def record(self, real: Path, st: os.stat_result, digest: str) -> None:
        if max(st.st_mtime_ns, st.st_ctime_ns) < self.started_ns - RACY_NS:
            self.used[str(real)] = (Stamp.of(st), digest)

    def after_own_links(self) -> None:
        """Hardlinking an input into model_repository/ or context/ (and unlinking the previous
        ones) changes its ctime: only the link count moved, not the content. Keep such entries
        when nothing else about the file changed, or the run after every rebuild would read
        all the weights again. The one change this cannot tell apart is a write made during
        this very run whose writer also restored the mtime."""
        for real, (stamp, digest) in list(self.used.items()):
            try:
                st = os.stat(real)
            except OSError:
                del self.used[real]
                continue
            now = Stamp.of(st)
            if now != stamp and (now.dev, now.ino, now.size, now.mtime_ns) == (
                    stamp.dev, stamp.ino, stamp.size, stamp.mtime_ns):
                self.used[real] = (now, digest)

    def document(self) -> str:
        """Only the files of this run: the cache never grows past one input tree."""
        entries = {k: [v[0].as_list(), v[1]] for k, v in sorted(self.used.items())}
        return json.dumps({"version": VERSION, "entries": entries}) + "\n"
