"""`tekton-check` and `tekton-results` (packager/tekton.py): the Pipeline's first step and the
build Task's last, run as the CLI runs them (no cluster, no engine)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scripts import load_script
from tekton_steps import kubernetes_volume

from packager import tekton
from packager.cli import main
from packager.result import ModelEntry, ResultDocument

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
AUTH = json.dumps({"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNz"}}}).encode()


@pytest.fixture
def mounts(tmp_path: Path) -> dict[str, Path]:
    return {"dockerconfig": kubernetes_volume(tmp_path / "dockerconfig", {".dockerconfigjson": AUTH}),
            "ca": kubernetes_volume(tmp_path / "ca", {"ca.crt": PEM})}


def _check(mounts: dict[str, Path], **params: str) -> list[str]:
    values = {"train": "false", "artifact": "https://models.example.com/m.zip", "project": "",
              "registry": "registry.example.com/ml", "tls-verify": "true",
              "base-image": "nvcr.io/nvidia/tritonserver:26.07-py3",
              "image-name": "{{ Name }}:{{ Version }}", "dockerconfig": str(mounts["dockerconfig"]),
              "ca-dir": str(mounts["ca"])}
    values.update({k.replace("_", "-"): v for k, v in params.items()})
    args = ["tekton-check"]
    for key, value in values.items():
        args += [f"--{key}", value]
    return args


def test_good_params_and_mounted_workspaces_pass(mounts: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_check(mounts)) == 0
    assert main(_check(mounts, train="true", project="repos/wine", artifact="")) == 0
    assert main(_check(mounts, ca_dir="")) == 0  # the optional ca workspace not bound
    assert main(_check(mounts, base_image="oci-archive:/workspace/source/base.tar:base:1")) == 0
    # Model images beside the mirror, never in the base's repository: fine.
    assert main(_check(mounts, registry="registry.internal/models",
                       base_image="registry.internal/mirror/tritonserver:26.07-py3")) == 0
    assert main(_check(mounts, registry="registry.internal", image_name="{{ Name }}:1",
                       base_image="registry.internal/mirror/tritonserver:26.07-py3")) == 0


@pytest.mark.parametrize(("params", "named"), [
    ({"train": "True"}, "param train = 'True': must be exactly \"true\" or \"false\""),
    ({"train": "yes"}, "param train = 'yes'"),
    ({"train": ""}, "param train = ''"),
    ({"train": "true", "project": ""}, "param project"),
    ({"train": "false", "artifact": " "}, "param artifact"),
    ({"tls_verify": "TRUE"}, "param tlsVerify"),
    ({"registry": "https://registry.example.com"}, "param registry: --registry"),
    ({"registry": "Registry.example.com"}, "param registry"),
    ({"base_image": "nvcr.io/NVIDIA/tritonserver:26.07-py3"}, "param baseImage"),
    ({"image_name": "{{ Nme }}:1"}, "param imageName"),
    ({"image_name": "Model@sha256:" + "0" * 64}, "param imageName"),
    # A push into the base image's repository, for any model name the template can give.
    ({"registry": "registry.internal/mirror", "image_name": "tritonserver:26.07-py3",
      "base_image": "registry.internal/mirror/tritonserver:26.07-py3"},
     "can name the base image's repository 'registry.internal/mirror/tritonserver'"),
    ({"registry": "registry.internal/mirror", "image_name": "{{ Name }}:{{ RandomUUID }}",
      "base_image": "registry.internal/mirror/tritonserver:26.07-py3"}, "param imageName"),
    ({"registry": "registry.internal", "image_name": "mirror/{{ Name }}-{{ Version }}:1",
      "base_image": "registry.internal/mirror/tritonserver-7:26.07-py3"}, "param imageName"),
    ({"registry": "docker.io", "image_name": "{{ Name }}:1", "base_image": "ubuntu:24.04"},
     "param imageName"),
    ({"image_name": "triton-packager/weights:{{ RandomUUID }}"}, "weights images"),
], ids=lambda v: str(v)[:40])
def test_a_bad_param_fails_the_run_naming_it(mounts: dict[str, Path], params: dict[str, str],
                                             named: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_check(mounts, **params)) == 2
    err = capsys.readouterr().err
    assert named in err and "fix:" in err and "Traceback" not in err


def test_a_missing_or_wrong_secret_fails_naming_the_workspace(
        tmp_path: Path, mounts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    wrong = kubernetes_volume(tmp_path / "opaque", {"password": b"x"})
    assert main(_check(mounts, dockerconfig=str(wrong))) == 2
    assert "workspace dockerconfig has no key .dockerconfigjson" in capsys.readouterr().err
    bad = kubernetes_volume(tmp_path / "bad", {".dockerconfigjson": b"{not json"})
    assert main(_check(mounts, dockerconfig=str(bad))) == 2
    err = capsys.readouterr().err
    assert "workspace dockerconfig: the auth file is not JSON" in err and "not json" not in err


def test_a_ca_workspace_without_a_certificate_fails_naming_it(
        tmp_path: Path, mounts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    empty = kubernetes_volume(tmp_path / "empty", {"ca.crt": b"not a certificate"})
    assert main(_check(mounts, ca_dir=str(empty))) == 2
    assert "workspace ca: ca.crt holds no PEM certificate" in capsys.readouterr().err
    # The ..data directory and the timestamped one are Kubernetes' own, not keys.
    assert [p.name for p in tekton.ca_files(mounts["ca"])] == ["ca.crt"]


def _result(**changes: Any) -> ResultDocument:
    doc = ResultDocument("registry.example.com/ml/add-sub:1", (ModelEntry("add-sub", (1,), "python"),),
                         "nvcr.io/nvidia/tritonserver:26.07-py3", "a" * 64, image_id="sha256:" + "b" * 64,
                         pushed_digest="sha256:" + "c" * 64,
                         pushed_image="registry.example.com/ml/add-sub@sha256:" + "c" * 64,
                         base_image_id="sha256:" + "d" * 64, builder="buildah",
                         warnings=("w" * 5000,))
    return doc if not changes else ResultDocument(**{**doc.__dict__, **changes})


def test_results_are_an_object_of_strings_within_the_termination_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from packager.executor.images import buildah

    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text(_result().to_json())
    seen: list[str] = []

    def inspect(reference: str, storage: object) -> dict[str, str]:
        seen.append(reference)
        return {"FromImageDigest": "sha256:" + "e" * 64}

    monkeypatch.setattr(buildah, "_inspect", inspect)
    assert main(["tekton-results", "-o", str(out), "--result-file", str(tmp_path / "RESULT"),
                 "--base-digest-file", str(tmp_path / "BASE")]) == 0
    assert seen == ["nvcr.io/nvidia/tritonserver:26.07-py3"]
    obj = json.loads((tmp_path / "RESULT").read_text())
    assert list(obj) == list(tekton.RESULT_PROPERTIES)
    assert all(isinstance(v, str) for v in obj.values())
    assert obj["pushed_digest"] == "sha256:" + "c" * 64 and obj["model_version"] == "1"
    assert (tmp_path / "BASE").read_text() == "sha256:" + "e" * 64
    # The 5000-character warning stayed out; what was written fits Tekton's 4096 bytes.
    size = tekton.termination_message_size({"RESULT": (tmp_path / "RESULT").read_text(),
                                            "BASE_IMAGE_DIGEST": (tmp_path / "BASE").read_text()})
    assert size <= tekton.RESULTS_BUDGET < tekton.TERMINATION_MESSAGE_MAX


def test_results_without_a_base_digest_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from packager.executor.images import buildah

    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text(_result().to_json())
    monkeypatch.setattr(buildah, "_inspect", lambda reference, storage: None)
    assert main(["tekton-results", "-o", str(out), "--result-file", str(tmp_path / "R"),
                 "--base-digest-file", str(tmp_path / "B")]) == 2
    assert "has no manifest digest" in capsys.readouterr().err
    assert not (tmp_path / "R").exists() and not (tmp_path / "B").exists()


def test_the_results_budget_counts_the_results_push_wrote_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Tekton's entrypoint ends the results step by reading every declared result file that
    exists (pkg/entrypoint/entrypointer.go, readResultsFromDisk), so IMAGE_URL and IMAGE_DIGEST
    from push are in that step's termination message too. A result that fits only without them
    is refused."""
    from packager.executor.images import buildah

    monkeypatch.setattr(buildah, "_inspect",
                        lambda reference, storage: {"FromImageDigest": "sha256:" + "e" * 64})
    digest = "sha256:" + "c" * 64

    # Many models, long names and tags (each within the reference grammar's limits): the
    # RESULT object near its largest.
    models = tuple(ModelEntry(f"model-{i:02d}-" + "n" * 20, (1,), "python") for i in range(16))
    base = "registry.internal/" + "mirror/" * 30 + "tritonserver:" + "t" * 120
    repository = "registry.example.com/" + "m" * 230

    def sizes(tag: int) -> tuple[int, int, ResultDocument]:
        image = f"{repository}:{'v' * tag}"
        doc = _result(image=image, pushed_image=f"{repository}@{digest}", models=models,
                      base_image=base)
        obj = tekton.result_object(doc.to_json())
        own = {"RESULT": json.dumps(obj, separators=(",", ":")), "BASE_IMAGE_DIGEST": digest}
        every = {"IMAGE_URL": image, "IMAGE_DIGEST": digest, **own}
        return (tekton.termination_message_size(own), tekton.termination_message_size(every),
                doc)

    own, every, largest = sizes(128)
    # With the reference grammar's limits (255-character names, 128-character tags) and
    # VALUE_MAX, the largest message still fits the budget ...
    assert every <= tekton.RESULTS_BUDGET
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text(largest.to_json())
    assert main(["tekton-results", "-o", str(out), "--result-file", str(tmp_path / "R"),
                 "--base-digest-file", str(tmp_path / "B")]) == 0
    # ... and the count includes IMAGE_URL and IMAGE_DIGEST: with a budget the step's own two
    # results fit but the whole message does not, the results are refused.
    monkeypatch.setattr(tekton, "RESULTS_BUDGET", own)
    (tmp_path / "R").unlink()
    assert main(["tekton-results", "-o", str(out), "--result-file", str(tmp_path / "R"),
                 "--base-digest-file", str(tmp_path / "B")]) == 2
    assert "the results take" in capsys.readouterr().err
    assert not (tmp_path / "R").exists()


