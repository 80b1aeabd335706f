"""deploy/tekton, checked without a cluster: Tekton's own v1 schemas, Kubernetes' schemas for the
Pod-level parts, and the rules the schemas cannot express (no shell, params reach the CLI as whole
args, credentials only from a dockerconfigjson Secret, buildah as Tekton's catalog runs it).

Schemas: tests/data/tekton/*.v1.json (Tekton's CRDs, reduced; see the README there) and the
Kubernetes schemas bundled in `kubernetes-validate` (offline).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from tekton_steps import find_references, resolve_steps, workspace_paths

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "tekton"
SCHEMAS = Path(__file__).resolve().parent / "data" / "tekton"
# The oldest Kubernetes the pinned Tekton supports (tektoncd/pipeline docs/install.md: 1.28 or later).
K8S_VERSION = "1.28"
TEKTON = "tekton.dev/v1"
CLI_COMMANDS = (["python", "-m", "packager"], ["triton-packager"])
BUILDAH_STORAGE = "/var/lib/containers"
SECRET_TYPE = "kubernetes.io/dockerconfigjson"
SECRET_KEY = ".dockerconfigjson"
# Step fields Tekton adds to a Container; a Pod has no place for them.
TEKTON_ONLY_STEP_FIELDS = frozenset({
    "displayName", "onError", "params", "ref", "results", "script", "stdoutConfig",
    "stderrConfig", "timeout", "when", "workspaces",
})
SECRET_LOOKING = re.compile(r"pass(word|wd)?|token|auth|secret|cred|api[-_]?key", re.IGNORECASE)
ONE_REFERENCE = re.compile(r"\$\([^()]*\)")
PARAM_NAME = re.compile(r"params(?:\.([A-Za-z_][A-Za-z0-9_-]*)|\[[\"']([^\"']+)[\"']\])")


def _load() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        with path.open(encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs.append((str(path.relative_to(DEPLOY)), doc))
    return docs


DOCS = _load()


def _id(entry: tuple[str, dict[str, Any]]) -> str:
    file, doc = entry
    meta = doc.get("metadata", {})
    return f"{file}:{doc.get('kind')}/{meta.get('name') or meta.get('generateName')}"


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc.get("apiVersion") == TEKTON and doc.get("kind") == kind]


TASKS = {doc["metadata"]["name"]: doc for doc in _of_kind("Task")}
PIPELINES = {doc["metadata"]["name"]: doc for doc in _of_kind("Pipeline")}
RUNS = _of_kind("PipelineRun")
SECRETS = {doc["metadata"]["name"]: doc for _, doc in DOCS
           if doc.get("apiVersion") == "v1" and doc.get("kind") == "Secret"}


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in a document, with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


def _referenced_params(doc: dict[str, Any]) -> set[str]:
    names = set()
    for _, text in _strings(doc.get("spec", {})):
        for expression in find_references(text):
            match = PARAM_NAME.match(expression)
            if match:
                names.add(match[1] or match[2])
    return names


# --- Tekton's schemas -------------------------------------------------------------------------


def closed(schema: Any) -> Any:
    """`schema` with every object that lists its properties closed (additionalProperties: false),
    unless Tekton marks it x-kubernetes-preserve-unknown-fields: what `kubectl apply`'s strict
    field validation does with unknown fields."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: ({n: closed(s) for n, s in value.items()} if key == "properties" else closed(value))
           for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@cache
def tekton_validator(kind: str) -> jsonschema.protocols.Validator:
    stored = json.loads((SCHEMAS / f"{kind.lower()}.v1.json").read_text(encoding="utf-8"))
    schema = closed(stored["schema"])
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def tekton_errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in tekton_validator(doc["kind"]).iter_errors(doc)]


def test_deploy_holds_the_flow() -> None:
    kinds = sorted({(doc.get("apiVersion"), doc.get("kind")) for _, doc in DOCS})
    assert kinds == [("tekton.dev/v1", "Pipeline"), ("tekton.dev/v1", "PipelineRun"),
                     ("tekton.dev/v1", "Task"), ("v1", "Secret")]
    assert set(TASKS) == {"triton-packager-setup", "triton-packager-train",
                          "triton-packager-package", "triton-packager-push"}
    assert set(PIPELINES) == {"triton-packager"}
    # The installable resources sit at the top; examples (Secret, PipelineRun) are in examples/.
    for file, doc in DOCS:
        in_examples = file.startswith("examples/")
        assert in_examples == (doc["kind"] in ("PipelineRun", "Secret")), file


