"""The Pipeline, rehearsed as a cluster would start it, without a cluster (issue 17, point 8).

Each step of deploy/tekton's Tasks runs as a container of the packager's step image with what
`tekton_steps.resolve_steps` reads from the Task YAML: command, args, env, working directory,
security context (user, capabilities, privilege escalation, privileged), the workspaces where
Tekton mounts them (read-only where the Task says so), the Task's own volumes as per-TaskRun
directories (an emptyDir lives as long as its pod), and /tekton/results. No Docker socket.

Where a cluster starts, this starts:

- the step image is the one `deploy/image/build.py --push` pushed to a registry, run by its
  digest-pinned reference after the engine (the "node") pulled it with the registry's
  credentials (point 1);
- the `shared` workspace starts empty (only what an earlier Task of the same run, or of an
  earlier run on the same claim, wrote);
- the registry is Debian's docker-registry on 127.0.0.1 with TLS (a CA the test makes) and
  htpasswd; the base image is pulled from it, as from a mirror on an air-gapped cluster;
- the credentials are a directory laid out as the kubelet mounts a kubernetes.io/dockerconfigjson
  Secret (`..data` symlinks), and the CA one laid out as a ConfigMap made with
  `kubectl create configmap --from-file=ca.crt` (point 4);
- the artifact comes over http from 127.0.0.1, not from the workspace.

Three PipelineRuns on one `shared` directory (as on a named claim):
1. `train: "True"`: the check Task fails naming the param; nothing else runs, nothing is pushed.
2. `train: "true"`: a clone (the copy a git-clone Task would make), check, then a hostile probe
   with the train step's mounts and privileges writes wherever it can; then the real train step.
3. `train: "false"`: check, setup from the URL, build (package, push, results) -- which packages
   run 3's model, not run 2's (still on the claim), from storage the probe could not reach. The
   image is pulled back by digest, served by Triton and asked a real inference request.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import EXAMPLES, REPO
from e2e import Registry, infer_add_sub, privileged_flags, registry
from fileserver import serve_directory
from scripts import load_script
from tekton_steps import ResolvedStep, kubernetes_volume, resolve_steps

from packager.basechoice import LOCAL_CPU_IMAGE
from packager.executor.container import serve

pytestmark = [pytest.mark.docker, pytest.mark.serving]

TEKTON = REPO / "deploy" / "tekton"
PASSWORD = "tekton-e2e-Pa55-never-printed"
STEP_TIMEOUT = 1200
RESULTS = "/tekton/results"
TIMINGS: dict[str, float] = {}


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((TEKTON / name).read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def packager_image() -> str:
    """The packager's image, built (or found up to date) as `make packager-image` does."""
    built = load_script("deploy/image/build.py", "packager_image_build").build()
    return str(built.tags[1])


@contextlib.contextmanager
def _engine_trusts(reg: Registry) -> Iterator[None]:
    """The Docker engine (the "node") reads a registry's CA from
    /etc/docker/certs.d/HOST:PORT/ca.crt at each pull; removed afterwards."""
    assert reg.ca is not None
    certs = Path("/etc/docker/certs.d") / reg.host
    certs.mkdir(parents=True, exist_ok=False)
    try:
        shutil.copyfile(reg.ca, certs / "ca.crt")
        yield
    finally:
        shutil.rmtree(certs, ignore_errors=True)


