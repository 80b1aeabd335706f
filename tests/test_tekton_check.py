"""deploy/tekton/check.py: each thing a cluster would refuse, put into the real YAML, is refused.

Every test breaks one resource of deploy/tekton the way the issue lists it and expects the
checker's problem (with its rule's source); the resources as committed have none. The rules are
Tekton's admission webhook, the API server's pod validation and the kubelet's image parsing,
re-stated in check.py with the file and function they come from.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from scripts import load_script

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "tekton"


check = load_script("deploy/tekton/check.py", "tekton_check")
DOCS: list[tuple[str, dict[str, Any]]] = check.load([DEPLOY])


def _find(kind: str, name: str | None = None) -> int:
    for i, (_, doc) in enumerate(DOCS):
        meta = doc.get("metadata", {})
        if doc.get("kind") == kind and name in (None, meta.get("name"), meta.get("generateName")):
            return i
    raise AssertionError(f"no {kind} {name}")


def _broken(kind: str, name: str | None, change: Callable[[dict[str, Any]], None]) -> list[str]:
    docs = copy.deepcopy(DOCS)
    i = _find(kind, name)
    change(docs[i][1])
    problems: list[str] = check.check_documents(docs)
    return problems


def _step(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in doc["spec"]["steps"] if s["name"] == name]
    return step


def _ptask(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (task,) = [t for t in doc["spec"]["tasks"] if t["name"] == name]
    return task


def test_the_committed_resources_have_no_problem() -> None:
    assert check.check_documents(DOCS) == []
    assert check.main([str(DEPLOY)]) == 0


# (kind, name, breakage, expected words in the one problem, rule's source file)
BREAKAGES: dict[str, tuple[str, str | None, Callable[[dict[str, Any]], None], str, str]] = {
    "step-name-not-dns-label": (
        "Task", "triton-packager-build",
        lambda d: _step(d, "package").update(name="Package_Step"),
        "'Package_Step' is not a DNS-1123 label", "container_validation.go validateStep"),
    "duplicate-step-name": (
        "Task", "triton-packager-build",
        lambda d: _step(d, "results").update(name="push"),
        "'push' is used by an earlier step", "task_validation.go validateSteps"),
    "runafter-cycle": (
        "Pipeline", "triton-packager",
        lambda d: _ptask(d, "check").update(runAfter=["build"]),
        "form a cycle", "pipeline_validation.go validateGraph"),
    "runafter-unknown-task": (
        "Pipeline", "triton-packager",
        lambda d: _ptask(d, "build").update(runAfter=["train", "setpu"]),
        "runAfter names no task 'setpu'", "pipeline_validation.go validateGraph"),
    "memory-request-above-limit": (
        "Task", "triton-packager-build",
        lambda d: _step(d, "package")["computeResources"]["requests"].update(memory="16Gi"),
        "requests.memory 16Gi is above its limit 8Gi", "validation.go ValidateResourceRequirements"),
    "ephemeral-storage-request-above-limit": (
        "Task", "triton-packager-build",
        lambda d: _step(d, "package")["computeResources"]["limits"].update(
            {"ephemeral-storage": "20000M"}),
        "requests.ephemeral-storage 40Gi is above its limit 20000M",
        "validation.go ValidateResourceRequirements"),
    "upper-case-image": (
        "Task", "triton-packager-check",
        lambda d: _step(d, "check").update(image="Registry.example.com/ML/Triton-Packager:1"),
        "is not a valid reference (repository names are lower-case)",
        "pkg/kubelet/images/image_manager.go EnsureImageExists"),
    "upper-case-image-param": (
        "PipelineRun", "triton-packager-",
        lambda d: d["spec"]["params"][0].update(value="registry.example.com/ML/triton-packager:1"),
        "(packagerImage): image", "pkg/kubelet/images/image_manager.go EnsureImageExists"),
    "sub-path-dot-dot-in-a-step": (
        "Task", "triton-packager-build",
        lambda d: _step(d, "package")["volumeMounts"][0].update(subPath="../x"),
        "subPath '../x' must be a relative path without '..'", "validateLocalDescendingPath"),
    "sub-path-dot-dot-in-a-pipeline-binding": (
        "Pipeline", "triton-packager",
        lambda d: _ptask(d, "train")["workspaces"][0].update(subPath="work/../../x"),
        "must be a relative path without '..'", "validateLocalDescendingPath"),
    "sub-path-dot-dot-in-a-run": (
        "PipelineRun", "triton-packager-",
        lambda d: d["spec"]["workspaces"][0].update(subPath="../x"),
        "must be a relative path without '..'", "validateLocalDescendingPath"),
    "storage-class-the-cluster-lacks": (
        "PipelineRun", "triton-packager-",
        lambda d: d["spec"]["workspaces"][0]["volumeClaimTemplate"]["spec"].update(
            storageClassName="fast-ssd"),
        "storageClassName 'fast-ssd' is not a StorageClass of the cluster",
        "pv_controller.go provisionClaim"),
    "unknown-param-in-a-task": (
        "Task", "triton-packager-build",
        lambda d: _step(d, "push")["args"].extend(["--registry", "$(params.regsitry)"]),
        "$(params.regsitry) names no declared param", "task_validation.go ValidateParameterVariables"),
    "unknown-param-in-a-pipeline": (
        "Pipeline", "triton-packager",
        lambda d: _ptask(d, "build")["params"][0].update(value="$(params.packagerImg)"),
        "$(params.packagerImg) names no declared param",
        "pipeline_validation.go validatePipelineParameterVariables"),
    "unknown-result": (
        "Task", "triton-packager-build",
        lambda d: _step(d, "push")["args"].extend(["--x", "$(results.IMAGE_URI.path)"]),
        "$(results.IMAGE_URI.path) names no declared result", "ValidateStepResultsVariables"),
    "result-the-task-does-not-declare": (
        "Pipeline", "triton-packager",
        lambda d: d["spec"]["results"][0].update(value="$(tasks.build.results.IMAGE_URI)"),
        "Task triton-packager-build declares no result 'IMAGE_URI'", "resultrefresolution.go"),
    "result-of-no-task": (
        "Pipeline", "triton-packager",
        lambda d: d["spec"]["results"][0].update(value="$(tasks.push.results.IMAGE_URL)"),
        "names no pipeline task", "pipeline_validation.go validatePipelineResults"),
    "unknown-workspace": (
        "Task", "triton-packager-build",
        lambda d: _step(d, "push")["env"][0].update(value="$(workspaces.certs.path)"),
        "$(workspaces.certs.path) names no declared workspace", "validateWorkspaceVariables"),
    "two-claims-for-one-taskrun": (
        "PipelineRun", "triton-packager-",
        lambda d: d["spec"]["workspaces"].append(
            {"name": "buildCache", "persistentVolumeClaim": {"claimName": "cache"}}),
        "pipeline task 'build' would bind 2 claims", "pkg/workspace/validate.go ValidateOnlyOnePVCIsUsed"),
    "claim-template-without-cleanup": (
        "PipelineRun", "triton-packager-",
        lambda d: d["metadata"].pop("annotations"),
        "tekton.dev/auto-cleanup-pvc", "affinity_assistant.go AutoCleanupPVCAnnotation"),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_a_breakage_the_cluster_would_refuse_is_refused(case: str) -> None:
    kind, name, change, words, rule = BREAKAGES[case]
    problems = _broken(kind, name, change)
    assert len(problems) == 1, problems
    assert words in problems[0] and rule in problems[0], problems[0]


def test_a_declared_storage_class_passes() -> None:
    docs = copy.deepcopy(DOCS)
    run = docs[_find("PipelineRun", "triton-packager-")][1]
    run["spec"]["workspaces"][0]["volumeClaimTemplate"]["spec"]["storageClassName"] = "fast-ssd"
    assert check.check_documents(docs, storage_classes=["fast-ssd"]) == []
    assert check.check_documents(docs) != []


def test_the_same_claim_under_two_sub_paths_is_one_claim() -> None:
    # What deploy/tekton/README.md recommends for the build cache on a named claim.
    docs = copy.deepcopy(DOCS)
    run = docs[_find("PipelineRun", "triton-packager-")][1]
    run["metadata"].pop("annotations")
    run["spec"]["workspaces"][0] = {"name": "shared", "subPath": "work",
                                    "persistentVolumeClaim": {"claimName": "lane-1"}}
    run["spec"]["workspaces"].append({"name": "buildCache", "subPath": "buildah-cache",
                                      "persistentVolumeClaim": {"claimName": "lane-1"}})
    assert check.check_documents(docs) == []


def test_a_result_over_the_termination_message_limit_is_refused() -> None:
    small = {"IMAGE_URL": "registry.example.com/ml/add-sub:1", "IMAGE_DIGEST": "sha256:" + "0" * 64}
    assert check.result_size_problems("push", small) == []
    big = {**small, "RESULT": "x" * 4000}
    (problem,) = check.result_size_problems("results", big)
    assert "allows 4096 per step" in problem and "pkg/termination/write.go" in problem
    # The exact boundary: Tekton's JSON list of {"key","value","type"} entries.
    entry_overhead = check.termination_message_size({"R": ""})
    fits = {"R": "y" * (4096 - entry_overhead)}
    assert check.termination_message_size(fits) == 4096 and check.result_size_problems("s", fits) == []
    assert check.result_size_problems("s", {"R": fits["R"] + "y"})


@pytest.mark.parametrize(("text", "value"), [
    ("2Gi", 2 * 2**30), ("500m", Decimal("0.5")), ("1", 1), ("1e3", 1000), ("1.5G", 1_500_000_000),
    ("120Gi", 120 * 2**30), (3, 3)])
def test_quantities(text: str | int, value: Decimal | int) -> None:
    assert check.parse_quantity(text) == value


def test_a_malformed_quantity_is_refused() -> None:
    problems = _broken("Task", "triton-packager-build",
                       lambda d: _step(d, "package")["computeResources"]["limits"].update(memory="8 GB"))
    assert any("'8 GB' is not a quantity" in p for p in problems)


@pytest.mark.parametrize(("image", "ok"), [
    ("registry.example.com/ml/triton-packager@sha256:" + "a" * 64, True),
    ("127.0.0.1:5000/tools/triton-packager:0.1.0", True),
    ("triton-packager", True),
    ("Triton-Packager", False),
    ("registry.example.com/ml/Model:1", False),
    ("registry.example.com/ml/model:1 ", False),
    ("registry.example.com/ml/model@sha256:short", False),
])
def test_image_references_as_the_kubelet_parses_them(image: str, ok: bool) -> None:
    assert (check.image_reference_problem(image) is None) == ok


def test_the_command_line_reports_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    docs = copy.deepcopy(DOCS)
    i = _find("Task", "triton-packager-build")
    _step(docs[i][1], "package")["name"] = "Package_Step"
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(docs[i][1]))
    assert check.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "Package_Step" in out and "validateStep" in out
