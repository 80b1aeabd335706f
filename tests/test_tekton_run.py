"""The Pipeline's steps, run for real without a cluster (issue #9, point 7).

Each step of deploy/tekton's Tasks runs as a container of the packager's own image
(`make packager-image`) with the command, args and env that `tekton_steps.resolve_steps` takes
from the Task YAML (parameters substituted as Tekton substitutes them), the workspaces as host
directories mounted where Tekton mounts them, and the privileges the Task declares
(privileged, as Tekton's catalog buildah Task) -- and no Docker socket. The flow is the
Pipeline's: setup (an artifact on the workspace) or train (an MLproject repo on the workspace),
package with buildah from a base image given as an OCI archive, push to Debian's docker-registry
on 127.0.0.1 with TLS from a CA the test makes and htpasswd authentication, the credentials from
a kubernetes.io/dockerconfigjson Secret mounted as the Task mounts it. Then the image is pulled
back through the Docker engine, served by Triton and asked a real inference request.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import EXAMPLES, REPO
from e2e import Registry, authfile, infer_add_sub, privileged_flags, registry
from tekton_steps import ResolvedStep, resolve_steps

from packager.baseimage import LOCAL_CPU_IMAGE
from packager.executor import buildah_build as bb
from packager.executor.container import serve

pytestmark = [pytest.mark.docker, pytest.mark.serving]

TEKTON = REPO / "deploy" / "tekton"
PASSWORD = "tekton-e2e-Pa55-never-printed"
STEP_TIMEOUT = 1200


def _task(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((TEKTON / f"task-{name}.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def _image_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("packager_image_build",
                                                  REPO / "deploy" / "image" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def packager_image() -> str:
    """The packager's image, built (or found up to date) as `make packager-image` does."""
    built = _image_builder().build()
    return str(built.tags[0])


@pytest.fixture(scope="module")
def base_archive(tmp_path_factory: pytest.TempPathFactory, storage: bb.Storage) -> Path:
    """The local CPU base as an OCI archive: how a cluster without a Docker engine gets it."""
    path = tmp_path_factory.mktemp("base") / "base.tar"
    bb.ensure_image(f"docker-daemon:{LOCAL_CPU_IMAGE}", storage=storage)
    bb.export_image(LOCAL_CPU_IMAGE, f"oci-archive:{path}", name=LOCAL_CPU_IMAGE, storage=storage)
    return path


