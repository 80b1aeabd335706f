"""What a cluster would refuse in deploy/tekton, found without a cluster (pure: no network).

Tekton's CRD schemas (tests/data/tekton, checked by tests/test_tekton_resources.py) see only the
shape of a resource. These rules are the ones Tekton's admission webhook, the Kubernetes API
server and the kubelet apply on top; each is re-stated from the source that applies it, named
beside it. Every rule has a test that breaks the YAML and expects the refusal
(tests/test_tekton_check.py).

Usage: python deploy/tekton/check.py [--storage-class NAME ...] [PATH ...]
(default PATH: the directory of this file; exit 1 and one line per problem when any is found).
`--storage-class` names the StorageClasses your cluster has (`kubectl get storageclass -o name`);
without it, only claims that leave storageClassName unset (the cluster's default) pass.

`--pin-image REF --out DIR` also writes the resources to DIR with the step image baked in: every
`$(params.packagerImage)` becomes REF (which must be digest-pinned) and the `packagerImage` param
is gone from the Tasks, the Pipeline and the example runs. Installed from DIR, no PipelineRun can
choose the image the privileged build steps run (Tekton ignores a param a Pipeline does not
declare). The written resources are checked like the others.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = ["Problem", "check_documents", "load", "main", "parse_quantity",
           "termination_message_size"]

TEKTON = "tekton.dev/v1"
Problem = str

# Kubernetes' DNS-1123 label (k8s.io/apimachinery pkg/util/validation/validation.go, IsDNS1123Label).
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_LABEL_MAX = 63

# The image reference grammar of github.com/distribution/reference (regexp.go), which the
# kubelet applies before pulling (pkg/kubelet/images/image_manager.go, EnsureImageExists:
# ErrInvalidImageName; the pod then waits in InvalidImageName). Repository path components are
# lower-case only.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_NAME = rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(rf"{_NAME}(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
NAME_TOTAL_MAX = 255
# Pipeline params that name an image to pull.
IMAGE_PARAMS = ("packagerImage", "baseImage")

# Tekton keeps a step's results in its container's termination message, which Kubernetes caps
# at 4096 bytes (tektoncd/pipeline pkg/termination/write.go, WriteMessage:
# MaxContainerTerminationMessageLength; results-from: termination-message, the default).
TERMINATION_MESSAGE_MAX = 4096

_REFERENCE = re.compile(r"\$\(([^()]*)\)")
_PARAM = re.compile(r"params(?:\.([A-Za-z_][A-Za-z0-9_-]*)|\[[\"']([^\"']+)[\"']\])")
_TASK_RESULT = re.compile(r"tasks\.([a-z0-9-]+)\.results\.([A-Za-z0-9_-]+)")
# Variables a Pipeline may use besides params and task results (docs/variables.md).
_PIPELINE_CONTEXT = re.compile(
    r"context\.(pipelineRun\.(name|namespace|uid)|pipeline\.name|pipelineTask\.retries)"
    r"|tasks\.[a-z0-9-]+\.status|tasks\.status|workspaces\.[A-Za-z0-9_-]+\.bound")

# Kubernetes' quantity suffixes (k8s.io/apimachinery pkg/api/resource/quantity.go).
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|"
                       r"[eE][+-]?[0-9]+)?")


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity ("2Gi", "500m", "1e3") as a number; ValueError if it is none."""
    text = str(value)
    m = _QUANTITY.fullmatch(text)
    if not m:
        raise ValueError(f"{text!r} is not a quantity")
    try:
        number = Decimal(m[1])
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a quantity") from None
    suffix = m[2] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * _DECIMAL[suffix]


def termination_message_size(results: Mapping[str, str]) -> int:
    """The bytes Tekton's entrypoint writes for a step's results: a JSON list of
    {"key", "value", "type"} (pkg/result RunResult, written by pkg/termination WriteMessage)."""
    entries = [{"key": k, "value": v, "type": 1} for k, v in results.items()]
    return len(json.dumps(entries, separators=(",", ":")).encode("utf-8"))


