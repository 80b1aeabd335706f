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
from scripts import load_script
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
RUN_MODEL_DIR = "runs/$(context.pipelineRun.uid)/model"
BUILD = "triton-packager-build"
# The build Task's first steps: its array params checked against the allow-list.
OPTION_STEPS = ("package-options", "push-options")
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
CHECK = load_script("deploy/tekton/check.py", "tekton_check_pin")  # its rules, its strings()


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
    for _, text in CHECK.strings(doc.get("spec", {})):
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
                     ("tekton.dev/v1", "Task"), ("v1", "ConfigMap"), ("v1", "PersistentVolumeClaim"),
                     ("v1", "Secret"), ("v1", "ServiceAccount")]
    assert set(TASKS) == {"triton-packager-check", "triton-packager-setup", "triton-packager-train",
                          "triton-packager-build"}
    assert set(PIPELINES) == {"triton-packager"}
    # The installable resources sit at the top; examples (Secret, PipelineRun, ...) in examples/.
    for file, doc in DOCS:
        in_examples = file.startswith("examples/")
        assert in_examples == (doc["apiVersion"] == "v1" or doc["kind"] == "PipelineRun"), file


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
    doc["spec"]["tasks"][1]["when"][0]["operator"] = ["in"]
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
    pod = task_pod(TASKS["triton-packager-build"])
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
    # Pipeline params reach Task params whole, too; the one composed value is the per-run model
    # directory, from the PipelineRun's uid (Tekton's, not the user's).
    for pipeline in PIPELINES.values():
        for task in pipeline["spec"]["tasks"]:
            for param in task.get("params", []):
                if "$(" in param["value"] and param["value"] != RUN_MODEL_DIR:
                    assert ONE_REFERENCE.fullmatch(param["value"]), (task["name"], param)


def test_no_secret_looking_params() -> None:
    for file, doc in DOCS:
        spec = doc.get("spec", {})
        params = [*spec.get("params", [])]
        params += [p for task in spec.get("tasks", []) for p in task.get("params", [])]
        for param in params:
            assert not SECRET_LOOKING.search(param["name"]), (file, param["name"])
        # Nor credentials written into a value (user:password@host).
        for path, text in CHECK.strings(spec):
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


def test_the_building_task_writes_the_results_chains_reads() -> None:
    # Tekton Chains reads IMAGE_URL and IMAGE_DIGEST of the TaskRun that built the image: the
    # build Task both builds and pushes, so its TaskRun describes the build.
    build = TASKS[BUILD]
    results = {r["name"]: r for r in build["spec"]["results"]}
    assert set(results) == {"IMAGE_URL", "IMAGE_DIGEST", "BASE_IMAGE_DIGEST", "RESULT"}
    push = _step_named(build, "push")
    assert _step_flag(push, "--image-url-file") == "$(results.IMAGE_URL.path)"
    assert _step_flag(push, "--image-digest-file") == "$(results.IMAGE_DIGEST.path)"
    done = _step_named(build, "results")
    assert _step_flag(done, "--result-file") == "$(results.RESULT.path)"
    assert _step_flag(done, "--base-digest-file") == "$(results.BASE_IMAGE_DIGEST.path)"
    # RESULT is an object of strings: the properties the packager writes, in its order.
    from packager.tekton import RESULT_PROPERTIES

    assert results["RESULT"]["type"] == "object"
    assert list(results["RESULT"]["properties"]) == list(RESULT_PROPERTIES)
    assert all(p == {"type": "string"} for p in results["RESULT"]["properties"].values())
    for pipeline in PIPELINES.values():
        built = _pipeline_task(pipeline, BUILD)["name"]
        got = {r["name"]: r["value"] for r in pipeline["spec"]["results"]}
        assert got == {"IMAGE_URL": f"$(tasks.{built}.results.IMAGE_URL)",
                       "IMAGE_DIGEST": f"$(tasks.{built}.results.IMAGE_DIGEST)",
                       "BASE_IMAGE_DIGEST": f"$(tasks.{built}.results.BASE_IMAGE_DIGEST)",
                       "RESULT": f"$(tasks.{built}.results.RESULT[*])"}


def _step_named(task: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in task["spec"]["steps"] if s["name"] == name]
    return step


def test_no_docker_socket_and_no_host_paths() -> None:
    for file, doc in DOCS:
        for path, text in CHECK.strings(doc):
            assert "docker.sock" not in text, (file, path)
        assert "hostPath" not in set(_keys(doc)), file
    for task in TASKS.values():
        for step in task["spec"]["steps"]:
            assert "DOCKER_HOST" not in {e["name"] for e in step.get("env", [])}