def _run_step(step: ResolvedStep, mounts: dict[str, Path], *, network: str = "host") -> str:
    """`docker run` of one resolved step: its image, command, args, env and working directory,
    its workspace paths bound to host directories, privileged when the step says so. Returns
    the output; a failing step fails the test with it."""
    assert not any("docker.sock" in str(p) for p in mounts.values())
    cmd = ["docker", "run", "--rm", f"--network={network}"]
    if step.security_context.get("privileged"):
        cmd += privileged_flags(step.image)
    for path, host in mounts.items():
        read_only = any(w.path == path and w.read_only for w in step.workspaces)
        cmd += ["-v", f"{host}:{path}{':ro' if read_only else ''}"]
    for name, value in step.env:
        cmd += ["-e", f"{name}={value}"]
    if step.working_dir:
        cmd += ["-w", step.working_dir]
    cmd += ["--entrypoint", step.command[0], step.image, *step.command[1:], *step.args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"step {step.name} failed ({proc.returncode}):\n{output[-4000:]}"
    return output


@contextlib.contextmanager
def _engine_trusts(reg: Registry) -> Iterator[None]:
    """The Docker engine reads a registry's CA from /etc/docker/certs.d/HOST:PORT/ca.crt at each
    pull; the directory is the test's and is removed after it."""
    assert reg.ca is not None
    certs = Path("/etc/docker/certs.d") / reg.host
    certs.mkdir(parents=True, exist_ok=False)
    try:
        shutil.copyfile(reg.ca, certs / "ca.crt")
        yield
    finally:
        shutil.rmtree(certs, ignore_errors=True)


def test_pipeline_steps_run_as_containers_push_and_the_image_serves(
        tmp_path: Path, packager_image: str, base_archive: Path, python_example: Path,
        client: Any, images: list[str]) -> None:
    ws = tmp_path / "shared"  # the `shared` workspace (a PVC in a cluster)
    ws.mkdir()
    varlib = ws / "varlibcontainers"  # the Pipeline binds varlibcontainers to shared/varlibcontainers
    varlib.mkdir()
    results = tmp_path / "results"
    results.mkdir()
    # Inputs on the workspace: an artifact (setup's input), an MLproject repo (train's), the base.
    with tarfile.open(ws / "artifact.tar.gz", "w:gz") as tar:
        tar.add(python_example, arcname=".")
    shutil.copytree(EXAMPLES / "python", ws / "project",
                    ignore=shutil.ignore_patterns("__pycache__", "mlruns"))
    shutil.copyfile(base_archive, ws / "base.tar")

    with registry(tmp_path / "registry", user="ci", password=PASSWORD, tls=True) as reg:
        assert reg.ca is not None
        shutil.copyfile(reg.ca, ws / "registry-ca.crt")
        # the Secret's key `.dockerconfigjson`, as Kubernetes mounts it into the workspace
        dockerconfig = authfile(tmp_path / "dockerconfig" / ".dockerconfigjson", reg.host, "ci",
                                PASSWORD).parent
        logs: dict[str, str] = {}

        # setup: the artifact from the workspace, unpacked into model-from-artifact/
        (setup,) = resolve_steps(_task("setup"), {
            "packagerImage": packager_image, "artifact": "artifact.tar.gz",
            "modelDir": "model-from-artifact"})
        logs["setup"] = _run_step(setup, {"/workspace/shared": ws})
        assert (ws / "model-from-artifact" / "odahuflow.model.yaml").is_file()

        # train: the MLproject repo trained inside the packager image, into model/
        (train,) = resolve_steps(_task("train"), {
            "packagerImage": packager_image, "project": "project", "modelDir": "model",
            "modelVersion": "3", "trainOptions": ["-P", "true_scale=3.0"]})
        logs["train"] = _run_step(train, {"/workspace/shared": ws})
        assert "version: 3" in (ws / "model" / "odahuflow.model.yaml").read_text()
        (scale_file,) = (ws / "model").rglob("scale.json")
        scale = float(json.loads(scale_file.read_text())["scale"])
        assert abs(scale - 3.0) < 0.05  # learnt in the step, from true_scale=3.0

        # package: buildah in the step's container, the base from the OCI archive
        (package,) = resolve_steps(_task("package"), {
            "packagerImage": packager_image, "modelDir": "model", "outputDir": "out",
            "baseImage": f"oci-archive:/workspace/shared/base.tar:{LOCAL_CPU_IMAGE}",
            "imageName": "e2e/{{ Name }}:{{ Version }}"})
        assert package.security_context == {"privileged": True}
        logs["package"] = _run_step(package, {"/workspace/shared": ws,
                                              "/var/lib/containers": varlib})
        result = json.loads((ws / "out" / "result.json").read_text())
        assert result["builder"] == "buildah" and result["image"] == "e2e/add-sub:3"

        # push: credentials from the Secret workspace, the registry's CA from the workspace
        (push,) = resolve_steps(_task("push"), {
            "packagerImage": packager_image, "outputDir": "out", "registry": f"{reg.host}/team",
            "pushOptions": ["--ca-bundle", "registry-ca.crt"]},
            results={"IMAGE_URL": "/tekton/results/IMAGE_URL",
                     "IMAGE_DIGEST": "/tekton/results/IMAGE_DIGEST"})
        logs["push"] = _run_step(push, {"/workspace/shared": ws, "/var/lib/containers": varlib,
                                        "/workspace/dockerconfig": dockerconfig,
                                        "/tekton/results": results})
        url = (results / "IMAGE_URL").read_text()
        digest = (results / "IMAGE_DIGEST").read_text()
        assert url == f"{reg.host}/team/e2e/add-sub:3"
        assert digest.startswith("sha256:") and len(digest) == 71
        pushed = json.loads((ws / "out" / "result.json").read_text())
        assert pushed["image"] == url and pushed["pushed_image"] == f"{reg.host}/team/e2e/add-sub@{digest}"
        for name, text in logs.items():
            assert PASSWORD not in text, f"the password reached the {name} step's output"
        assert PASSWORD not in (ws / "out" / "result.json").read_text()

        # Pulled back by digest through the Docker engine, served, asked.
        with _engine_trusts(reg):
            repo = f"{reg.host}/team/e2e/add-sub"
            image = client.images.pull(repo, tag=digest,
                                       auth_config={"username": "ci", "password": PASSWORD})
        images.append(f"{repo}@{digest}")
        assert image.id == result["image_id"]  # the very image buildah built in the step
    a = np.arange(4, dtype=np.float32)
    b = np.full(4, 0.5, dtype=np.float32)
    with serve(f"{repo}@{digest}") as running:
        out0, out1 = infer_add_sub(running.http_url, a, b, version="3")
    np.testing.assert_allclose(out0, (a + b) * scale, rtol=1e-5)
    np.testing.assert_allclose(out1, (a - b) * scale, rtol=1e-5)
