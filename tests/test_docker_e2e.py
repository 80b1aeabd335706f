"""Real engine, real Triton: build images, serve them, query them with tritonclient."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from e2e import (
    Recorder,
    image_file_bytes,
    infer_add_sub,
    package,
)
from models import backend_files, manifest, write_tree

from packager.analysis import Options
from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main
from packager.errors import BuildError
from packager.executor.container import serve
from packager.executor.images.docker import build_image
from packager.executor.phases import BuildEnv, Workspace

pytestmark = pytest.mark.docker


@pytest.mark.serving
def test_python_example_serves_over_http_and_grpc(tmp_path: Path, client, images,
                                                 python_model: Path) -> None:
    model = python_model
    (model / "scale.json").write_text('{"scale": 3.0}')
    outcome, _ = package(model, tmp_path / "out")
    assert outcome.result is not None
    images.append(outcome.result.image)
    assert outcome.result.image_id == client.images.get(outcome.result.image).id
    a = np.array([1.0, 2.0, 3.0, 4.5], dtype=np.float32)
    b = np.array([0.5, -1.0, 2.0, 4.0], dtype=np.float32)
    # Default user (uid 1000 from the Dockerfile), then an arbitrary uid as OpenShift does.
    for user in (None, "4242:4242"):
        with serve(outcome.result.image, user=user) as running:
            for module, url in ((httpclient, running.http_url), (grpcclient, running.grpc_url)):
                out0, out1 = infer_add_sub(url, a, b, module=module)
                np.testing.assert_allclose(out0, (a + b) * 3.0)
                np.testing.assert_allclose(out1, (a - b) * 3.0)
    config = client.images.get(outcome.result.image).attrs["Config"]
    assert config["User"] == "1000:1000"
    assert set(config["ExposedPorts"]) == {"8000/tcp", "8001/tcp", "8002/tcp"}
    assert config["Labels"]["io.triton-packager.model.name"] == "add-sub"
    assert config["Healthcheck"]["Test"][-1].endswith("/v2/health/ready")
    assert outcome.result.base_image_id == client.images.get(LOCAL_CPU_IMAGE).id
    assert not client.containers.list(all=True, filters={"label": "io.triton-packager.role"})


def test_config_change_reuses_the_weight_layer(tmp_path: Path, client, images) -> None:
    files = backend_files("onnx", "cache-model", with_config=True)
    files["odahuflow.model.yaml"] = manifest("cache-model", 1)
    files["labels.txt"] = "cat\ndog\n"
    model = write_tree(tmp_path / "model", files)
    first, _ = package(model, tmp_path / "out")
    assert first.result is not None
    images.append(first.result.image)
    text = str(files["config.pbtxt"])  # the config that names both of the model's inputs
    (model / "config.pbtxt").write_text(text.replace("max_batch_size: 0", "max_batch_size: 0\n"
                                                     "instance_group [ { kind: KIND_CPU } ]"))
    second, rec = package(model, tmp_path / "out")
    assert second.result is not None
    images.append(second.result.image)
    assert second.result.image_id != first.result.image_id

    # The weights image (tagged by the weights' digest) is the prefix of both model images:
    # the config change neither rebuilt nor re-sent it, and its layers are byte-identical.
    weights_tag = next(line.split()[1] for line in
                       (tmp_path / "out/context/Dockerfile").read_text().splitlines()
                       if line.startswith("FROM "))
    assert weights_tag.startswith("triton-packager/weights:")
    base = client.images.get(LOCAL_CPU_IMAGE).attrs["RootFS"]["Layers"]
    weights = client.images.get(weights_tag).attrs["RootFS"]["Layers"]
    before = client.images.get(first.result.image).attrs["RootFS"]["Layers"]
    after = client.images.get(second.result.image).attrs["RootFS"]["Layers"]
    assert len(weights) == len(base) + 1 and weights[: len(base)] == base
    assert before[: len(weights)] == after[: len(weights)] == weights
    assert before[len(weights)] == after[len(weights)]  # files/ (labels.txt): unchanged
    assert before[-1] != after[-1]  # config/: changed
    log = "\n".join(rec.lines)
    assert "weights image" in log and "is up to date" in log
    assert "building the weights image" not in log


def test_a_changed_weight_is_never_served_stale(tmp_path: Path, client, images) -> None:
    """Same size, same mtime, new bytes: the digest cache sees the ctime move, the weights
    image gets a new tag, and the image holds the new bytes."""
    model = write_tree(tmp_path / "model", {**backend_files("python", "fresh-model", True),
                                            "odahuflow.model.yaml": manifest("fresh-model", 1)})
    weight = model / "weights.bin"
    weight.write_bytes(os.urandom(2 << 20))  # >= 1 MiB: in the weights image
    st = weight.stat()
    first, _ = package(model, tmp_path / "out")
    assert first.result is not None
    images.append(first.result.image)
    data = bytearray(weight.read_bytes())
    data[-1] ^= 0xFF
    with weight.open("r+b") as fh:  # in place: same inode, same size
        fh.write(bytes(data))
    os.utime(weight, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime back
    assert weight.stat().st_size == st.st_size and weight.stat().st_mtime_ns == st.st_mtime_ns
    second, _ = package(model, tmp_path / "out")
    assert second.result is not None
    images.append(second.result.image)
    assert "package" in second.ran
    inside = image_file_bytes(client, second.result.image, "/models/fresh-model/1/weights.bin")
    assert inside == bytes(data)


def test_weights_are_loaded_or_built_for_a_platform_and_hold_the_same_bytes(
        tmp_path: Path, client, images) -> None:
    """Without --platform the weights layers are streamed into `docker load`; with it they are
    built from context/weights/Dockerfile (its context streamed as a tar). Same bytes inside."""
    model = write_tree(tmp_path / "model", {**backend_files("python", "both-ways", True),
                                            "odahuflow.model.yaml": manifest("both-ways", 1)})
    data = os.urandom(2 << 20)  # >= 1 MiB: in the weights image
    (model / "weights.bin").write_bytes(data)
    built = Workspace(model, tmp_path / "built", Options(base_image=LOCAL_CPU_IMAGE), Recorder(),
                      build_env=BuildEnv(platform="linux/amd64")).run("package")
    # the weights image is tagged by content: untag it, or the next run would reuse it
    weights_tag = next(line.split()[1] for line in
                       (tmp_path / "built/context/Dockerfile").read_text().splitlines()
                       if line.startswith("FROM "))
    client.images.remove(weights_tag)
    loaded, _ = package(model, tmp_path / "loaded")
    for outcome in (loaded, built):
        assert outcome.result is not None
        images.append(outcome.result.image)
        inside = image_file_bytes(client, outcome.result.image, "/models/both-ways/1/weights.bin")
        assert inside == data
    history = [h.get("CreatedBy", "") for h in
               client.images.get(loaded.result.image).history()]  # type: ignore[union-attr]
    assert any("# triton-packager" in h for h in history)  # assembled and loaded
    history = [h.get("CreatedBy", "") for h in
               client.images.get(built.result.image).history()]  # type: ignore[union-attr]
    assert not any("# triton-packager" in h for h in history)  # built by the engine


def test_an_input_on_another_filesystem_packages(tmp_path: Path, client, images) -> None:
    """No hardlinks across filesystems: the files are copied, and the image is the same."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        files = backend_files("onnx", "far-model", with_config=True)
        model = write_tree(mount / "model", {**files, "odahuflow.model.yaml":
                                             manifest("far-model", 1)})
        outcome, _ = package(model, tmp_path / "out")
        assert outcome.result is not None
        images.append(outcome.result.image)
        inside = image_file_bytes(client, outcome.result.image, "/models/far-model/1/model.onnx")
        assert inside == (model / "model.onnx").read_bytes()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def test_no_cache_rebuilds_every_step(tmp_path: Path, client, images, python_model: Path) -> None:
    first, _ = package(python_model, tmp_path / "out")
    assert first.result is not None
    images.append(first.result.image)
    rec = Recorder()
    options = Options(base_image=LOCAL_CPU_IMAGE)
    again = Workspace(python_model, tmp_path / "out", options, rec, force=True,
                      build_env=BuildEnv(no_cache=True)).run("package")
    assert again.result is not None
    images.append(again.result.image)
    log = "\n".join(rec.lines)
    assert "COPY --chown" in log and "Using cache" not in log


