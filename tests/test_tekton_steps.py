"""tekton_steps: a Task's steps with variables substituted as Tekton substitutes them (pure, fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tekton_steps import (
    TektonSubstitutionError,
    WorkspaceMount,
    find_references,
    resolve_steps,
    result_paths,
    workspace_paths,
)

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "tekton"


def make_task(*steps: dict[str, Any], params: list[dict[str, Any]] | None = None,
              workspaces: list[dict[str, Any]] | None = None,
              results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"steps": list(steps)}
    if params is not None:
        spec["params"] = params
    if workspaces is not None:
        spec["workspaces"] = workspaces
    if results is not None:
        spec["results"] = results
    return {"apiVersion": "tekton.dev/v1", "kind": "Task", "metadata": {"name": "t"}, "spec": spec}


def step(*args: str, **fields: Any) -> dict[str, Any]:
    return {"name": "s", "image": "img", "command": ["tool"], "args": list(args), **fields}


PARAMS: list[dict[str, Any]] = [
    {"name": "a", "type": "string"},
    {"name": "b", "type": "string", "default": "bee"},
    {"name": "list", "type": "array", "default": ["x", "y"]},
]


def only(task: dict[str, Any], params: dict[str, Any], **kwargs: Any) -> Any:
    (resolved,) = resolve_steps(task, params, **kwargs)
    return resolved


def test_string_params_in_every_notation_and_defaults() -> None:
    task = make_task(step("$(params.a)", '$(params["a"])', "$(params['b'])", "pre-$(params.a)-post"),
                     params=PARAMS)
    assert only(task, {"a": "AY"}).args == ("AY", "AY", "bee", "pre-AY-post")
    assert only(task, {"a": "AY", "b": "given"}).args[2] == "given"


def test_array_param_expands_in_place_and_empty_expands_to_nothing() -> None:
    task = make_task(step("first", "$(params.list[*])", "last"), params=PARAMS)
    assert only(task, {"a": ""}).args == ("first", "x", "y", "last")
    assert only(task, {"a": "", "list": ["--flag", "v w"]}).args == ("first", "--flag", "v w", "last")
    assert only(task, {"a": "", "list": []}).args == ("first", "last")


def test_array_item_by_index() -> None:
    task = make_task(step("$(params.list[1])"), params=PARAMS)
    assert only(task, {"a": ""}).args == ("y",)
    with pytest.raises(TektonSubstitutionError, match="out of range"):
        only(make_task(step("$(params.list[2])"), params=PARAMS), {"a": ""})


def test_array_param_inside_a_string_is_refused() -> None:
    with pytest.raises(TektonSubstitutionError, match="whole command or args entry"):
        only(make_task(step("--x=$(params.list[*])"), params=PARAMS), {"a": ""})
    with pytest.raises(TektonSubstitutionError, match="whole command or args entry"):
        only(make_task(step("img", image="$(params.list)"), params=PARAMS), {"a": ""})


def test_one_pass_values_are_inserted_literally() -> None:
    task = make_task(step("$(params.a)", "$(params.b)"), params=PARAMS)
    hostile = "$(params.b); rm -rf / `id` \"'"
    assert only(task, {"a": hostile}).args == (hostile, "bee")


@pytest.mark.parametrize(("args", "message"), [
    (("$(params.nope)",), "unknown param 'nope'"),
    (("$(workspaces.nope.path)",), "unknown workspace 'nope'"),
    (("$(results.nope.path)",), "unknown result 'nope'"),
    (("$(context.taskRun.name)",), "unsupported reference"),
    (("$(params.a.key)",), "is a string param"),
    (("$(params.a",), "unterminated"),
    (("$(params.$(params.a))",), "unterminated or nested"),
], ids=["param", "workspace", "result", "context", "object-key", "unterminated", "nested"])
def test_unknown_references_are_refused(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(TektonSubstitutionError, match=message.replace("(", r"\(")):
        only(make_task(step(*args), params=PARAMS), {"a": ""})


@pytest.mark.parametrize(("values", "message"), [
    ({}, "'a' has no default"),
    ({"a": "", "c": "x"}, r"params \['c'\] are not declared"),
    ({"a": ["x"]}, "'a' is a string param"),
    ({"a": "", "list": "x y"}, "'list' is an array of strings"),
], ids=["missing", "undeclared", "array-for-string", "string-for-array"])
def test_bad_param_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(TektonSubstitutionError, match=message):
        only(make_task(step(), params=PARAMS), values)


@pytest.mark.parametrize("field", [{"script": "echo hi"}, {"onError": "continue"}, {"ref": {"name": "x"}}],
                         ids=["script", "onError", "stepaction"])
def test_unmodelled_step_fields_are_refused(field: dict[str, Any]) -> None:
    with pytest.raises(TektonSubstitutionError, match="not supported"):
        only(make_task(step(**field)), {})


def test_step_template_and_sidecars_are_refused() -> None:
    task = make_task(step())
    task["spec"]["stepTemplate"] = {"image": "x"}
    with pytest.raises(TektonSubstitutionError, match="stepTemplate"):
        only(task, {})
    task = make_task(step())
    task["spec"]["sidecars"] = [{"name": "side", "image": "x"}]
    with pytest.raises(TektonSubstitutionError, match="sidecars"):
        only(task, {})


def test_workspaces_and_results() -> None:
    workspaces: list[dict[str, Any]] = [
        {"name": "src"}, {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
        {"name": "cache", "optional": True},
    ]
    task = make_task(step("$(workspaces.src.path)", "$(workspaces.creds.path)",
                          "$(workspaces.cache.path)", "$(workspaces.cache.bound)",
                          "$(results.OUT.path)", workingDir="$(workspaces.src.path)"),
                     workspaces=workspaces, results=[{"name": "OUT"}])
    assert workspace_paths(task) == {"src": "/workspace/src", "creds": "/etc/creds",
                                     "cache": "/workspace/cache"}
    assert result_paths(task) == {"OUT": "/tekton/results/OUT"}
    everything = only(task, {})
    assert everything.args == ("/workspace/src", "/etc/creds", "/workspace/cache", "true",
                               "/tekton/results/OUT")
    assert everything.working_dir == "/workspace/src"
    assert everything.workspaces == (WorkspaceMount("src", "/workspace/src", False),
                                     WorkspaceMount("creds", "/etc/creds", True),
                                     WorkspaceMount("cache", "/workspace/cache", False))
    # An optional workspace left unbound: path "", bound "false", not mounted.
    partial = only(task, {}, workspaces={"src": "/w/src", "creds": "/etc/creds"},
                   results={"OUT": "/r/OUT"})
    assert partial.args == ("/w/src", "/etc/creds", "", "false", "/r/OUT")
    assert [m.name for m in partial.workspaces] == ["src", "creds"]
    with pytest.raises(TektonSubstitutionError, match=r"required but not bound \['creds'\]"):
        only(task, {}, workspaces={"src": "/w"})
    with pytest.raises(TektonSubstitutionError, match=r"unknown \['other'\]"):
        only(task, {}, workspaces={"src": "/w", "creds": "/c", "other": "/o"})


def test_substituted_fields_match_tekton_and_security_context_is_not() -> None:
    task = make_task(step("x", name="$(params.a)-step", image="$(params.a):1",
                          env=[{"name": "V", "value": "$(params.b)"}],
                          volumeMounts=[{"name": "$(params.a)", "mountPath": "/m/$(params.b)"}],
                          securityContext={"runAsUser": 0, "seLinuxOptions": {"user": "$(params.a)"}},
                          command=["$(params.list[*])"]),
                     params=PARAMS)
    s = only(task, {"a": "A"})
    assert (s.name, s.image, s.command, s.env) == ("A-step", "A:1", ("x", "y"), (("V", "bee"),))
    assert s.volume_mounts == ({"name": "A", "mountPath": "/m/bee"},)
    assert s.security_context == {"runAsUser": 0, "seLinuxOptions": {"user": "$(params.a)"}}


def test_find_references() -> None:
    assert find_references("a $(params.x) b $(workspaces.w.path)") == ["params.x", "workspaces.w.path"]
    assert find_references("no references, $ and ( alone") == []


IMAGE = "registry.example.com/ml/triton-packager@sha256:" + "0" * 64


def _build_task() -> dict[str, Any]:
    task: dict[str, Any] = yaml.safe_load((DEPLOY / "task-build.yaml").read_text(encoding="utf-8"))
    return task


def test_the_build_task_resolves_to_the_cli_contract() -> None:
    _, _, package, push, results = resolve_steps(_build_task(), {
        "packagerImage": IMAGE, "modelDir": "runs/u1/model", "registry": "127.0.0.1:5000/ml",
        "pushOptions": ["--label-x"]})
    assert [s.name for s in (package, push, results)] == ["package", "push", "results"]
    assert [s.name for s in resolve_steps(_build_task(), {
        "packagerImage": IMAGE, "modelDir": "m", "registry": "r.example.com"})][:2] == [
        "package-options", "push-options"]
    assert {s.image for s in (package, push, results)} == {IMAGE}
    assert push.command == ("python", "-m", "packager")
    assert push.args == ("push", "-o", "/packager-output/out", "--registry", "127.0.0.1:5000/ml",
                         "--authfile", "/workspace/dockerconfig/.dockerconfigjson",
                         "--tls-verify", "true",
                         "--image-url-file", "/tekton/results/IMAGE_URL",
                         "--image-digest-file", "/tekton/results/IMAGE_DIGEST", "--label-x")
    assert package.args[:3] == ("package", "runs/u1/model", "-o")
    assert package.working_dir == "/workspace/source"
    assert push.working_dir is None
    assert all(s.security_context == {"privileged": True} for s in (package, push, results))
    # Every declared workspace bound: the optional ones point buildah at the CA and the cache.
    assert dict(package.env) == {
        "REGISTRY_AUTH_FILE": "/workspace/dockerconfig/.dockerconfigjson",
        "SSL_CERT_DIR": "/workspace/ca", "TRITON_PACKAGER_BUILDAH_ROOT": "/workspace/cache",
        "TRITON_PACKAGER_BUILDAH_TLS_VERIFY": "true"}
    assert {m.name: (m.path, m.read_only) for m in push.workspaces} == {
        "source": ("/workspace/source", True), "dockerconfig": ("/workspace/dockerconfig", True),
        "ca": ("/workspace/ca", True), "cache": ("/workspace/cache", False)}
    assert results.args == ("tekton-results", "-o", "/packager-output/out", "--result-file",
                            "/tekton/results/RESULT", "--base-digest-file",
                            "/tekton/results/BASE_IMAGE_DIGEST", "--remove-image")
    # A registry base is pulled fresh even when a bound cache holds its name (another run's
    # image could be there); the package options come after and cannot undo it (checked).
    assert package.args[-2:] == ("--pull", "always")


def test_unbound_ca_and_cache_leave_buildah_its_defaults() -> None:
    _, _, package, *_ = resolve_steps(_build_task(), {
        "packagerImage": IMAGE, "modelDir": "m", "registry": "r.example.com"},
        workspaces={"source": "/workspace/source", "dockerconfig": "/workspace/dockerconfig"})
    env = dict(package.env)
    # "" is no SSL_CERT_DIR (Go's system roots) and no --root (/var/lib/containers, the emptyDir).
    assert env["SSL_CERT_DIR"] == "" and env["TRITON_PACKAGER_BUILDAH_ROOT"] == ""
    from packager.executor.images.buildah import Storage

    assert Storage.from_env(env).root is None


# --- a hostile param value reaches the packager as one literal argument, which refuses it ------

HOSTILE = ["$(params.registry)", "reg.example.com'; rm -rf /", 'reg.example.com"', "reg.example.com\nx",
           "$(cat /workspace/dockerconfig/.dockerconfigjson)"]


@pytest.mark.parametrize("value", HOSTILE, ids=["reference", "single-quote", "double-quote",
                                                "newline", "command"])
def test_a_hostile_registry_param_is_one_argument_and_refused(
        value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from packager.cli import main
    from packager.result import ModelEntry, ResultDocument

    _, _, _, push, _ = resolve_steps(_build_task(), {"registry": value, "packagerImage": IMAGE,
                                               "modelDir": "m"},
                               workspaces={"source": str(tmp_path),
                                           "dockerconfig": str(tmp_path / "cfg")},
                               results={"IMAGE_URL": str(tmp_path / "url"),
                                        "IMAGE_DIGEST": str(tmp_path / "digest"),
                                        "RESULT": str(tmp_path / "result"),
                                        "BASE_IMAGE_DIGEST": str(tmp_path / "base")})
    assert value in push.args  # substituted once, as one list entry: no shell splits it
    args = [str(tmp_path / "out") if a == "/packager-output/out" else a for a in push.args]
    (tmp_path / "out").mkdir()
    before = ResultDocument("add-sub-1:abc", (ModelEntry("add-sub", (1,), "python"),),
                            "base:1", "0" * 64).to_json()
    (tmp_path / "out" / "result.json").write_text(before)
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--registry" in err and "fix:" in err and "Traceback" not in err
    assert (tmp_path / "out" / "result.json").read_text() == before
    assert not (tmp_path / "url").exists() and not (tmp_path / "digest").exists()


@pytest.mark.parametrize("value", ["{{ Name }}:'1'", '{{ Name }}:"1"', "{{ Name }}:1\n",
                                   "$(params.imageName)", "{{ Name }}:$(date)"])
def test_a_hostile_image_name_param_is_refused_before_anything_is_written(
        value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python_model: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from packager.cli import main

    _, _, package, _, _ = resolve_steps(_build_task(), {"imageName": value, "packagerImage": IMAGE,
                                                  "modelDir": str(python_model),
                                                  "registry": "r.example.com"},
                                  workspaces={"source": str(tmp_path),
                                              "dockerconfig": str(tmp_path / "cfg")})
    assert value in package.args
    args = [str(tmp_path / "out") if a == "/packager-output/out" else a for a in package.args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--image-name" in err and "fix:" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
