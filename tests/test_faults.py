"""Faults for real, no Docker needed: a filesystem that fills up, a read-only mount, SIGTERM and
SIGKILL in the middle of staging, and several runs on one output at once.

The mounts need root (CI and the developers' machines run as root); elsewhere those tests are
skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from models import PYTHON_CONFIG, PYTHON_MODEL, write_tree

from packager.cli import main
from packager.executor.report import Reporter
from packager.executor.state.lock import exclusive, lock_for

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def _model(root: Path, name: str = "model", weights_mib: int = 0) -> Path:
    files: dict[str, str | bytes | None] = {
        "model.py": PYTHON_MODEL, "config.pbtxt": PYTHON_CONFIG.format(name=name),
        "odahuflow.model.yaml": f"name: {name}\nversion: 1\n"}
    root = write_tree(root, files)
    if weights_mib:
        with (root / "weights.bin").open("wb") as fh:
            chunk = os.urandom(1 << 20)
            for _ in range(weights_mib):
                fh.write(chunk)
    return root


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".staging-" in p.name or ".old-" in p.name)


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "packager", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


def test_full_disk_is_an_environment_fault(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          ) -> None:
    model = _model(tmp_path / "model", weights_mib=8)
    with tmpfs(tmp_path / "small", "4m") as mount:
        out = mount / "out"
        code = main(["repository", str(model), "--output", str(out)])
        err = capsys.readouterr().err
        assert code == 3, err
        assert "No space left on device" in err and "ENOSPC" in err
        assert "Traceback" not in err and "fix:" in err
        assert _leftovers(out) == []
        assert not (out / "model_repository").exists()


def test_read_only_output_is_an_environment_fault(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "model")
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as mount:
        code = main(["package", str(model), "--output", str(mount / "out")])
        err = capsys.readouterr().err
        assert code == 3, err
        assert "Read-only file system" in err and "EROFS" in err and str(mount) in err
        assert "Traceback" not in err
        assert list(mount.iterdir()) == []


def test_sigterm_mid_staging_leaves_nothing(tmp_path: Path) -> None:
    model = _model(tmp_path / "model", weights_mib=300)
    with tmpfs(tmp_path / "big", "1g") as mount:  # another filesystem: the weights are copied
        out = mount / "out"
        proc = _cli("repository", str(model), "--output", str(out))
        assert _wait_for(lambda: out.exists() and _leftovers(out)), "staging never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "interrupted by SIGTERM" in err and "Traceback" not in err
        assert _leftovers(out) == []
        assert not (out / "model_repository").exists()
        # ... and the next run completes.
        assert main(["repository", str(model), "--output", str(out)]) == 0
        assert (out / "model_repository/model/1/weights.bin").stat().st_size == 300 << 20


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path: Path) -> None:
    model = _model(tmp_path / "model", weights_mib=300)
    with tmpfs(tmp_path / "big", "1g") as mount:
        out = mount / "out"
        proc = _cli("repository", str(model), "--output", str(out))
        assert _wait_for(lambda: out.exists() and _leftovers(out)), "staging never started"
        proc.kill()  # SIGKILL: no handler runs, the staging folder stays behind
        proc.communicate(timeout=60)
        assert _leftovers(out), "SIGKILL should have left a staging folder to clean"
        assert main(["repository", str(model), "--output", str(out)]) == 0
        assert _leftovers(out) == []


def test_concurrent_runs_on_one_output_stay_consistent(tmp_path: Path) -> None:
    models = [_model(tmp_path / n, name=n) for n in ("alpha", "beta")]
    out = tmp_path / "out"
    for _ in range(5):
        procs = [_cli("dockerfile", str(m), "--output", str(out), "--force") for m in models]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        name = json.loads((out / "detect.json").read_text())["model"]["name"]
        repo_models = sorted(p.name for p in (out / "model_repository").iterdir()
                             if not p.name.startswith("."))
        assert repo_models == [name]
        assert f"Model {name} version 1" in (out / "context/Dockerfile").read_text()
        assert sorted(p.name for p in (out / "context/files").iterdir()) == [name]


def test_a_second_run_waits_for_the_lock(tmp_path: Path) -> None:
    model, out = _model(tmp_path / "model"), tmp_path / "out"
    assert main(["detect", str(model), "--output", str(out)]) == 0
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with exclusive(lock_for(out), what="out", report=Reporter("quiet")):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    proc = _cli("repository", str(model), "--output", str(out))
    time.sleep(1.5)
    assert proc.poll() is None, "the second run did not wait"
    release.set()
    holder.join()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"waiting for another run (pid {os.getpid()})" in err
    assert (out / "model_repository/model/config.pbtxt").exists()


def test_a_busy_output_is_refused_after_the_wait(tmp_path: Path) -> None:
    from packager.analysis import Options
    from packager.errors import EnvironmentFault
    from packager.executor.phases import Workspace

    model, out = _model(tmp_path / "model"), tmp_path / "out"
    assert main(["detect", str(model), "--output", str(out)]) == 0
    # flock is per open file description: a second open in this process conflicts too.
    with exclusive(lock_for(out), what="out", report=Reporter("quiet")), \
            pytest.raises(EnvironmentFault) as exc:
        Workspace(model, out, Options(), lock_wait=0.5).run("repository")
    assert "in use by another triton-packager run" in str(exc.value)
    assert exc.value.exit_code == 3
    assert not (out / "model_repository").exists()


def test_a_run_killed_between_its_two_renames_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL after the old output moved to the trash but before the new one moved in: the
    next run restores the old output rather than deleting it with the leftovers."""
    from packager.executor.state.ownership import clean_leftovers

    final = tmp_path / "model_repository"
    trash = tmp_path / ".model_repository.old-999999999-abc"
    write_tree(trash / "old", {"model/config.pbtxt": "kept"})
    write_tree(tmp_path / ".model_repository.staging-999999999-def", {"half": "written"})
    removed = clean_leftovers(final)
    assert len(removed) == 2
    assert (final / "model/config.pbtxt").read_text() == "kept"
    assert _leftovers(tmp_path) == []