def test_stored_schemas_name_their_source() -> None:
    for kind in ("task", "pipeline", "pipelinerun"):
        stored = json.loads((SCHEMAS / f"{kind}.v1.json").read_text(encoding="utf-8"))
        source = stored["source"]
        assert source["repository"] == "https://github.com/tektoncd/pipeline"
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
        assert source["path"] == f"config/300-crds/300-{kind}.yaml"
        assert source["version"] == "v1"
        # Reduced: only structural keywords remain (property names may be anything).
        keywords = set(source["kept"])
        assert set(_schema_keywords(stored["schema"])) <= keywords
        # The spec is structured, not a bare preserve-unknown-fields object.
        assert stored["schema"]["properties"]["spec"]["properties"]


def _schema_keywords(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield key
            if key == "properties":
                for sub in value.values():
                    yield from _schema_keywords(sub)
            else:
                yield from _schema_keywords(value)
    elif isinstance(schema, list):
        for sub in schema:
            yield from _schema_keywords(sub)


@pytest.mark.parametrize("entry", [e for e in DOCS if e[1].get("apiVersion") == TEKTON], ids=_id)
def test_valid_against_tektons_schema(entry: tuple[str, dict[str, Any]]) -> None:
    assert tekton_errors(entry[1]) == []


@pytest.mark.parametrize(("path", "value"), [
    (("spec", "steps", 0, "argz"), ["setup"]),          # a misspelled field
    (("spec", "params", 0, "type"), 5),                 # a wrong type
    (("spec", "workspaces", 0, "readOnly"), "yes"),     # a string for a boolean
], ids=["unknown-field", "wrong-type", "string-for-bool"])
def test_tekton_schema_refuses_broken_task(path: tuple[Any, ...], value: Any) -> None:
    doc = copy.deepcopy(TASKS["triton-packager-setup"])
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert tekton_errors(doc)


def test_tekton_schema_refuses_broken_when_expression() -> None:
    doc = copy.deepcopy(PIPELINES["triton-packager"])
    doc["spec"]["tasks"][0]["when"][0]["operator"] = ["in"]
    assert tekton_errors(doc)


# --- Kubernetes' schemas for the Pod-level parts ----------------------------------------------


def task_pod(task: dict[str, Any]) -> dict[str, Any]:
    """The Pod a TaskRun of `task` would get, as far as the Task decides it: one container per step
    (Tekton-only fields dropped), the Task's volumes, a volume and mount per workspace."""
    spec = copy.deepcopy(task["spec"])
    workspaces = workspace_paths(task)
    volumes = list(spec.get("volumes", []))
    volumes += [{"name": f"ws-{name}", "emptyDir": {}} for name in workspaces]
    containers = []
    for step in spec["steps"]:
        container = {k: v for k, v in step.items() if k not in TEKTON_ONLY_STEP_FIELDS}
        if "computeResources" in container:
            container["resources"] = container.pop("computeResources")
        container["volumeMounts"] = [*step.get("volumeMounts", []), *(
            {"name": f"ws-{name}", "mountPath": path} for name, path in workspaces.items())]
        containers.append(container)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": task["metadata"]["name"]},
            "spec": {"containers": containers, "volumes": volumes, "restartPolicy": "Never"}}


def k8s_validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kubernetes_schemas_are_bundled_for_the_version() -> None:
    # kubernetes-validate reads its schemas from the package: no network, no download.
    assert f"{K8S_VERSION}.0" in kubernetes_validate.utils.all_versions()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_pod_valid_for_kubernetes(name: str) -> None:
    k8s_validate(task_pod(TASKS[name]))


