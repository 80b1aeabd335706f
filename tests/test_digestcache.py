"""The input-digest cache: a no-change run reads no model bytes, and no change is ever missed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from models import PYTHON_CONFIG, PYTHON_MODEL, write_tree

from packager.analysis import Options
from packager.executor import reader
from packager.executor.phases import Workspace
from packager.executor.state import digestcache
from packager.executor.state.digestcache import DigestCache


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files whose bytes were read for hashing; and no racy window (the files in
    these tests are seconds old, real ones are older)."""
    seen: list[str] = []
    real = reader.sha256_file

    def counting(path: Path) -> str:
        seen.append(path.name)
        return real(path)

    monkeypatch.setattr(reader, "sha256_file", counting)
    monkeypatch.setattr(digestcache, "RACY_NS", 0)
    return seen


def _model(tmp: Path) -> Path:
    root = write_tree(tmp / "model", {"model.py": PYTHON_MODEL,
                                      "config.pbtxt": PYTHON_CONFIG.format(name="model")})
    (root / "weights.bin").write_bytes(os.urandom(3 << 20))
    return root


def _run(model: Path, out: Path, force: bool = False) -> list[str]:
    return Workspace(model, out, Options(), force=force).run("dockerfile").ran


def test_no_change_reads_no_bytes(tmp_path: Path, hashed: list[str]) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    assert _run(model, out) == ["detect", "repository", "dockerfile"]
    assert sorted(hashed) == ["config.pbtxt", "model.py", "weights.bin"]
    hashed.clear()
    # The first run hardlinked the files into out/ (their ctime moved); still no re-read.
    assert _run(model, out) == []
    assert hashed == []


def test_a_rewrite_with_the_same_size_and_mtime_is_caught(tmp_path: Path,
                                                          hashed: list[str]) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    _run(model, out)
    weights = model / "weights.bin"
    st = weights.stat()
    with weights.open("r+b") as fh:
        fh.write(b"\0" * 16)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    hashed.clear()
    assert _run(model, out) == ["detect", "repository", "dockerfile"]
    assert hashed == ["weights.bin"]
    linked = out / "model_repository/model/1/weights.bin"
    assert linked.read_bytes()[:16] == b"\0" * 16


def test_a_replaced_file_is_caught(tmp_path: Path, hashed: list[str]) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    _run(model, out)
    weights = model / "weights.bin"
    st = weights.stat()
    replacement = tmp_path / "new.bin"
    replacement.write_bytes(os.urandom(3 << 20))
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, weights)  # same name, size and mtime; another inode
    hashed.clear()
    assert "repository" in _run(model, out)
    assert hashed == ["weights.bin"]


@pytest.mark.parametrize("damage", [
    "", "{", '{"version": 1, "entries": {"x": [[1, 2], "ab"]}}', "[]",
    '{"version": 99, "entries": {}}', '{"version": 1, "entries": "many"}',
])
def test_a_damaged_cache_is_not_trusted_at_all(damage: str, tmp_path: Path,
                                               hashed: list[str]) -> None:
    """An interrupted or foreign cache file: every file is hashed again, results are right."""
    model, out = _model(tmp_path), tmp_path / "out"
    _run(model, out)
    (out / ".triton-packager/digests.json").write_text(damage)
    hashed.clear()
    assert _run(model, out) == []  # same digests as recorded: nothing to redo
    assert sorted(hashed) == ["config.pbtxt", "model.py", "weights.bin"]


def test_a_poisoned_cache_entry_does_not_match(tmp_path: Path, hashed: list[str]) -> None:
    """A cache that claims a wrong digest for a file whose stamp changed is never used."""
    model, out = _model(tmp_path), tmp_path / "out"
    _run(model, out)
    cache = DigestCache.load(out / ".triton-packager/digests.json")
    weights = str((model / "weights.bin").resolve())
    stamp, _ = cache.entries[weights]
    cache.used = {**cache.entries, weights: (stamp, "0" * 64)}
    (out / ".triton-packager/digests.json").write_text(cache.document())
    with (model / "weights.bin").open("ab") as fh:
        fh.write(b"more")
    hashed.clear()
    outcome = Workspace(model, out, Options()).run("detect")
    assert hashed == ["weights.bin"]
    assert outcome.analysis is not None


def test_force_rehashes_everything(tmp_path: Path, hashed: list[str]) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    _run(model, out)
    hashed.clear()
    _run(model, out, force=True)
    assert sorted(hashed) == ["config.pbtxt", "model.py", "weights.bin"]


def test_young_files_are_not_cached(tmp_path: Path) -> None:
    """git's racy-clean rule: a file changed within RACY_NS of hashing may change again
    within the same timestamp tick, so its digest is not remembered."""
    f = tmp_path / "young"
    f.write_bytes(b"x")
    cache = DigestCache()
    cache.record(f, os.stat(f), "a" * 64)
    assert cache.used == {}
    old = tmp_path / "old"
    old.write_bytes(b"y")
    cache = DigestCache(started_ns=os.stat(old).st_ctime_ns + digestcache.RACY_NS + 1)
    cache.record(old, os.stat(old), "b" * 64)
    assert str(old) in cache.used
