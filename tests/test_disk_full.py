"""A filesystem that fills while the weights go into an image or out to a registry, for real: small
tmpfs mounts (root needed; skipped with the reason elsewhere) as buildah's temporary directory,
buildah's storage, and the output directory a push spools the exported layers in. Each is one
message naming the full filesystem and how to move it, exit 3 (the machine's fault: errors.py),
and nothing half-written left: no temporary copy, no weights image, no spool, result.json as
it was. (The Docker engine's own storage is its daemon's /var/lib/docker, shared by every job
on the machine: not shrunk here; the output directory's case holds for both builders,
test_faults.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from e2e import registry
from test_faults import tmpfs

from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main
from packager.executor.images import buildah as bb

pytestmark = pytest.mark.docker


def _model(root: Path, mib: int) -> Path:
    root.mkdir(parents=True)
    (root / "config.pbtxt").write_text('name: "full"\nplatform: "tensorrt_plan"\n'
                                       "max_batch_size: 0\n")
    (root / "odahuflow.model.yaml").write_text("name: full\nversion: 1\n")
    with (root / "model.plan").open("wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(1 << 20))
    return root


def _images(storage: bb.Storage) -> list[str]:
    proc = subprocess.run(["buildah", *storage.flags(), "images", "--all", "--json"],
                          capture_output=True, text=True, timeout=120, check=True)
    return [name for image in json.loads(proc.stdout or "[]") for name in image.get("names") or []]


def _package(model: Path, out: Path, tag: str) -> int:
    return main(["package", str(model), "-o", str(out), "--builder", "buildah", "--tag", tag,
                 "--base-image", LOCAL_CPU_IMAGE, "-q"])


def _assert_disk_full(err: str, where: Path) -> None:
    assert "no space left on device" in err.lower(), err
    assert str(where) in err and "fix:" in err and "Traceback" not in err


def test_buildah_temporary_files_filling_up_is_an_environment_fault(
        tmp_path: Path, buildah_env: bb.Storage, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """buildah copies each blob it pulls into $TMPDIR first: 16 MiB of weights, 8 MiB there."""
    bb.ensure_image(LOCAL_CPU_IMAGE, storage=buildah_env)  # the base in storage, outside the test
    model = _model(tmp_path / "model", 16)
    out = tmp_path / "out"
    before = set(_images(buildah_env))
    with tmpfs(tmp_path / "small-tmp", "8m") as small:
        monkeypatch.setenv("TMPDIR", str(small))  # buildah's; this process's tempdir is cached
        code = _package(model, out, "full-tmp:1")
        err = capsys.readouterr().err
        assert code == 3, err
        _assert_disk_full(err, small)
        assert "TMPDIR" in err and "storing the weights image" in err
        assert list(small.iterdir()) == []  # buildah removed its temporary copy
    assert not (out / "result.json").exists()
    assert set(_images(buildah_env)) == before  # no weights image stored
    assert not list(out.glob(".weights-*"))


def test_buildah_storage_filling_up_is_an_environment_fault(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """buildah's storage on a filesystem with the base image and 8 MiB to spare; 24 MiB of
    weights."""
    model = _model(tmp_path / "model", 24)
    with tmpfs(tmp_path / "store", "1g") as root:
        storage = bb.Storage("overlay", root / "root", root / "run")
        monkeypatch.setenv(bb.ENV_DRIVER, "overlay")
        monkeypatch.setenv(bb.ENV_ROOT, str(storage.root))
        monkeypatch.setenv(bb.ENV_RUNROOT, str(storage.runroot))
        try:
            bb.ensure_image(LOCAL_CPU_IMAGE, storage=storage)
            st = os.statvfs(root)
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            subprocess.run(["mount", "-o", f"remount,size={used + (8 << 20)}", str(root)],
                           check=True, capture_output=True, timeout=30)
            code = _package(model, tmp_path / "out", "full-store:1")
            err = capsys.readouterr().err
            assert code == 3, err
            _assert_disk_full(err, root)
            assert f"in buildah's storage ({storage.root})" in err and bb.ENV_ROOT in err
            names = _images(storage)
            assert not any("triton-packager/weights" in n for n in names), names
        finally:
            subprocess.run(["buildah", *storage.flags(), "rmi", "--all", "--force"],
                           capture_output=True, timeout=300)


def test_push_spool_filling_up_is_an_environment_fault(
        tmp_path: Path, buildah_env: bb.Storage, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The output directory holds the packaged model (8 MiB of weights) with 24 MiB to spare;
    the push spools the base image's layers there (hundreds of MB) before it gzips them."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = _model(tmp_path / "model", 8)
    with tmpfs(tmp_path / "small-out", "64m") as small:
        out = small / "out"
        assert _package(model, out, "full-spool:1") == 0
        result = (out / "result.json").read_bytes()
        capsys.readouterr()
        with registry(tmp_path / "reg") as reg:
            code = main(["push", "-o", str(out), "--registry", f"{reg.host}/a"])
            err = capsys.readouterr().err
            assert code == 3, err
            _assert_disk_full(err, out)
            assert "output directory" in err
        assert (out / "result.json").read_bytes() == result  # nothing recorded
        assert not list(out.glob(".push-*"))  # the spool is gone
        weights_tag = next(ln.split()[1] for ln in
                           (out / "context/Dockerfile").read_text().splitlines()
                           if ln.startswith("FROM ") and "triton-packager/weights:" in ln)
    # both images go: an unused weights image left in the session's storage is prune's to find
    for name in ("full-spool:1", weights_tag):
        subprocess.run(["buildah", *buildah_env.flags(), "rmi", name], capture_output=True,
                       timeout=120)