def _runs_buildah(step: dict[str, Any]) -> bool:
    return step["args"][0] == "push" or (step["args"][0] == "package"
                                         and _step_flag(step, "--builder") == "buildah")


def test_buildah_steps_have_the_catalog_buildah_privileges_and_per_pod_storage() -> None:
    # tektoncd/catalog task/buildah/0.9: securityContext.privileged on the step, and
    # /var/lib/containers on a per-pod emptyDir volume named varlibcontainers.
    buildah_steps = 0
    for name, task in TASKS.items():
        volumes = {v["name"]: v for v in task["spec"].get("volumes", [])}
        for step in task["spec"]["steps"]:
            mounts = {m["mountPath"]: m["name"] for m in step.get("volumeMounts", [])}
            if name == BUILD and step["name"] in OPTION_STEPS:
                # The option checks come first, unprivileged, without the store.
                assert step["securityContext"]["runAsNonRoot"] is True
                assert step["securityContext"]["allowPrivilegeEscalation"] is False
                assert "privileged" not in step["securityContext"] and not mounts
            elif name == BUILD:
                buildah_steps += 1
                assert step["securityContext"] == {"privileged": True}, step["name"]
                assert mounts[BUILDAH_STORAGE] == "varlibcontainers"
                assert volumes["varlibcontainers"] == {"name": "varlibcontainers", "emptyDir": {}}
                env = {e["name"]: e["value"] for e in step["env"]}
                # The optional cache workspace, when bound, is the storage instead ("" unbound).
                assert env["TRITON_PACKAGER_BUILDAH_ROOT"] == "$(workspaces.cache.path)"
            else:
                # No privileges, no capabilities, no image store.
                assert step["securityContext"]["allowPrivilegeEscalation"] is False, name
                assert step["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name
                assert "privileged" not in step["securityContext"], name
                assert not mounts and not volumes, name
        workspace_paths = {w.get("mountPath") for w in task["spec"].get("workspaces", [])}
        assert BUILDAH_STORAGE not in workspace_paths, name
    assert buildah_steps == 3


def test_only_the_build_task_can_reach_the_image_store_the_secret_and_the_ca() -> None:
    # By layout: the cache, Secret and CA workspaces are bound to check and build only; train and
    # setup (untrusted training code) bind `shared` alone, and build mounts it read-only.
    for pipeline in PIPELINES.values():
        by_task = {t["name"]: {w["workspace"] for w in t.get("workspaces", [])}
                   for t in pipeline["spec"]["tasks"]}
        assert by_task["train"] == {"shared"}
        # setup downloads the artifact: the CA (public certificates) for an internal server.
        assert by_task["setup"] == {"shared", "ca"}
        assert by_task["check"] == {"dockerconfig", "ca"}
        assert by_task["build"] == {"shared", "dockerconfig", "ca", "buildCache"}
        optional = {w["name"] for w in pipeline["spec"]["workspaces"] if w.get("optional")}
        assert optional == {"ca", "buildCache"}
    source = [w for w in TASKS[BUILD]["spec"]["workspaces"] if w["name"] == "source"]
    assert source == [{"name": "source", "description": source[0]["description"], "readOnly": True}]
    # The packager's output (result.json, what push reads) is on the build pod's own emptyDir.
    for step in TASKS[BUILD]["spec"]["steps"][len(OPTION_STEPS):]:
        assert _step_flag(step, "-o") == "/packager-output/out"
        assert {"name": "output", "mountPath": "/packager-output"} in step["volumeMounts"]


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
                if value == RUN_MODEL_DIR:
                    assert declared[name].get("type", "string") == "string"
                    continue
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
            # An optional Pipeline workspace may be left unbound: only optional Task workspaces
            # may take it (tektoncd/pipeline docs/workspaces.md, "Optional Workspaces").
            optional = {w["name"] for w in pipeline["spec"]["workspaces"] if w.get("optional")}
            for task_ws_name, pipeline_ws_name in bound.items():
                if pipeline_ws_name in optional:
                    assert task_ws[task_ws_name].get("optional"), (ptask["name"], task_ws_name)
            assert set(bound.values()) <= pipeline_workspaces, ptask["name"]
            assert set(ptask.get("runAfter", [])) <= names - {ptask["name"]}


def test_training_is_optional_and_exclusive_with_setup_after_the_check() -> None:
    for pipeline in PIPELINES.values():
        check = _pipeline_task(pipeline, "triton-packager-check")
        train = _pipeline_task(pipeline, "triton-packager-train")
        setup = _pipeline_task(pipeline, "triton-packager-setup")
        build = _pipeline_task(pipeline, BUILD)
        (train_when,) = train["when"]
        (setup_when,) = setup["when"]
        assert train_when["input"] == setup_when["input"] == "$(params.train)"
        assert (train_when["operator"], setup_when["operator"]) == ("in", "in")
        assert not set(train_when["values"]) & set(setup_when["values"])
        # Both guarded by one param with one value each, and the check refuses any other value:
        # exactly one of them runs.
        assert set(train_when["values"]) | set(setup_when["values"]) == {"true", "false"}
        assert _param(check, "train") == "$(params.train)"
        assert train["runAfter"] == setup["runAfter"] == [check["name"]]
        assert "runAfter" not in check and "when" not in check
        assert set(build["runAfter"]) == {train["name"], setup["name"]}
        # Both write, and build reads, this run's own model directory.
        model_dirs = {_param(t, "modelDir") for t in (train, setup, build)}
        assert model_dirs == {RUN_MODEL_DIR}
        assert "modelDir" not in {p["name"] for p in pipeline["spec"]["params"]}


def _param(ptask: dict[str, Any], name: str) -> str:
    (value,) = [p["value"] for p in ptask["params"] if p["name"] == name]
    return str(value)


def test_registry_credentials_come_only_from_a_dockerconfigjson_secret() -> None:
    build = TASKS[BUILD]
    push = _step_named(build, "push")
    authfile = _step_flag(push, "--authfile")
    # A literal path: the Secret's key as a file in a read-only workspace's mountPath.
    assert "$(" not in authfile
    (workspace,) = [w for w in build["spec"]["workspaces"]
                    if authfile == f"{w.get('mountPath')}/{SECRET_KEY}"]
    assert workspace.get("readOnly") is True
    # The base image pull (buildah, in the package step) reads the same file.
    package = _step_named(build, "package")
    assert {"name": "REGISTRY_AUTH_FILE", "value": authfile} in package["env"]
    for step in build["spec"]["steps"]:
        assert not any(SECRET_LOOKING.search(e["name"]) and e["name"] != "REGISTRY_AUTH_FILE"
                       for e in step.get("env", []))
    for pipeline in PIPELINES.values():
        ptask = _pipeline_task(pipeline, BUILD)
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
        workspaces = {w["name"]: w for w in pipeline["spec"]["workspaces"]}
        assert {n for n, w in workspaces.items() if not w.get("optional")} <= bound <= set(workspaces)


def test_every_param_reaches_the_cli_as_one_whole_arg() -> None:
    # Hostile values: a shell would split, expand or run them; Tekton hands them over verbatim.
    for name, task in TASKS.items():
        values: dict[str, str | list[str]] = {}
        for p in task["spec"]["params"]:
            if p.get("type", "string") == "array":
                values[p["name"]] = [f"--{p['name']}-flag", f"value with spaces $(params.{p['name']})"]
            elif p["name"] == "packagerImage":
                values[p["name"]] = "registry.example.com/ml/triton-packager@sha256:" + "0" * 64
            elif p["name"] not in ("train", "tlsVerify"):
                values[p["name"]] = f"{p['name']}; rm -rf / `id` $(params.{p['name']}) \"'"
        values.update({k: "true" for k in ("train", "tlsVerify") if k in values or any(
            p["name"] == k for p in task["spec"]["params"])})
        steps = resolve_steps(task, values)
        args = [a for step in steps for a in (*step.args, *(v for _, v in step.env))]
        for pname, value in values.items():
            if pname in ("train", "tlsVerify", "packagerImage"):
                continue
            if isinstance(value, list):
                start = args.index(value[0])
                assert list(args[start:start + len(value)]) == value, (name, pname)
            else:
                assert value in args, (name, pname)


# --- Issue 17: a step image users can get, parameters that cannot mislead, hygiene -------------


@pytest.mark.parametrize("entry", [e for e in DOCS if e[1]["apiVersion"] == "v1"], ids=_id)
def test_example_core_objects_valid_for_kubernetes(entry: tuple[str, dict[str, Any]]) -> None:
    k8s_validate(entry[1])


def test_no_latest_and_no_default_step_image() -> None:
    # `:latest` (or no tag) makes Kubernetes pull on every start, and a bare name means
    # docker.io/library/...: the step image is a required param, digest-pinned by the user.
    for file, doc in DOCS:
        for path, text in CHECK.strings(doc):
            assert ":latest" not in text, (file, path)
    for name, doc in {**TASKS, **PIPELINES}.items():
        (param,) = [p for p in doc["spec"]["params"] if p["name"] == "packagerImage"]
        assert "default" not in param, name
        for step in doc["spec"].get("steps", []):
            assert step["image"] == "$(params.packagerImage)", (name, step["name"])
    for run in RUNS:
        (value,) = [p["value"] for p in run["spec"]["params"] if p["name"] == "packagerImage"]
        assert re.fullmatch(r"[a-z0-9.-]+\.[a-z]+(:[0-9]+)?/[a-z0-9/._-]+@sha256:[0-9a-f]{64}", value)


def test_runs_use_a_service_account_with_the_registry_pull_secret() -> None:
    (account,) = [d for _, d in DOCS if d["kind"] == "ServiceAccount"]
    assert account["imagePullSecrets"] == [{"name": "triton-packager-registry"}]
    assert "triton-packager-registry" in SECRETS
    for run in RUNS:
        assert run["spec"]["taskRunTemplate"]["serviceAccountName"] == account["metadata"]["name"]


def _seconds(duration: str) -> int:
    parts = re.fullmatch(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?", duration)
    assert parts and duration, duration
    h, m, s = (int(x or 0) for x in parts.groups())
    return h * 3600 + m * 60 + s


def test_timeouts_let_the_packagers_own_deadlines_fire_first() -> None:
    # Tekton's default is 60 minutes (config-defaults default-timeout-minutes); the packager's
    # deadlines are longer, and a pod killed by Tekton gives no clean error.
    from packager.executor.images.buildah import BUILD_TIMEOUT, TRANSFER_TIMEOUT
    from packager.limits import DEFAULT_SETUP_TIMEOUT, DEFAULT_TRAIN_TIMEOUT

    pipeline = PIPELINES["triton-packager"]
    limits = {t["name"]: _seconds(t["timeout"]) for t in pipeline["spec"]["tasks"]}
    assert limits["train"] > DEFAULT_TRAIN_TIMEOUT
    assert limits["setup"] > DEFAULT_SETUP_TIMEOUT
    # pull the base, build, push: one after the other in the build Task
    assert limits["build"] > TRANSFER_TIMEOUT + BUILD_TIMEOUT + TRANSFER_TIMEOUT
    for run in RUNS:
        total = _seconds(run["spec"]["timeouts"]["pipeline"])
        assert total >= limits["check"] + limits["setup"] + limits["build"], run["metadata"]


def test_the_build_step_declares_requests_and_limits_and_runs_may_override_them() -> None:
    package = _step_named(TASKS[BUILD], "package")
    resources = package["computeResources"]
    for kind in ("requests", "limits"):
        assert {"memory", "ephemeral-storage"} <= set(resources[kind]), kind
    assert "cpu" in resources["requests"]
    # A Task cannot take them from params: Tekton's CRD checks every quantity's pattern.
    broken = copy.deepcopy(TASKS[BUILD])
    _step_named(broken, "package")["computeResources"]["limits"]["memory"] = "$(params.memory)"
    assert any("computeResources" in e for e in tekton_errors(broken))
    (run,) = [r for r in RUNS if "taskRunSpecs" in r["spec"]]
    (spec,) = run["spec"]["taskRunSpecs"]
    assert spec["pipelineTaskName"] == "build"
    assert spec["stepSpecs"][0]["name"] == "package"


def test_claim_templates_are_cleaned_up_and_leave_the_storage_class_to_the_cluster() -> None:
    for run in RUNS:
        templates = [w["volumeClaimTemplate"] for w in run["spec"]["workspaces"]
                     if "volumeClaimTemplate" in w]
        if templates:
            assert run["metadata"]["annotations"]["tekton.dev/auto-cleanup-pvc"] == "true"
        for template in templates:
            assert "storageClassName" not in template["spec"]


def test_the_check_task_probes_the_registries() -> None:
    """`--reach` makes an unreachable registry fail the run in check, before anything is built
    (README: "the push registry and the base image's registry must accept a TCP connection");
    removing it from the Task would pass every other test."""
    step, *_ = TASKS["triton-packager-check"]["spec"]["steps"]
    assert step["args"][0] == "tekton-check"
    assert "--reach" in step["args"]


@pytest.mark.parametrize("task", ["triton-packager-check", BUILD])
def test_the_option_arrays_are_checked_against_the_allow_list_first(task: str) -> None:
    """packageOptions and pushOptions reach the privileged build as whole words; each array is
    checked by `tekton-options` (an allow-list) in a step of its own -- in the build Task before
    any privileged step, so a TaskRun of the build Task alone cannot skip it."""
    steps = TASKS[task]["spec"]["steps"]
    checked = {s["args"][1]: s for s in steps if s["args"][0] == "tekton-options"}
    assert set(checked) == {"packageOptions", "pushOptions"}
    for param, step in checked.items():
        assert step["args"] == ["tekton-options", param, "--", f"$(params.{param}[*])"]
    if task == BUILD:
        assert [s["name"] for s in steps[:2]] == list(OPTION_STEPS)
        assert all(not s["securityContext"].get("privileged") for s in steps[:2])
    check = steps[0]["args"]
    if task != BUILD:  # the step image must be digest-pinned
        assert check[check.index("--packager-image") + 1] == "$(params.packagerImage)"


# --- the step image baked in at install time (deploy/tekton/check.py --pin-image) -------------

PINNED = "registry.example.com/ml/triton-packager@sha256:" + "ab" * 32


def test_pinned_resources_run_one_image_no_run_can_choose(tmp_path: Path) -> None:
    """With --pin-image, every step runs the digest-pinned image and no Task, Pipeline or run
    names packagerImage: a PipelineRun cannot pick the image of the privileged build steps."""
    written = CHECK.write_pinned([DEPLOY], PINNED, tmp_path)
    assert {p.name for p in written} >= {"task-build.yaml", "pipeline.yaml", "pipelinerun.yaml"}
    pinned = [(str(p), doc) for p in written for doc in yaml.safe_load_all(p.read_text())
              if doc is not None]
    assert CHECK.check_documents(pinned) == []
    tekton = [doc for _, doc in pinned if doc.get("apiVersion") == TEKTON]
    assert tekton and all("packagerImage" not in json.dumps(doc) for doc in tekton)
    for doc in tekton:
        assert tekton_errors(doc) == [], doc["kind"]
        for step in doc["spec"].get("steps", []):
            assert step["image"] == PINNED
    build = next(d for d in tekton if d["metadata"].get("name") == BUILD)
    assert [s["name"] for s in build["spec"]["steps"]] == [
        s["name"] for s in TASKS[BUILD]["spec"]["steps"]]


@pytest.mark.parametrize("image", [
    "registry.example.com/ml/triton-packager:1.0",
    "registry.example.com/ml/triton-packager@sha256:" + "a" * 63,
    "Registry.example.com/ML/triton-packager@sha256:" + "a" * 64,
])
def test_pinning_refuses_an_image_that_is_not_digest_pinned(tmp_path: Path, image: str) -> None:
    with pytest.raises(ValueError):
        CHECK.pin_image([("x", TASKS[BUILD])], image)
    with pytest.raises(SystemExit):
        CHECK.main(["--pin-image", image, "--out", str(tmp_path / "out"), str(DEPLOY)])
    assert not (tmp_path / "out").exists()


def test_the_train_step_is_bounded_and_confined() -> None:
    """Training code is untrusted: memory and ephemeral-storage requests and limits (a runaway
    job cannot take the node's memory or disk, a LimitRange default cannot OOM-kill it unseen),
    no capabilities, no privilege escalation, the runtime's seccomp profile."""
    (step,) = TASKS["triton-packager-train"]["spec"]["steps"]
    resources = step["computeResources"]
    for kind in ("memory", "ephemeral-storage"):
        assert kind in resources["requests"] and kind in resources["limits"], kind
        assert CHECK.parse_quantity(resources["requests"][kind]) <= \
            CHECK.parse_quantity(resources["limits"][kind])
    security = step["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in security


def test_the_readme_names_the_tekton_release_the_clean_up_annotation_needs() -> None:
    """tekton.dev/auto-cleanup-pvc is read only from tektoncd/pipeline v1.11.0 (commit
    0e9378b86); on an older cluster the example's claims would stay: the README says so and how
    to prune them."""
    uses = any("tekton.dev/auto-cleanup-pvc" in json.dumps(run) for run in RUNS)
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert uses
    assert "v1.11.0 or later" in readme and "0e9378b86" in readme
    assert "tkn pipelinerun delete --keep" in readme and "owner reference" in readme