def test_the_build_tasks_tls_verify_reaches_buildahs_pull() -> None:
    from packager.errors import InputError
    from packager.executor.images import buildah as bb

    assert bb._pull_tls_flags({bb.ENV_TLS_VERIFY: "false"}) == ["--tls-verify=false"]
    assert bb._pull_tls_flags({bb.ENV_TLS_VERIFY: "true"}) == []
    assert bb._pull_tls_flags({}) == []
    with pytest.raises(InputError, match="TRITON_PACKAGER_BUILDAH_TLS_VERIFY"):
        bb._pull_tls_flags({bb.ENV_TLS_VERIFY: "no"})


def test_an_unreachable_registry_fails_the_check_naming_the_param(
        mounts: dict[str, Path], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.create_server(("127.0.0.1", 0)) as server:
        up = server.getsockname()[1]
        assert main([*_check(mounts, registry=f"127.0.0.1:{up}/ml",
                             base_image=f"127.0.0.1:{up}/mirror/base:1"), "--reach"]) == 0
        assert main([*_check(mounts, registry=f"127.0.0.1:{port}/ml",
                             base_image=f"127.0.0.1:{up}/mirror/base:1"), "--reach"]) == 2
        err = capsys.readouterr().err
        assert f"param registry: the registry 127.0.0.1:{port} cannot be reached" in err
        assert main([*_check(mounts, registry=f"127.0.0.1:{up}/ml",
                             base_image=f"127.0.0.1:{port}/mirror/base:1"), "--reach"]) == 2
        assert "param baseImage" in capsys.readouterr().err
        # Behind a proxy the registries are not reached directly: not probed.
        tekton.reach_registries(f"127.0.0.1:{port}/ml", "base:1",
                                environ={"HTTPS_PROXY": "http://proxy.example.com:3128"})
    assert tekton._host_port("nvcr.io/nvidia/tritonserver:26.07-py3") == ("nvcr.io", 443)
    assert tekton._host_port("ubuntu:24.04") is None


@pytest.mark.parametrize(("reference", "where"), [
    ("[::1]:5000/ml/x", ("::1", 5000)),
    ("[::1]/ml/x", ("::1", 443)),
    ("[fe80::1:2]:8443/mirror/base:1", ("fe80::1:2", 8443)),
    ("127.0.0.1:5000/ml/x", ("127.0.0.1", 5000)),
    ("localhost/x", ("localhost", 443)),
    ("registry.example.com:5443/ml/x:1", ("registry.example.com", 5443)),
])
def test_registry_host_and_port_of_a_reference(reference: str, where: tuple[str, int]) -> None:
    # An IPv6 literal keeps its port (it was read as "::1]:5000" on port 443).
    assert tekton._host_port(reference) == where


def test_an_ipv6_registry_is_reached_on_its_port(mounts: dict[str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        up = server.getsockname()[1]
        tekton.reach_registries(f"[::1]:{up}/ml", f"[::1]:{up}/mirror/base:1", environ={})


@pytest.mark.parametrize(("target", "words"), [
    ("triton-packager", "names no registry"),
    ("registry.example.com/ml/triton-packager@sha256:" + "0" * 64, "names a digest"),
    ("Registry.example.com/ml/triton-packager", "has upper-case letters"),
    ("registry.example.com/ML/triton-packager", "not a valid Docker image reference"),
    ("myreg/triton-packager", "no dot and no port"),
])
def test_the_step_image_push_refuses_a_bad_target_before_building(target: str, words: str) -> None:
    build = load_script("deploy/image/build.py", "packager_image_build")
    with pytest.raises(build.ImageBuildError, match=words):
        build.push(target, environ={})


# --- the array params: an allow-list; the step image: digest-pinned -----------------------------

@pytest.mark.parametrize(("param", "words"), [
    ("packageOptions", []),
    ("packageOptions", ["--label", "team=ml", "--platform", "linux/amd64", "--no-cache"]),
    ("packageOptions", ["--label=team=ml", "--pip-index-url", "https://pypi.internal/simple",
                        "--conda-channel", "https://conda.internal/c", "--max-batch-size", "8"]),
    ("pushOptions", []),
    ("pushOptions", ["--json"]),
])
def test_allowed_options_pass(param: str, words: list[str]) -> None:
    assert main(["tekton-options", param, "--", *words]) == 0


@pytest.mark.parametrize(("param", "words", "named"), [
    # What the Task sets, or what reaches the privileged build beyond the model's own needs.
    ("packageOptions", ["--template-dir", "/workspace/source/t"], "'--template-dir'"),
    ("packageOptions", ["--template-dir=/workspace/source/t"], "'--template-dir=/workspace"),
    ("packageOptions", ["--templ", "/t"], "'--templ'"),  # argparse would expand it
    ("packageOptions", ["--tag", "registry.internal/mirror/tritonserver:26.07-py3"], "'--tag'"),
    ("packageOptions", ["--base-image", "evil:1"], "'--base-image'"),
    ("packageOptions", ["--builder", "docker"], "'--builder'"),
    ("packageOptions", ["--pull", "missing"], "'--pull'"),
    ("packageOptions", ["--image-name", "x:1"], "'--image-name'"),
    ("packageOptions", ["-o", "/tmp/o"], "'-o'"),
    ("packageOptions", ["--ca-bundle", "/workspace/dockerconfig/.dockerconfigjson"],
     "'--ca-bundle'"),
    ("packageOptions", ["/workspace/dockerconfig"], "not an option"),  # another MODEL_DIR
    ("packageOptions", ["--label"], "needs a value"),
    ("packageOptions", ["--label", "--template-dir", "/t"], "needs a value"),
    ("packageOptions", ["--no-cache=yes"], "takes no value"),
    ("packageOptions", ["--label", "io.triton-packager.weights.base-id=sha256:x"],
     "the packager's own"),
    ("pushOptions", ["--registry", "registry.internal/mirror"], "'--registry'"),
    ("pushOptions", ["--tls-verify", "false"], "'--tls-verify'"),
    ("pushOptions", ["--authfile", "/tmp/a"], "'--authfile'"),
    ("pushOptions", ["--builder", "docker"], "'--builder'"),
    ("pushOptions", ["--image-url-file", "/tekton/results/RESULT"], "'--image-url-file'"),
    ("pushOptions", ["--", "--registry", "x"], "'--'"),
])
def test_options_outside_the_allow_list_fail_naming_the_param(
        param: str, words: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tekton-options", param, "--", *words]) == 2
    err = capsys.readouterr().err
    assert f"param {param} = {named}" in err or (f"param {param}" in err and named in err)
    assert "fix:" in err and "Traceback" not in err


def test_the_build_task_stops_at_a_forbidden_option_before_its_privileged_steps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml
    from tekton_steps import resolve_steps

    task = yaml.safe_load((Path(__file__).resolve().parent.parent / "deploy/tekton/task-build.yaml")
                          .read_text())
    steps = resolve_steps(task, {"packagerImage": "r.example.com/p@sha256:" + "0" * 64,
                                 "modelDir": "m", "registry": "r.example.com/ml",
                                 "packageOptions": ["--template-dir", "/workspace/source/t"],
                                 "pushOptions": ["--tls-verify", "false"]},
                          workspaces={"source": str(tmp_path), "dockerconfig": str(tmp_path)})
    first, second = steps[0], steps[1]
    assert first.security_context.get("privileged") is None
    assert main(list(first.args)) == 2
    assert "param packageOptions = '--template-dir'" in capsys.readouterr().err
    assert main(list(second.args)) == 2
    assert "param pushOptions = '--tls-verify'" in capsys.readouterr().err


@pytest.mark.parametrize(("image", "ok"), [
    ("registry.example.com/ml/triton-packager@sha256:" + "a" * 64, True),
    ("registry.example.com/ml/triton-packager:1.0@sha256:" + "a" * 64, True),
    ("registry.example.com/ml/triton-packager:1.0", False),
    ("registry.example.com/ml/triton-packager", False),
    ("registry.example.com/ml/triton-packager@sha256:" + "a" * 63, False),
    ("evil.example.com/x@sha256:" + "A" * 64, False),
])
def test_the_step_image_must_be_digest_pinned(mounts: dict[str, Path], image: str, ok: bool,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_check(mounts), "--packager-image", image]) == (0 if ok else 2)
    if not ok:
        assert "param packagerImage" in capsys.readouterr().err