def result_size_problems(step: str, results: Mapping[str, str]) -> list[Problem]:
    """The results one step wrote, against Tekton's termination-message limit."""
    size = termination_message_size(results)
    if size > TERMINATION_MESSAGE_MAX:
        return [f"step {step}: its results take {size} bytes in the termination message; Tekton "
                f"allows {TERMINATION_MESSAGE_MAX} per step (pkg/termination/write.go, WriteMessage)"]
    return []


def image_reference_problem(image: str) -> str | None:
    """Why the kubelet would refuse `image` (None when it parses)."""
    m = IMAGE_REFERENCE.fullmatch(image) if len(image) <= 2 * NAME_TOTAL_MAX else None
    if m is None:
        hint = " (repository names are lower-case)" if image.lower() != image else ""
        return f"image {image!r} is not a valid reference{hint}"
    if len(image.split("@")[0].rsplit(":", 1)[0]) > NAME_TOTAL_MAX:
        return f"image {image!r}: the name is longer than {NAME_TOTAL_MAX} characters"
    return None


# --- loading ---------------------------------------------------------------------------------


def load(paths: Iterable[Path]) -> list[tuple[str, dict[str, Any]]]:
    import yaml

    docs: list[tuple[str, dict[str, Any]]] = []
    for root in paths:
        files = sorted(root.rglob("*.y*ml")) if root.is_dir() else [root]
        for path in files:
            with path.open(encoding="utf-8") as f:
                for doc in yaml.safe_load_all(f):
                    if isinstance(doc, dict):
                        docs.append((str(path), doc))
    return docs


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value in a document, with its path (`spec.steps[0].image`)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def _references(text: str) -> list[str]:
    return [m.group(1) for m in _REFERENCE.finditer(text)]