class TaskRun:
    """One TaskRun's pod: its emptyDir volumes and results directory, fresh per TaskRun."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root / name
        self.results = self.root / "results"
        self.results.mkdir(parents=True)
        self.volumes: dict[str, Path] = {}

    def volume(self, name: str) -> Path:
        return self.volumes.setdefault(name, _mkdir(self.root / "volumes" / name))

    def result(self, name: str) -> str:
        return (self.results / name).read_text()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


_SECURITY = frozenset({"privileged", "runAsUser", "runAsNonRoot", "allowPrivilegeEscalation",
                       "capabilities", "seccompProfile"})


def _docker_run(step: ResolvedStep, run: TaskRun, workspaces: dict[str, Path],
                command: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """`docker run` of one resolved step as the kubelet would start it."""
    cmd = ["docker", "run", "--rm", "--network=host"]
    security = dict(step.security_context)
    assert set(security) <= _SECURITY, f"unmodelled securityContext {set(security) - _SECURITY}"
    if security.get("privileged"):
        cmd += privileged_flags(step.image)
    if "runAsUser" in security:
        cmd += ["--user", str(security["runAsUser"])]
    if security.get("allowPrivilegeEscalation") is False:
        cmd += ["--security-opt", "no-new-privileges"]
    for cap in security.get("capabilities", {}).get("drop", []):
        cmd += ["--cap-drop", cap]
    if "seccompProfile" in security:  # the engine's own default profile is RuntimeDefault
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for mount in step.workspaces:  # only the bound ones are here
        cmd += ["-v", f"{workspaces[mount.name]}:{mount.path}{':ro' if mount.read_only else ''}"]
    for mount in step.volume_mounts:
        assert "subPath" not in mount
        cmd += ["-v", f"{run.volume(mount['name'])}:{mount['mountPath']}"]
    cmd += ["-v", f"{run.results}:{RESULTS}"]
    for name, value in step.env:
        cmd += ["-e", f"{name}={value}"]
    if step.working_dir:
        cmd += ["-w", step.working_dir]
    argv = command or [*step.command, *step.args]
    cmd += ["--entrypoint", argv[0], step.image, *argv[1:]]
    assert not any("docker.sock" in part for part in cmd)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT)


def _run_task(task: str, params: dict[str, Any], run: TaskRun, workspaces: dict[str, Path],
              logs: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Every step of `task`, in order; stops at the first failing step (as Tekton does)."""
    doc = _load(f"task-{task}.yaml")
    bound = {w["name"]: w.get("mountPath") or f"/workspace/{w['name']}"
             for w in doc["spec"].get("workspaces", []) if w["name"] in workspaces}
    started = time.monotonic()
    proc: subprocess.CompletedProcess[str] | None = None
    for step in resolve_steps(doc, params, workspaces=bound):
        proc = _docker_run(step, run, workspaces)
        logs[f"{run.root.name}/{step.name}"] = proc.stdout + proc.stderr
        if proc.returncode != 0:
            break
    TIMINGS[run.root.name] = round(time.monotonic() - started, 1)
    assert proc is not None
    return proc


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def _catalog(reg: Registry, auth: tuple[str, str]) -> list[str]:
    assert reg.ca is not None
    out = subprocess.run(["curl", "-sf", "--cacert", str(reg.ca), "-u", ":".join(auth),
                          f"https://{reg.host}/v2/_catalog"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    repositories: list[str] = json.loads(out)["repositories"]
    return repositories


PROBE = r"""
import os, sys
marked = []
for line in open("/proc/self/mountinfo"):
    point = line.split()[4]
    if point.startswith(("/proc", "/sys", "/dev", "/etc/")) or point in ("/etc",):
        continue
    for target in (point, "/var/lib/containers", "/var/lib/containers/storage", "/packager-output"):
        try:
            os.makedirs(target, exist_ok=True)
            with open(os.path.join(target, "poison"), "w") as f:
                f.write("written by training code\n")
            marked.append(target)
        except OSError:
            pass
import json
print("MOUNTS", json.dumps(sorted({l.split()[4] for l in open("/proc/self/mountinfo")
                        if l.split()[4].startswith(("/workspace", "/var/lib/containers",
                                                    "/packager-output", "/tekton"))})))
print("MARKED", sorted(set(marked)))
"""


def test_pipeline_runs_as_a_cluster_starts_it(
        tmp_path: Path, packager_image: str, python_example: Path, client: Any,
        images: list[str], buildah_env: Any) -> None:
    started = time.monotonic()
    checker = load_script("deploy/tekton/check.py", "tekton_check")
    shared = _mkdir(tmp_path / "claim")  # the `shared` workspace: empty, kept across runs
    pods = tmp_path / "pods"
    logs: dict[str, str] = {}
    auth = ("ci", PASSWORD)

    with registry(tmp_path / "registry", user=auth[0], password=PASSWORD, tls=True) as reg, \
            serve_directory(_mkdir(tmp_path / "www")) as www:
        assert reg.ca is not None
        dockerconfigjson = json.dumps({"auths": {reg.host: {
            "auth": __import__("base64").b64encode(":".join(auth).encode()).decode()}}}).encode()
        # The Secret and the ConfigMap as the kubelet mounts them (defaultMode 0644).
        secret = kubernetes_volume(tmp_path / "secret", {".dockerconfigjson": dockerconfigjson})
        ca = kubernetes_volume(tmp_path / "configmap", {"ca.crt": reg.ca.read_bytes()})
        authfile = secret / ".dockerconfigjson"

        # Point 1: the step image, built, pushed with push's machinery, digest-pinned.
        t = time.monotonic()
        image_build = load_script("deploy/image/build.py", "packager_image_build")
        step_image = image_build.push(f"{reg.host}/tools/triton-packager", authfile=authfile,
                                      ca_bundle=reg.ca)
        repo, _, digest = step_image.partition("@")
        assert digest.startswith("sha256:") and repo == f"{reg.host}/tools/triton-packager"
        # The air-gapped cluster's mirror of the Triton base image.
        mirror = f"{reg.host}/mirror/tritonserver-cpu"
        base_tag = LOCAL_CPU_IMAGE.rsplit(":", 1)[1]
        with _engine_trusts(reg):
            client.images.get(LOCAL_CPU_IMAGE).tag(mirror, base_tag)
            images.append(f"{mirror}:{base_tag}")
            mirror_digest = ""
            for line in client.images.push(mirror, base_tag, stream=True, decode=True,
                                           auth_config={"username": "ci", "password": PASSWORD}):
                assert "error" not in line, line
                mirror_digest = line.get("aux", {}).get("Digest", mirror_digest)
            assert mirror_digest.startswith("sha256:")
            # The node pulls the step image by digest, with the registry's pull secret.
            client.images.pull(repo, tag=digest, auth_config={"username": "ci", "password": PASSWORD})
        images.append(step_image)
        assert client.images.get(step_image).id == client.images.get(packager_image).id
        TIMINGS["step image and mirror pushed"] = round(time.monotonic() - t, 1)
        base_image = f"{mirror}:{base_tag}"

        pipeline = _load("pipeline.yaml")

        def params(task: str, uid: str, **run_params: Any) -> dict[str, Any]:
            """The Pipeline task's params with the run's values, as Tekton passes them."""
            defaults = {p["name"]: p.get("default") for p in pipeline["spec"]["params"]}
            values = {**defaults, "packagerImage": step_image, "registry": f"{reg.host}/team",
                      "baseImage": base_image, "imageName": "e2e/{{ Name }}:{{ Version }}",
                      **run_params}
            (ptask,) = [t for t in pipeline["spec"]["tasks"] if t["name"] == task]
            out: dict[str, Any] = {}
            for p in ptask["params"]:
                value = p["value"].replace("$(context.pipelineRun.uid)", uid)
                if value.startswith("$(params."):
                    name = value[len("$(params."):].split(")")[0].removesuffix("[*]")
                    out[p["name"]] = values[name]
                else:
                    assert "$(" not in value
                    out[p["name"]] = value
            return out

        def when(task: str, run_params: dict[str, Any]) -> bool:
            (ptask,) = [t for t in pipeline["spec"]["tasks"] if t["name"] == task]
            train = run_params.get("train", "false")
            return all(train in w["values"] for w in ptask.get("when", []))

        check_ws = {"dockerconfig": secret, "ca": ca}

        # --- run 1: train: "True" -- the check fails and names the param; nothing else runs.
        run1 = {"train": "True", "project": "repos/python"}
        proc = _run_task("check", params("check", "u1", **run1), TaskRun(pods, "r1-check"),
                         check_ws, logs)
        assert proc.returncode == 2
        assert "param train = 'True': must be exactly \"true\" or \"false\"" in proc.stderr
        assert not when("train", run1) and not when("setup", run1)  # what `when` alone would do
        assert list(shared.iterdir()) == []
        assert _catalog(reg, auth) == ["mirror/tritonserver-cpu", "tools/triton-packager"]
        # A push target that could be the mirror's base (registry: the mirror's path): refused
        # in check, before anything could overwrite the base every later run pulls.
        proc = _run_task("check", params("check", "u1", train="false", artifact="x.zip",
                                         registry=f"{reg.host}/mirror",
                                         imageName="{{ Name }}:{{ Version }}"),
                         TaskRun(pods, "r1-check-mirror"), check_ws, logs)
        assert proc.returncode == 2
        assert "param imageName" in proc.stderr and "base image's repository" in proc.stderr
        # A packageOptions word the allow-list lacks fails the check too.
        proc = _run_task("check", params("check", "u1", train="false", artifact="x.zip",
                                         packageOptions=["--template-dir", "/workspace"]),
                         TaskRun(pods, "r1-check-options"), check_ws, logs)
        assert proc.returncode == 2
        assert "param packageOptions = '--template-dir'" in proc.stderr

        # --- run 2: train: "true" -- the training step cannot reach the build's storage.
        run2 = {"train": "true", "project": "repos/python", "modelVersion": "3",
                "trainOptions": ["-P", "true_scale=3.0"]}
        shutil.copytree(EXAMPLES / "python", shared / "repos" / "python",  # what git-clone writes
                        ignore=shutil.ignore_patterns("__pycache__", "mlruns"))
        _ok(_run_task("check", params("check", "u2", **run2), TaskRun(pods, "r2-check"),
                      check_ws, logs))
        assert when("train", run2) and not when("setup", run2)
        (train_step,) = resolve_steps(_load("task-train.yaml"), params("train", "u2", **run2),
                                      workspaces={"shared": "/workspace/shared"})
        probe = _docker_run(train_step, TaskRun(pods, "r2-probe"), {"shared": shared},
                            command=["python", "-c", PROBE])
        _ok(probe)
        mounts = json.loads(probe.stdout.split("MOUNTS ", 1)[1].splitlines()[0])
        # Tekton's own /tekton/* mounts aside, the training code sees the shared workspace only.
        assert [m for m in mounts if not m.startswith("/tekton/")] == ["/workspace/shared"], mounts
        _ok(_run_task("train", params("train", "u2", **run2), TaskRun(pods, "r2-train"),
                      {"shared": shared}, logs))
        stale = shared / "runs" / "u2" / "model"
        assert "version: 3" in (stale / "odahuflow.model.yaml").read_text()

        # --- run 3: train: "false" -- setup from the URL, then build and push on the same claim.
        with tarfile.open(tmp_path / "www" / "model.tar.gz", "w:gz") as tar:
            tar.add(python_example, arcname=".")
        run3 = {"train": "false", "artifact": f"{www}/model.tar.gz"}
        _ok(_run_task("check", params("check", "u3", **run3), TaskRun(pods, "r3-check"),
                      check_ws, logs))
        assert when("setup", run3) and not when("train", run3)
        _ok(_run_task("setup", params("setup", "u3", **run3), TaskRun(pods, "r3-setup"),
                      {"shared": shared, "ca": ca}, logs))
        # The lane's build cache (buildCache on a named claim), as an earlier run could have
        # left it: an image that is not the base, under the base image's name.
        cache = _mkdir(tmp_path / "lane-cache")
        build_ws = {"source": shared, "dockerconfig": secret, "ca": ca, "cache": cache}
        build_doc = _load("task-build.yaml")
        bound = {w["name"]: w.get("mountPath") or f"/workspace/{w['name']}"
                 for w in build_doc["spec"]["workspaces"]}
        (package_step,) = [st for st in resolve_steps(build_doc, params("build", "u3", **run3),
                                                      workspaces=bound)
                           if st.name == "package"]
        buildah_cache = ["buildah", "--root", "/workspace/cache"]
        planted = _docker_run(package_step, TaskRun(pods, "r0-planted"), build_ws, command=[
            "sh", "-c", f'c=$({" ".join(buildah_cache)} from scratch) && '
            f'{" ".join(buildah_cache)} config --label planted=yes "$c" >/dev/null && '
            f'{" ".join(buildah_cache)} commit --quiet "$c" {base_image} && '
            f'{" ".join(buildah_cache)} rm "$c" >/dev/null'])
        _ok(planted)
        planted_id = planted.stdout.split()[0]

        def cache_images() -> dict[str, str]:
            proc = _docker_run(package_step, TaskRun(pods, f"r0-list-{time.monotonic_ns()}"),
                               build_ws, command=[*buildah_cache, "images", "--no-trunc",
                                                  "--format", "{{.Name}}:{{.Tag}} {{.ID}}"])
            _ok(proc)
            return {line.split()[0]: line.split()[-1] for line in proc.stdout.splitlines()
                    if line.strip()}

        assert cache_images()[base_image].removeprefix("sha256:") == planted_id
        build = TaskRun(pods, "r3-build")
        _ok(_run_task("build", params("build", "u3", **run3), build, build_ws, logs))
        # The build pulled the base again (package --pull always), built FROM what the mirror
        # serves, and the pushed image left the cache: nothing of this run is found by name in
        # the next one.
        held = cache_images()
        assert held[base_image].removeprefix("sha256:") != planted_id
        assert not [name for name in held if "add-sub" in name], held

        # The build's storage (the cache) and output were the build's own: no poison from the
        # training code.
        assert any(cache.iterdir())
        for volume in [*build.volumes.values(), cache]:
            assert not list(volume.rglob("poison")), volume
        assert (shared / "poison").exists()  # the probe did write where it could: its workspace

        url, image_digest = build.result("IMAGE_URL"), build.result("IMAGE_DIGEST")
        assert url == f"{reg.host}/team/e2e/add-sub:1"
        assert image_digest.startswith("sha256:") and len(image_digest) == 71
        result = json.loads(build.result("RESULT"))
        assert all(isinstance(v, str) for v in result.values())
        assert result["pushed_digest"] == image_digest and result["model_version"] == "1"
        assert result["base_image"] == base_image
        base_digest = build.result("BASE_IMAGE_DIGEST")
        assert base_digest == mirror_digest  # the manifest the mirror serves
        # Every step's results fit Tekton's termination message; the last step's message holds
        # every result file present at its end (entrypointer.go readResultsFromDisk).
        assert checker.result_size_problems("push", {
            "IMAGE_URL": url, "IMAGE_DIGEST": image_digest}) == []
        assert checker.result_size_problems("results", {
            "IMAGE_URL": url, "IMAGE_DIGEST": image_digest,
            "RESULT": build.result("RESULT"), "BASE_IMAGE_DIGEST": base_digest}) == []
        for name, text in logs.items():
            assert PASSWORD not in text, f"the password reached {name}'s output"
        assert _catalog(reg, auth) == ["mirror/tritonserver-cpu", "team/e2e/add-sub",
                                       "tools/triton-packager"]

        # Bad input: run 3's build again without the CA workspace fails at the base image pull
        # (in a fresh pod: an empty emptyDir) and pushes nothing.
        no_ca = TaskRun(pods, "r3-build-without-ca")
        proc = _run_task("build", params("build", "u3", **run3), no_ca,
                         {"source": shared, "dockerconfig": secret}, logs)
        assert proc.returncode != 0
        assert "certificate signed by unknown authority" in logs["r3-build-without-ca/package"]
        assert "r3-build-without-ca/push" not in logs
        assert not list(no_ca.results.iterdir())
        assert _catalog(reg, auth) == ["mirror/tritonserver-cpu", "team/e2e/add-sub",
                                       "tools/triton-packager"]

        # Pulled back by digest through the engine, served, asked: run 3's model (version 1,
        # the artifact's scale), not run 2's (version 3, scale 3.0), though both were on the claim.
        t = time.monotonic()
        with _engine_trusts(reg):
            pulled = client.images.pull(f"{reg.host}/team/e2e/add-sub", tag=image_digest,
                                        auth_config={"username": "ci", "password": PASSWORD})
        images.append(f"{reg.host}/team/e2e/add-sub@{image_digest}")
        assert pulled.id == result["image_id"]
    (scale_file,) = python_example.rglob("scale.json")
    scale = float(json.loads(scale_file.read_text())["scale"])
    assert abs(scale - 3.0) > 0.5  # the two runs' models differ
    a = np.arange(4, dtype=np.float32)
    b = np.full(4, 0.5, dtype=np.float32)
    with serve(f"{reg.host}/team/e2e/add-sub@{image_digest}") as running:
        out0, out1 = infer_add_sub(running.http_url, a, b, version="1")
    np.testing.assert_allclose(out0, (a + b) * scale, rtol=1e-5)
    np.testing.assert_allclose(out1, (a - b) * scale, rtol=1e-5)
    TIMINGS["pull and serve"] = round(time.monotonic() - t, 1)
    TIMINGS["total"] = round(time.monotonic() - started, 1)
    print("rehearsal timings (s):", json.dumps(TIMINGS), file=sys.stderr)