def test_kubernetes_schema_refuses_broken_step() -> None:
    pod = task_pod(TASKS["triton-packager-package"])
    pod["spec"]["containers"][0]["securityContext"]["privileged"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_validate(pod)


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_secret_valid_for_kubernetes_and_docker(name: str) -> None:
    secret = SECRETS[name]
    k8s_validate(secret)
    assert secret["type"] == SECRET_TYPE
    assert set(secret["data"]) == {SECRET_KEY}
    config = json.loads(base64.b64decode(secret["data"][SECRET_KEY], validate=True))
    assert isinstance(config["auths"], dict) and config["auths"]
    for registry, entry in config["auths"].items():
        user, _, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        assert registry and user and password


def test_volume_claim_templates_valid_for_kubernetes() -> None:
    templates = [ws["volumeClaimTemplate"] for run in RUNS for ws in run["spec"].get("workspaces", [])
                 if "volumeClaimTemplate" in ws]
    assert templates
    # Kubernetes' JSON schema types a quantity as a string or number only; its grammar is the
    # pattern Tekton's CRD carries for computeResources.
    step = tekton_validator("Task").schema["properties"]["spec"]["properties"]["steps"]["items"]
    quantity = step["properties"]["computeResources"]["properties"]["requests"]["additionalProperties"]
    for template in templates:
        k8s_validate({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": {"name": "claim"}, **template})
        for amount in template["spec"]["resources"]["requests"].values():
            jsonschema.validate(amount, quantity)


# --- Rules the schemas cannot express ---------------------------------------------------------


def test_no_script_and_no_shell() -> None:
    for file, doc in DOCS:
        assert "script" not in set(_keys(doc)), file
    for name, task in TASKS.items():
        for step in task["spec"]["steps"]:
            assert step["command"] in CLI_COMMANDS, (name, step["name"])
            assert all(isinstance(arg, str) for arg in step["args"]), (name, step["name"])
            assert "-c" not in step["args"], (name, step["name"])


@pytest.mark.parametrize("entry", [e for e in DOCS if e[1]["kind"] in ("Task", "Pipeline")], ids=_id)
def test_every_referenced_param_is_declared(entry: tuple[str, dict[str, Any]]) -> None:
    doc = entry[1]
    declared = {p["name"] for p in doc["spec"].get("params", [])}
    assert _referenced_params(doc) <= declared


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_param_is_used(name: str) -> None:
    task = TASKS[name]
    assert _referenced_params(task) == {p["name"] for p in task["spec"]["params"]}


def test_step_values_with_a_reference_are_exactly_one_reference() -> None:
    seen = 0
    for name, task in TASKS.items():
        for step in task["spec"]["steps"]:
            fields = [*step["command"], *step["args"], step["image"], step.get("workingDir", "")]
            fields += [e.get("value", "") for e in step.get("env", [])]
            for value in fields:
                if "$(" in value:
                    seen += 1
                    assert ONE_REFERENCE.fullmatch(value), (name, step["name"], value)
    assert seen
    # Pipeline params reach Task params whole, too.
    for pipeline in PIPELINES.values():
        for task in pipeline["spec"]["tasks"]:
            for param in task.get("params", []):
                if "$(" in param["value"]:
                    assert ONE_REFERENCE.fullmatch(param["value"]), (task["name"], param)


def test_no_secret_looking_params() -> None:
    for file, doc in DOCS:
        spec = doc.get("spec", {})
        params = [*spec.get("params", [])]
        params += [p for task in spec.get("tasks", []) for p in task.get("params", [])]
        for param in params:
            assert not SECRET_LOOKING.search(param["name"]), (file, param["name"])
        # Nor credentials written into a value (user:password@host).
        for path, text in _strings(spec):
            assert not re.search(r"://[^/\s@]+:[^/\s@]+@", text), (file, path)


def _step_flag(step: dict[str, Any], flag: str) -> str:
    args = step["args"]
    assert args.count(flag) == 1, (step["name"], flag)
    value: str = args[args.index(flag) + 1]
    return value


def _task_of(pipeline_task: dict[str, Any]) -> dict[str, Any]:
    return TASKS[pipeline_task["taskRef"]["name"]]


def _pipeline_task(pipeline: dict[str, Any], task_name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [t for t in pipeline["spec"]["tasks"]
                                   if t["taskRef"]["name"] == task_name]
    assert len(found) == 1, task_name
    return found[0]


def test_push_writes_the_results_chains_reads() -> None:
    push = TASKS["triton-packager-push"]
    assert {r["name"] for r in push["spec"]["results"]} >= {"IMAGE_URL", "IMAGE_DIGEST"}
    (step,) = push["spec"]["steps"]
    assert _step_flag(step, "--image-url-file") == "$(results.IMAGE_URL.path)"
    assert _step_flag(step, "--image-digest-file") == "$(results.IMAGE_DIGEST.path)"
    for pipeline in PIPELINES.values():
        pushed = _pipeline_task(pipeline, "triton-packager-push")["name"]
        results = {r["name"]: r["value"] for r in pipeline["spec"]["results"]}
        assert results == {"IMAGE_URL": f"$(tasks.{pushed}.results.IMAGE_URL)",
                           "IMAGE_DIGEST": f"$(tasks.{pushed}.results.IMAGE_DIGEST)"}


def test_no_docker_socket_and_no_host_paths() -> None:
    for file, doc in DOCS:
        for path, text in _strings(doc):
            assert "docker.sock" not in text, (file, path)
        assert "hostPath" not in set(_keys(doc)), file
    for task in TASKS.values():
        for step in task["spec"]["steps"]:
            assert "DOCKER_HOST" not in {e["name"] for e in step.get("env", [])}


def _runs_buildah(step: dict[str, Any]) -> bool:
    return step["args"][0] == "push" or (step["args"][0] == "package"
                                         and _step_flag(step, "--builder") == "buildah")


def test_buildah_steps_have_the_catalog_buildah_privileges_and_storage() -> None:
    # tektoncd/catalog task/buildah/0.10: securityContext.privileged on the step, and a volume
    # named varlibcontainers at /var/lib/containers.
    buildah_steps = 0
    for name, task in TASKS.items():
        storage = [w for w in task["spec"].get("workspaces", []) if w.get("mountPath") == BUILDAH_STORAGE]
        for step in task["spec"]["steps"]:
            if _runs_buildah(step):
                buildah_steps += 1
                assert step["securityContext"] == {"privileged": True}, name
                assert [w["name"] for w in storage] == ["varlibcontainers"], name
            else:
                assert "securityContext" not in step, (name, step["name"])
                assert not storage, name
    assert buildah_steps == 2


def test_package_and_push_share_buildah_storage_in_the_pipeline() -> None:
    for pipeline in PIPELINES.values():
        bindings = set()
        for task_name in ("triton-packager-package", "triton-packager-push"):
            task = _pipeline_task(pipeline, task_name)
            (binding,) = [w for w in task["workspaces"] if w["name"] == "varlibcontainers"]
            bindings.add((binding["workspace"], binding.get("subPath")))
        assert len(bindings) == 1


def test_pipeline_tasks_reference_tasks_here_with_their_params_and_workspaces() -> None:
    for pipeline in PIPELINES.values():
        pipeline_params = {p["name"]: p.get("type", "string") for p in pipeline["spec"]["params"]}
        pipeline_workspaces = {w["name"] for w in pipeline["spec"]["workspaces"]}
        names = {t["name"] for t in pipeline["spec"]["tasks"]}
        for ptask in pipeline["spec"]["tasks"]:
            assert ptask["taskRef"]["name"] in TASKS
            task = _task_of(ptask)
            declared = {p["name"]: p for p in task["spec"]["params"]}
            passed = {p["name"]: p["value"] for p in ptask.get("params", [])}
            assert set(passed) <= set(declared), ptask["name"]
            required = {n for n, p in declared.items() if "default" not in p}
            assert required <= set(passed), ptask["name"]
            for name, value in passed.items():
                (expression,) = find_references(value)
                source = PARAM_NAME.match(expression)
                assert source, (ptask["name"], value)
                source_name = source[1] or source[2]
                kind = declared[name].get("type", "string")
                assert pipeline_params[source_name] == kind, (ptask["name"], name)
                assert expression.endswith("[*]") == (kind == "array"), (ptask["name"], name)
            bound = {w["name"]: w["workspace"] for w in ptask.get("workspaces", [])}
            task_ws = {w["name"]: w for w in task["spec"].get("workspaces", [])}
            assert set(bound) <= set(task_ws), ptask["name"]
            assert {n for n, w in task_ws.items() if not w.get("optional")} <= set(bound)
            assert set(bound.values()) <= pipeline_workspaces, ptask["name"]
            assert set(ptask.get("runAfter", [])) <= names - {ptask["name"]}


def test_training_is_optional_and_exclusive_with_setup() -> None:
    for pipeline in PIPELINES.values():
        train = _pipeline_task(pipeline, "triton-packager-train")
        setup = _pipeline_task(pipeline, "triton-packager-setup")
        package = _pipeline_task(pipeline, "triton-packager-package")
        (train_when,) = train["when"]
        (setup_when,) = setup["when"]
        assert train_when["input"] == setup_when["input"] == "$(params.train)"
        assert (train_when["operator"], setup_when["operator"]) == ("in", "in")
        assert not set(train_when["values"]) & set(setup_when["values"])
        # Both guarded by one param with one value each: exactly one of them runs.
        assert set(train_when["values"]) | set(setup_when["values"]) == {"true", "false"}
        assert set(package["runAfter"]) == {train["name"], setup["name"]}
        # Both write the model directory package reads.
        model_dirs = {_param(t, "modelDir") for t in (train, setup, package)}
        assert model_dirs == {"$(params.modelDir)"}


def _param(ptask: dict[str, Any], name: str) -> str:
    (value,) = [p["value"] for p in ptask["params"] if p["name"] == name]
    return str(value)


def test_registry_credentials_come_only_from_a_dockerconfigjson_secret() -> None:
    push = TASKS["triton-packager-push"]
    (step,) = push["spec"]["steps"]
    authfile = _step_flag(step, "--authfile")
    # A literal path: the Secret's key as a file in a read-only workspace's mountPath.
    assert "$(" not in authfile
    (workspace,) = [w for w in push["spec"]["workspaces"] if authfile == f"{w.get('mountPath')}/{SECRET_KEY}"]
    assert workspace.get("readOnly") is True
    assert "env" not in step
    for pipeline in PIPELINES.values():
        ptask = _pipeline_task(pipeline, "triton-packager-push")
        (pipeline_ws,) = [w["workspace"] for w in ptask["workspaces"] if w["name"] == workspace["name"]]
        for run in RUNS:
            if run["spec"]["pipelineRef"]["name"] != pipeline["metadata"]["name"]:
                continue
            (binding,) = [w for w in run["spec"]["workspaces"] if w["name"] == pipeline_ws]
            secret = SECRETS[binding["secret"]["secretName"]]
            assert secret["type"] == SECRET_TYPE and SECRET_KEY in secret["data"]


def test_pipelinerun_binds_what_the_pipeline_declares() -> None:
    assert RUNS
    for run in RUNS:
        pipeline = PIPELINES[run["spec"]["pipelineRef"]["name"]]
        declared = {p["name"]: p for p in pipeline["spec"]["params"]}
        given = {p["name"] for p in run["spec"].get("params", [])}
        assert given <= set(declared)
        assert {n for n, p in declared.items() if "default" not in p} <= given
        bound = {w["name"] for w in run["spec"]["workspaces"]}
        assert bound == {w["name"] for w in pipeline["spec"]["workspaces"]}


def test_every_param_reaches_the_cli_as_one_whole_arg() -> None:
    # Hostile values: a shell would split, expand or run them; Tekton hands them over verbatim.
    for name, task in TASKS.items():
        values: dict[str, str | list[str]] = {}
        for p in task["spec"]["params"]:
            if p.get("type", "string") == "array":
                values[p["name"]] = [f"--{p['name']}-flag", f"value with spaces $(params.{p['name']})"]
            elif p["name"] != "packagerImage":
                values[p["name"]] = f"{p['name']}; rm -rf / `id` $(params.{p['name']}) \"'"
        (step,) = resolve_steps(task, values)
        for pname, value in values.items():
            if isinstance(value, list):
                start = step.args.index(value[0])
                assert list(step.args[start:start + len(value)]) == value, (name, pname)
            else:
                assert step.args.count(value) == 1, (name, pname)
