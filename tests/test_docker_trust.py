"""Trust rules that need the real engine: SIGTERM in the middle of a build, a base image
rebuilt under the same tag, and two `package` runs on one output at once."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from e2e import package, remove_image
from models import PYTHON_CONFIG, PYTHON_MODEL, write_tree

from packager.basechoice import LOCAL_CPU_IMAGE

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent


def _model(root: Path, name: str, **extra: str) -> Path:
    return write_tree(root, {"model.py": PYTHON_MODEL, "config.pbtxt": PYTHON_CONFIG.format(name=name),
                             "odahuflow.model.yaml": f"name: {name}\nversion: 1\n", **extra})


def _slow_base(client: docker.DockerClient, tag: str, seconds: int) -> None:
    """A base whose ONBUILD step sleeps, so the model build is slow enough to interrupt."""
    dockerfile = f"FROM {LOCAL_CPU_IMAGE}\nONBUILD RUN sleep {seconds}\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)


def test_sigterm_mid_build_leaves_no_result_and_no_container(tmp_path: Path,
                                                             client: docker.DockerClient) -> None:
    base = "triton-packager-test/slow-base:1"
    _slow_base(client, base, 60)
    model, out = _model(tmp_path / "model", "slow"), tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "packager", "package", str(model), "--output", str(out),
         "--base-image", base, "--tag", "triton-packager-test/slow:1"],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the ONBUILD sleep is running
            if any("sleep" in " ".join(c.attrs["Config"].get("Cmd") or [])
                   for c in client.containers.list()):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the build never reached its slow step")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
        assert time.monotonic() - started < 30, "SIGTERM did not stop the run promptly"
        assert proc.returncode == 130, err
        assert "interrupted by SIGTERM" in err and "Traceback" not in err
        assert not (out / "result.json").exists()
        state = json.loads((out / ".triton-packager/state.json").read_text())
        assert "package" not in state
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get("triton-packager-test/slow:1")
    finally:
        if proc.poll() is None:
            proc.kill()
        remove_image(client, base)


def test_base_image_rebuilt_under_the_same_tag_rebuilds(tmp_path: Path,
                                                         client: docker.DockerClient) -> None:
    base = "triton-packager-test/moving-base:1"
    client.images.get(LOCAL_CPU_IMAGE).tag(base)
    model, out = _model(tmp_path / "model", "moving"), tmp_path / "out"
    made: list[str] = []
    try:
        first, _ = package(model, out, base_image=base)
        assert first.result is not None
        made.append(first.result.image)
        again, _ = package(model, out, base_image=base)
        assert "package" in again.skipped  # nothing changed: nothing rebuilt
        # Same tag, new image: a rebuilt base must not leave a stale model image.
        client.images.build(fileobj=io.BytesIO(
            f"FROM {LOCAL_CPU_IMAGE}\nLABEL rebuilt=yes\n".encode()), tag=base, rm=True)
        third, _ = package(model, out, base_image=base)
        assert third.result is not None
        made.append(third.result.image)
        assert "package" in third.ran
        assert third.result.base_image_id == client.images.get(base).id
        assert third.result.image_id != first.result.image_id
    finally:
        for ref in (*made, base):
            remove_image(client, ref)


def test_two_package_runs_on_one_output(tmp_path: Path, client: docker.DockerClient) -> None:
    models = [_model(tmp_path / n, n) for n in ("left", "right")]
    out = tmp_path / "out"
    made: set[str] = set()
    try:
        for _ in range(3):
            procs = [subprocess.Popen(
                [sys.executable, "-m", "packager", "package", str(m), "--output", str(out),
                 "--base-image", LOCAL_CPU_IMAGE, "--force", "--quiet"],
                cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for m in models]
            for p in procs:
                stdout, err = p.communicate(timeout=300)
                assert p.returncode == 0, err
                made.add(stdout.strip().splitlines()[-1])
            result = json.loads((out / "result.json").read_text())
            name = result["model_name"]
            assert sorted(p.name for p in (out / "model_repository").iterdir()
                          if not p.name.startswith(".")) == [name]
            labels = client.images.get(result["image"]).labels
            assert labels["io.triton-packager.model.name"] == name
    finally:
        for ref in made:
            remove_image(client, ref)