def test_rerun_on_unchanged_input_does_nothing(tmp_path: Path, client, images,
                                               python_model: Path) -> None:
    model = python_model
    first, _ = package(model, tmp_path / "out")
    assert first.result is not None
    images.append(first.result.image)
    again, _ = package(model, tmp_path / "out")
    assert again.ran == [] and again.skipped == ["detect", "repository", "dockerfile", "package"]
    assert again.result == first.result


# --- failures: one clear message, a distinct exit code, no result.json, no tag -------------

def test_unreachable_daemon(tmp_path: Path, monkeypatch, capsys, python_model: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    out = tmp_path / "out"
    assert main(["package", str(python_model), "-o", str(out), "--tag",
                 "never-built:1", "--builder", "docker"]) == 3
    err = capsys.readouterr().err
    assert "cannot reach the Docker engine" in err and "fix: start dockerd" in err
    assert not out.exists()  # the builder is checked before the first write


def test_missing_base_image(tmp_path: Path, client, capsys, python_model: Path) -> None:
    out = tmp_path / "out"
    code = main(["package", str(python_model), "-o", str(out),
                 "--base-image", "127.0.0.1:1/no-such-base:1", "--tag", "never-built:2"])
    assert code == 3
    err = capsys.readouterr().err
    assert "base image 127.0.0.1:1/no-such-base:1 is not on this engine" in err
    assert not (out / "result.json").exists()
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("never-built:2")


def _context(tmp: Path, dockerfile: str) -> Path:
    ctx = tmp / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def test_failing_run_step_reports_the_log_tail(tmp_path: Path, client) -> None:
    before = {c.id for c in client.containers.list(all=True)}
    ctx = _context(tmp_path, f"FROM {LOCAL_CPU_IMAGE}\nRUN echo about-to-fail && exit 7\n")
    with pytest.raises(BuildError) as err:
        build_image(ctx, "never-built:3", Recorder())
    assert "returned a non-zero code: 7" in str(err.value)
    assert any("about-to-fail" in line for line in err.value.log_tail)
    assert err.value.exit_code == 3
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("never-built:3")
    assert {c.id for c in client.containers.list(all=True)} == before  # forcerm left none


def test_dockerfile_error_is_reported(tmp_path: Path, client) -> None:
    ctx = _context(tmp_path, f"FROM {LOCAL_CPU_IMAGE}\nCOPY --link a b\n")
    with pytest.raises(BuildError) as err:
        build_image(ctx, "never-built:4", Recorder())
    assert "link" in str(err.value)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("never-built:4")


def test_base_image_phase_is_idempotent(client, capsys) -> None:
    before = client.images.get(LOCAL_CPU_IMAGE).id
    assert main(["base-image"]) == 0
    assert "is up to date" in capsys.readouterr().err
    assert client.images.get(LOCAL_CPU_IMAGE).id == before
    labels = client.images.get(LOCAL_CPU_IMAGE).labels
    assert labels["io.triton-packager.base.wheel"] == "nvidia-pytriton==0.7.0"
    user = client.containers.run(LOCAL_CPU_IMAGE, ["id", "-u", "triton-server"], remove=True)
    assert user.strip() == b"1000"


def test_verify_refuses_an_image_without_the_backend(tmp_path: Path, images, capsys) -> None:
    model = write_tree(tmp_path / "model", backend_files("onnx", "model", with_config=True))
    outcome, _ = package(model, tmp_path / "out")
    assert outcome.result is not None
    images.append(outcome.result.image)
    assert main(["verify", "--output", str(tmp_path / "out")]) == 4
    err = capsys.readouterr().err
    assert "has no onnx backend" in err and "fix:" in err