def _name(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name') or meta.get('generateName')}"


# --- the rules --------------------------------------------------------------------------------


def _step_problems(task: Mapping[str, Any]) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, step in enumerate(task["spec"].get("steps") or []):
        name = step.get("name", "")
        where = f"spec.steps[{i}]"
        # pkg/apis/pipeline/v1/container_validation.go, validateStep: "Task step name must be a
        # valid DNS Label".
        if name and ("$(" not in name) and (
                not DNS1123_LABEL.fullmatch(name) or len(name) > DNS1123_LABEL_MAX):
            yield f"{where}.name {name!r} is not a DNS-1123 label (lower-case letters, digits, '-'; " \
                  "at most 63) [tektoncd/pipeline pkg/apis/pipeline/v1/container_validation.go validateStep]"
        # pkg/apis/pipeline/v1/task_validation.go, validateSteps: "Task must not have duplicate
        # step names".
        if name in seen:
            yield f"{where}.name {name!r} is used by an earlier step [tektoncd/pipeline " \
                  "pkg/apis/pipeline/v1/task_validation.go validateSteps]"
        seen.add(name)
        image = step.get("image", "")
        if image and "$(" not in image:
            problem = image_reference_problem(image)
            if problem:
                yield f"{where}.image: {problem} [distribution/reference regexp.go, applied by " \
                      "the kubelet: pkg/kubelet/images/image_manager.go EnsureImageExists]"
        yield from _resource_problems(step.get("computeResources") or {}, f"{where}.computeResources")
        for j, mount in enumerate(step.get("volumeMounts") or []):
            yield from _sub_path_problems(mount.get("subPath"), f"{where}.volumeMounts[{j}].subPath")


def _resource_problems(resources: Mapping[str, Any], where: str) -> Iterator[Problem]:
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for kind, amounts in (("requests", requests), ("limits", limits)):
        for resource, amount in amounts.items():
            try:
                parse_quantity(amount)
            except ValueError as exc:
                yield f"{where}.{kind}.{resource}: {exc} [k8s.io/apimachinery " \
                      "pkg/api/resource/quantity.go ParseQuantity]"
    # Kubernetes pkg/apis/core/validation/validation.go, ValidateResourceRequirements: a request
    # "must be less than or equal to" its limit.
    for resource, request in requests.items():
        if resource in limits:
            try:
                over = parse_quantity(request) > parse_quantity(limits[resource])
            except ValueError:
                continue
            if over:
                yield f"{where}.requests.{resource} {request} is above its limit " \
                      f"{limits[resource]} [kubernetes pkg/apis/core/validation/validation.go " \
                      "ValidateResourceRequirements]"


def _sub_path_problems(sub_path: Any, where: str) -> Iterator[Problem]:
    # Kubernetes pkg/apis/core/validation/validation.go, validateLocalDescendingPath (for
    # volumeMounts' subPath): not absolute, and no '..' element.
    if not isinstance(sub_path, str) or not sub_path or "$(" in sub_path:
        return
    if sub_path.startswith("/") or ".." in sub_path.split("/"):
        yield f"{where} {sub_path!r} must be a relative path without '..' [kubernetes " \
              "pkg/apis/core/validation/validation.go validateLocalDescendingPath]"


def _param_reference_problems(doc: Mapping[str, Any], *, pipeline: bool,
                              known_tasks: Mapping[str, Mapping[str, Any]] | None = None
                              ) -> Iterator[Problem]:
    spec = doc["spec"]
    declared = {p["name"] for p in spec.get("params") or []}
    results = {r["name"] for r in spec.get("results") or []}
    workspaces = {w["name"] for w in spec.get("workspaces") or []}
    tasks = {t["name"]: t for t in spec.get("tasks") or []}
    for path, text in strings(spec):
        if path.startswith(("params[", "results[")) and path.endswith(".description"):
            continue
        for expression in _references(text):
            param = _PARAM.match(expression)
            if param:
                name = param[1] or param[2]
                if name not in declared:
                    rule = ("pipeline_validation.go validatePipelineParameterVariables" if pipeline
                            else "task_validation.go ValidateParameterVariables")
                    yield f"spec.{path}: $({expression}) names no declared param [tektoncd/pipeline " \
                          f"pkg/apis/pipeline/v1/{rule}]"
                continue
            if pipeline:
                result = _TASK_RESULT.match(expression)
                if result:
                    yield from _task_result_problems(result[1], result[2], tasks, f"spec.{path}",
                                                     known_tasks or {})
                    continue
                if _PIPELINE_CONTEXT.fullmatch(expression):
                    continue
                yield f"spec.{path}: $({expression}) is no variable a Pipeline has [tektoncd/pipeline " \
                      "docs/variables.md]"
                continue
            head = expression.split(".")
            if head[0] == "workspaces" and len(head) == 3 and head[2] in ("path", "bound", "claim", "volume"):
                if head[1] not in workspaces:
                    yield f"spec.{path}: $({expression}) names no declared workspace [tektoncd/pipeline " \
                          "pkg/apis/pipeline/v1/task_validation.go validateWorkspaceVariables]"
                continue
            if head[0] == "results" and len(head) == 3 and head[2] == "path":
                if head[1] not in results:
                    yield f"spec.{path}: $({expression}) names no declared result [tektoncd/pipeline " \
                          "pkg/apis/pipeline/v1/task_validation.go ValidateStepResultsVariables]"
                continue
            if head[0] == "context":
                continue
            yield f"spec.{path}: $({expression}) is no variable a Task has [tektoncd/pipeline " \
                  "docs/variables.md]"


def _task_result_problems(task: str, result: str, tasks: Mapping[str, Any], where: str,
                          known_tasks: Mapping[str, Mapping[str, Any]]) -> Iterator[Problem]:
    if task not in tasks:
        yield f"{where}: $(tasks.{task}.results.{result}) names no pipeline task [tektoncd/pipeline " \
              "pkg/apis/pipeline/v1/pipeline_validation.go validatePipelineResults]"
        return
    # A result the referenced Task does not declare fails the PipelineRun when it is resolved
    # (pkg/reconciler/pipelinerun/resources/resultrefresolution.go: "Could not find result").
    ref = (tasks[task].get("taskRef") or {}).get("name")
    declared = known_tasks.get(ref or "")
    if declared is not None and result not in {r["name"] for r in declared["spec"].get("results") or []}:
        yield f"{where}: $(tasks.{task}.results.{result}): Task {ref} declares no result {result!r} " \
              "[tektoncd/pipeline pkg/reconciler/pipelinerun/resources/resultrefresolution.go]"


def _graph_problems(pipeline: Mapping[str, Any]) -> Iterator[Problem]:
    """runAfter and result references must name tasks of the Pipeline and form a DAG
    (pkg/apis/pipeline/v1/pipeline_validation.go validateGraph -> pkg/reconciler/pipeline/dag
    Build: "cycle detected")."""
    tasks = pipeline["spec"].get("tasks") or []
    names = [t["name"] for t in tasks]
    edges: dict[str, set[str]] = {n: set() for n in names}
    for i, task in enumerate(tasks):
        if names.count(task["name"]) > 1:
            yield f"spec.tasks[{i}].name {task['name']!r} is used twice [tektoncd/pipeline " \
                  "pkg/apis/pipeline/v1/pipeline_validation.go validatePipelineTaskName]"
        if not DNS1123_LABEL.fullmatch(task["name"]):
            yield f"spec.tasks[{i}].name {task['name']!r} is not a DNS-1123 label [tektoncd/pipeline " \
                  "pkg/apis/pipeline/v1/pipeline_validation.go validatePipelineTaskName]"
        for before in task.get("runAfter") or []:
            if before not in edges:
                yield f"spec.tasks[{i}].runAfter names no task {before!r} [tektoncd/pipeline " \
                      "pkg/apis/pipeline/v1/pipeline_validation.go validateGraph]"
            else:
                edges[task["name"]].add(before)
        for _, text in strings({k: v for k, v in task.items() if k != "runAfter"}):
            for expression in _references(text):
                result = _TASK_RESULT.match(expression)
                if result and result[1] in edges:
                    edges[task["name"]].add(result[1])
        for j, binding in enumerate(task.get("workspaces") or []):
            yield from _sub_path_problems(binding.get("subPath"), f"spec.tasks[{i}].workspaces[{j}].subPath")
    # Depth-first search for a cycle: white (unseen), grey (on the path), black (done).
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for before in sorted(edges[node]):
            if state.get(before) == 1:
                return [*path[path.index(before):], before] if before in path else [node, before]
            if before not in state:
                found = visit(before, [*path, before])
                if found:
                    return found
        state[node] = 2
        return None

    for node in names:
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                yield f"spec.tasks: runAfter/result references form a cycle {' -> '.join(cycle)} " \
                      "[tektoncd/pipeline pkg/apis/pipeline/v1/pipeline_validation.go validateGraph]"
                return


def _claim_problems(claim: Mapping[str, Any], where: str,
                    storage_classes: frozenset[str]) -> Iterator[Problem]:
    spec = claim.get("spec") or {}
    storage_class = spec.get("storageClassName")
    # An unknown class is no API error: the claim stays Pending for ever and the run never
    # starts (Kubernetes pkg/controller/volume/persistentvolume/pv_controller.go,
    # provisionClaim: "storageclass ... not found").
    if storage_class is not None and storage_class not in storage_classes:
        known = ", ".join(sorted(storage_classes)) or "none declared"
        yield f"{where}.spec.storageClassName {storage_class!r} is not a StorageClass of the " \
              f"cluster ({known}); leave it unset for the default class [kubernetes " \
              "pkg/controller/volume/persistentvolume/pv_controller.go provisionClaim]"
    yield from _resource_problems(spec.get("resources") or {}, f"{where}.spec.resources")


def _run_problems(run: Mapping[str, Any], pipelines: Mapping[str, Mapping[str, Any]],
                  storage_classes: frozenset[str]) -> Iterator[Problem]:
    spec = run["spec"]
    bindings = {w["name"]: w for w in spec.get("workspaces") or []}
    for i, binding in enumerate(spec.get("workspaces") or []):
        where = f"spec.workspaces[{i}]"
        yield from _sub_path_problems(binding.get("subPath"), f"{where}.subPath")
        if "volumeClaimTemplate" in binding:
            yield from _claim_problems(binding["volumeClaimTemplate"], f"{where}.volumeClaimTemplate",
                                       storage_classes)
    # The params that become a step's image (packagerImage) or a pull (baseImage, unless an
    # archive on a workspace): the kubelet and buildah parse them as image references.
    for i, param in enumerate(spec.get("params") or []):
        value = param.get("value")
        if param.get("name") not in IMAGE_PARAMS or not isinstance(value, str):
            continue
        if value.startswith(("oci-archive:", "docker-archive:")):
            continue
        problem = image_reference_problem(value)
        if problem:
            yield f"spec.params[{i}] ({param['name']}): {problem} [distribution/reference " \
                  "regexp.go, applied by the kubelet: pkg/kubelet/images/image_manager.go " \
                  "EnsureImageExists]"
    ref = (spec.get("pipelineRef") or {}).get("name")
    pipeline = pipelines.get(ref or "")
    if pipeline is None:
        return
    declared = {w["name"]: w for w in pipeline["spec"].get("workspaces") or []}
    for name, ws in declared.items():
        if not ws.get("optional") and name not in bindings:
            yield f"spec.workspaces: the Pipeline's workspace {name!r} is not bound [tektoncd/pipeline " \
                  "pkg/reconciler/pipelinerun/pipelinerun.go ValidateWorkspaceBindings]"
    # With Tekton's default affinity assistant (coschedule: workspaces) a TaskRun may bind one
    # claim only (pkg/workspace/validate.go ValidateOnlyOnePVCIsUsed: "more than one
    # PersistentVolumeClaim is bound"; the same claim under two subPaths is one claim).
    for task in pipeline["spec"].get("tasks") or []:
        claims = set()
        for w in task.get("workspaces") or []:
            binding = bindings.get(w.get("workspace", ""))
            if binding is None:
                continue
            if "volumeClaimTemplate" in binding:
                claims.add(f"volumeClaimTemplate:{binding['name']}")
            elif "persistentVolumeClaim" in binding:
                claims.add(f"claim:{binding['persistentVolumeClaim'].get('claimName')}")
        if len(claims) > 1:
            yield f"pipeline task {task['name']!r} would bind {len(claims)} claims " \
                  f"({', '.join(sorted(claims))}): Tekton's default affinity assistant refuses " \
                  "the TaskRun [tektoncd/pipeline pkg/workspace/validate.go ValidateOnlyOnePVCIsUsed]"
    if any("volumeClaimTemplate" in b for b in bindings.values()):
        annotations = (run.get("metadata") or {}).get("annotations") or {}
        if annotations.get("tekton.dev/auto-cleanup-pvc") != "true":
            yield "metadata.annotations: a volumeClaimTemplate workspace without " \
                  "tekton.dev/auto-cleanup-pvc: \"true\" outlives the run in the default " \
                  "affinity-assistant mode [tektoncd/pipeline " \
                  "pkg/reconciler/pipelinerun/affinity_assistant.go AutoCleanupPVCAnnotation]"


def check_documents(docs: Iterable[tuple[str, Mapping[str, Any]]], *,
                    storage_classes: Iterable[str] = ()) -> list[Problem]:
    """Every problem in `docs` ((file, document) pairs), as `file: Kind/name: where: why [rule]`."""
    classes = frozenset(storage_classes)
    docs = list(docs)
    pipelines = {d["metadata"]["name"]: d for _, d in docs
                 if d.get("apiVersion") == TEKTON and d.get("kind") == "Pipeline"}
    tasks = {d["metadata"]["name"]: d for _, d in docs
             if d.get("apiVersion") == TEKTON and d.get("kind") == "Task"}
    problems: list[Problem] = []
    for file, doc in docs:
        kind = doc.get("kind")
        found: list[Problem] = []
        if doc.get("apiVersion") == TEKTON and kind == "Task":
            found += _step_problems(doc)
            found += _param_reference_problems(doc, pipeline=False)
            for i, volume in enumerate(doc["spec"].get("volumes") or []):
                if "persistentVolumeClaim" in volume or "hostPath" in volume:
                    found.append(f"spec.volumes[{i}]: a Task's volumes are per pod here "
                                 "(emptyDir, ConfigMap, Secret)")
        elif doc.get("apiVersion") == TEKTON and kind == "Pipeline":
            found += _graph_problems(doc)
            found += _param_reference_problems(doc, pipeline=True, known_tasks=tasks)
        elif doc.get("apiVersion") == TEKTON and kind == "PipelineRun":
            found += _run_problems(doc, pipelines, classes)
        elif doc.get("apiVersion") == "v1" and kind == "PersistentVolumeClaim":
            found += _claim_problems(doc, "", classes)
        problems += [f"{file}: {_name(doc)}: {p}" for p in found]
    return problems


# --- the step image baked in ------------------------------------------------------------------

PACKAGER_IMAGE_PARAM = "packagerImage"
PINNED_IMAGE = re.compile(rf"{_NAME}(?::{_TAG})?@sha256:[0-9a-f]{{64}}")


def _replace_strings(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: _replace_strings(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_strings(v, old, new) for v in node]
    return node.replace(old, new) if isinstance(node, str) else node


def _without_param(params: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [p for p in params or [] if p.get("name") != PACKAGER_IMAGE_PARAM]


def pin_image(docs: Iterable[tuple[str, Mapping[str, Any]]],
              image: str) -> list[tuple[str, dict[str, Any]]]:
    """`docs` with `image` in place of the packagerImage param (ValueError unless `image` is a
    digest-pinned reference the kubelet parses)."""
    problem = image_reference_problem(image)
    if problem is not None or not PINNED_IMAGE.fullmatch(image):
        raise ValueError(problem or f"image {image!r} is not digest-pinned (REPOSITORY@sha256:...)")
    out = []
    for file, doc in docs:
        new: dict[str, Any] = json.loads(json.dumps(doc))
        spec = new.get("spec")
        if new.get("apiVersion") == TEKTON and isinstance(spec, dict):
            kind = new.get("kind")
            if kind in ("Task", "Pipeline", "PipelineRun"):
                spec["params"] = _without_param(spec.get("params"))
            if kind == "Pipeline":
                for task in (spec.get("tasks") or []) + (spec.get("finally") or []):
                    task["params"] = _without_param(task.get("params"))
            if kind == "Task":
                new["spec"] = _replace_strings(spec, f"$(params.{PACKAGER_IMAGE_PARAM})", image)
        out.append((file, new))
    return out


def write_pinned(paths: list[Path], image: str, out: Path) -> list[Path]:
    """The resources under `paths`, pinned to `image`, written to `out` (one file per file)."""
    import yaml

    written: list[Path] = []
    for root in paths:
        base = root if root.is_dir() else root.parent
        for file in sorted(root.rglob("*.y*ml")) if root.is_dir() else [root]:
            docs = pin_image([(str(file), d) for _, d in load([file])], image)
            dest = out / file.relative_to(base)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(f"# Written by deploy/tekton/check.py --pin-image from {file.name}; "
                            "the step image is baked in.\n"
                            + yaml.safe_dump_all([d for _, d in docs], sort_keys=False),
                            encoding="utf-8")
            written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="deploy/tekton/check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", type=Path, default=[Path(__file__).resolve().parent])
    p.add_argument("--storage-class", action="append", default=[], metavar="NAME",
                   help="a StorageClass the cluster has (repeatable)")
    p.add_argument("--pin-image", default=None, metavar="REF",
                   help="write the resources to --out with this digest-pinned step image baked "
                   "in and no packagerImage param")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where --pin-image writes")
    args = p.parse_args(argv)
    if (args.pin_image is None) != (args.out is None):
        p.error("--pin-image and --out go together")
    if args.pin_image is not None:
        try:
            written = write_pinned(args.paths, args.pin_image, args.out)
        except ValueError as exc:
            p.error(f"--pin-image: {exc}")
        print(f"wrote {len(written)} files to {args.out} (step image {args.pin_image})",
              file=sys.stderr)
        args.paths = [args.out]
    problems = check_documents(load(args.paths), storage_classes=args.storage_class)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"no problems in {', '.join(map(str, args.paths))}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
