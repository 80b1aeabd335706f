"""What a Tekton Task's steps run, with variables substituted as Tekton substitutes them (pure).

`resolve_steps(task, params)` returns, for each step of a `tekton.dev/v1` Task document, the
container Tekton would start: image, command, args, env, volume mounts, security context, working
directory and the workspaces mounted into it. It follows Tekton's own rules
(tektoncd/pipeline `pkg/container/container_replacements.go`, `pkg/substitution`):

- `$(params.x)`, `$(params["x"])`, `$(params['x'])` are replaced by string params in name, image,
  imagePullPolicy, command, args, env values, workingDir and volumeMounts (name, mountPath,
  subPath); securityContext is never substituted;
- a command or args entry that is exactly `$(params.x[*])` (or `$(params.x)`) of an array param is
  replaced by the array's items, in place; `$(params.x[N])` is one item;
- `$(workspaces.w.path)` is the workspace's mountPath, or `/workspace/w`; `$(workspaces.w.bound)`
  is "true" or "false"; an optional workspace that is not bound has the path "";
- `$(results.r.path)` is `/tekton/results/r`;
- replacement is one pass: a value that itself contains `$(...)` is inserted literally.

Where Tekton's webhook would refuse the Task (an undeclared param, workspace or result, an array
param inside a longer string, a param of the wrong type), this module refuses it too
(`TektonSubstitutionError`), and it refuses what it does not model (`script`, `stepTemplate`,
StepActions, sidecars, object params, `$(context...)` and other variables) rather than guess.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_DIR",
    "WORKSPACE_DIR",
    "ResolvedStep",
    "TektonSubstitutionError",
    "WorkspaceMount",
    "find_references",
    "kubernetes_volume",
    "resolve_steps",
    "result_paths",
    "workspace_paths",
]

WORKSPACE_DIR = "/workspace"  # pipeline.WorkspaceDir
RESULTS_DIR = "/tekton/results"  # pipeline.DefaultResultPath

ParamValue = str | Sequence[str]

# Every `$(` starts a reference; Tekton's expressions hold no parentheses.
_REFERENCE = re.compile(r"\$\(([^()]*)\)")
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_PARAM = re.compile(
    rf"params(?:\.(?P<dot>{_NAME})|\[\"(?P<dq>[^\"]+)\"\]|\['(?P<sq>[^']+)'\])"
    r"(?P<rest>\[\*\]|\[[0-9]+\]|\..*)?"
)
_WORKSPACE = re.compile(rf"workspaces\.(?P<name>{_NAME})\.(?P<attr>path|bound)")
_RESULT = re.compile(rf"results\.(?P<name>{_NAME})\.path")
# The step fields this module resolves; anything else in a step is refused.
_STEP_FIELDS = frozenset({
    "name", "displayName", "image", "imagePullPolicy", "command", "args", "env", "workingDir",
    "volumeMounts", "securityContext", "computeResources",
})
_SPEC_FIELDS = frozenset({
    "description", "displayName", "params", "workspaces", "results", "steps", "volumes",
})


class TektonSubstitutionError(ValueError):
    """The Task cannot be resolved: a reference Tekton would refuse, or a feature not modelled."""


@dataclass(frozen=True)
class WorkspaceMount:
    """A workspace Tekton mounts into every step."""

    name: str
    path: str
    read_only: bool


@dataclass(frozen=True)
class ResolvedStep:
    """One step as the container Tekton starts for it."""

    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    volume_mounts: tuple[Mapping[str, Any], ...]
    security_context: Mapping[str, Any]
    working_dir: str | None
    workspaces: tuple[WorkspaceMount, ...]


def find_references(text: str) -> list[str]:
    """The expressions of every `$(...)` in `text`; refuses a `$(` that is not closed."""
    found = [m.group(1) for m in _REFERENCE.finditer(text)]
    if text.count("$(") != len(found):
        msg = f"unterminated or nested reference in {text!r}"
        raise TektonSubstitutionError(msg)
    return found


def workspace_paths(task: Mapping[str, Any]) -> dict[str, str]:
    """Where Tekton mounts each declared workspace: its mountPath, else /workspace/<name>."""
    return {w["name"]: w.get("mountPath") or f"{WORKSPACE_DIR}/{w['name']}"
            for w in task["spec"].get("workspaces", [])}


def result_paths(task: Mapping[str, Any]) -> dict[str, str]:
    """The file each declared result is written to."""
    return {r["name"]: f"{RESULTS_DIR}/{r['name']}" for r in task["spec"].get("results", [])}


@dataclass(frozen=True)
class _Context:
    strings: Mapping[str, str]
    arrays: Mapping[str, tuple[str, ...]]
    workspaces: Mapping[str, str]  # bound workspaces only
    declared_workspaces: frozenset[str]
    results: Mapping[str, str]

    def string(self, expression: str, where: str) -> str:
        param = _PARAM.fullmatch(expression)
        if param:
            name = param["dot"] or param["dq"] or param["sq"]
            rest = param["rest"]
            if name in self.arrays:
                items = self.arrays[name]
                if rest and rest.startswith("[") and rest != "[*]":
                    index = int(rest[1:-1])
                    if index >= len(items):
                        msg = f"{where}: $(params.{name}{rest}) is out of range ({len(items)} items)"
                        raise TektonSubstitutionError(msg)
                    return items[index]
                msg = (f"{where}: array param {name!r} must be a whole command or args entry "
                       f"($(params.{name}[*])), not part of a string")
                raise TektonSubstitutionError(msg)
            if name in self.strings:
                if rest:
                    msg = f"{where}: $(params.{name}{rest}): {name!r} is a string param"
                    raise TektonSubstitutionError(msg)
                return self.strings[name]
            msg = f"{where}: unknown param {name!r} (declared: {sorted({*self.strings, *self.arrays})})"
            raise TektonSubstitutionError(msg)
        workspace = _WORKSPACE.fullmatch(expression)
        if workspace:
            name = workspace["name"]
            if name not in self.declared_workspaces:
                msg = f"{where}: unknown workspace {name!r} (declared: {sorted(self.declared_workspaces)})"
                raise TektonSubstitutionError(msg)
            if workspace["attr"] == "bound":
                return "true" if name in self.workspaces else "false"
            return self.workspaces.get(name, "")
        result = _RESULT.fullmatch(expression)
        if result:
            name = result["name"]
            if name not in self.results:
                msg = f"{where}: unknown result {name!r} (declared: {sorted(self.results)})"
                raise TektonSubstitutionError(msg)
            return self.results[name]
        msg = f"{where}: unsupported reference $({expression})"
        raise TektonSubstitutionError(msg)

    def substitute(self, text: str, where: str) -> str:
        find_references(text)
        # One pass, like Tekton's strings.Replacer: inserted values are not scanned again.
        return _REFERENCE.sub(lambda m: self.string(m.group(1), where), text)

    def expand(self, entries: Iterable[str], where: str) -> tuple[str, ...]:
        out: list[str] = []
        for i, entry in enumerate(entries):
            whole = _REFERENCE.fullmatch(entry)
            if whole:
                param = _PARAM.fullmatch(whole.group(1))
                if param and param["rest"] in (None, "[*]"):
                    name = param["dot"] or param["dq"] or param["sq"]
                    if name in self.arrays:
                        out.extend(self.arrays[name])
                        continue
            out.append(self.substitute(entry, f"{where}[{i}]"))
        return tuple(out)


def _params(task: Mapping[str, Any], values: Mapping[str, ParamValue]) -> tuple[dict[str, str],
                                                                                  dict[str, tuple[str, ...]]]:
    declared = {p["name"]: p for p in task["spec"].get("params", [])}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        msg = f"params {unknown} are not declared by the Task (declared: {sorted(declared)})"
        raise TektonSubstitutionError(msg)
    strings: dict[str, str] = {}
    arrays: dict[str, tuple[str, ...]] = {}
    for name, spec in declared.items():
        kind = spec.get("type", "string")
        if kind not in ("string", "array"):
            msg = f"param {name!r}: type {kind!r} is not supported here"
            raise TektonSubstitutionError(msg)
        if name in values:
            value = values[name]
        elif "default" in spec:
            value = spec["default"]
        else:
            msg = f"param {name!r} has no default and no value was given"
            raise TektonSubstitutionError(msg)
        if kind == "string":
            if not isinstance(value, str):
                msg = f"param {name!r} is a string param; got {type(value).__name__}"
                raise TektonSubstitutionError(msg)
            strings[name] = value
        else:
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                msg = f"param {name!r} is an array of strings; got {value!r}"
                raise TektonSubstitutionError(msg)
            arrays[name] = tuple(value)
    return strings, arrays


def _check_fields(found: Iterable[str], allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(found) - allowed)
    if extra:
        msg = f"{where}: {extra} not supported by tekton_steps (supported: {sorted(allowed)})"
        raise TektonSubstitutionError(msg)


def resolve_steps(
    task: Mapping[str, Any],
    params: Mapping[str, ParamValue],
    *,
    workspaces: Mapping[str, str] | None = None,
    results: Mapping[str, str] | None = None,
) -> list[ResolvedStep]:
    """Each step of `task` with every variable substituted, in order.

    Args:
        task: a parsed `tekton.dev/v1` Task document.
        params: param values by name; declared params left out take their defaults.
        workspaces: the bound workspaces and their paths (default: every declared workspace, at
            Tekton's path for it). Optional workspaces may be left out; required ones may not.
        results: result files by name (default: Tekton's `/tekton/results/<name>`).

    Raises:
        TektonSubstitutionError: a reference Tekton would refuse, or one this module does not model.
    """
    if task.get("apiVersion") != "tekton.dev/v1" or task.get("kind") != "Task":
        msg = f"not a tekton.dev/v1 Task: {task.get('apiVersion')}/{task.get('kind')}"
        raise TektonSubstitutionError(msg)
    spec = task["spec"]
    _check_fields(spec, _SPEC_FIELDS, "spec")
    strings, arrays = _params(task, params)
    declared = {w["name"]: w for w in spec.get("workspaces", [])}
    bound = dict(workspace_paths(task)) if workspaces is None else dict(workspaces)
    unknown = sorted(set(bound) - set(declared))
    missing = sorted(n for n, w in declared.items() if not w.get("optional") and n not in bound)
    if unknown or missing:
        msg = f"workspaces: unknown {unknown}, required but not bound {missing}"
        raise TektonSubstitutionError(msg)
    result_files = result_paths(task) if results is None else dict(results)
    if set(result_files) != set(result_paths(task)):
        msg = f"results: given {sorted(result_files)}, declared {sorted(result_paths(task))}"
        raise TektonSubstitutionError(msg)
    ctx = _Context(strings, arrays, bound, frozenset(declared), result_files)
    mounts = tuple(WorkspaceMount(n, bound[n], bool(declared[n].get("readOnly")))
                   for n in declared if n in bound)

    steps: list[ResolvedStep] = []
    for index, step in enumerate(spec["steps"]):
        where = f"steps[{index}]"
        _check_fields(step, _STEP_FIELDS, where)
        env: list[tuple[str, str]] = []
        for i, var in enumerate(step.get("env", [])):
            _check_fields(var, frozenset({"name", "value"}), f"{where}.env[{i}]")
            env.append((var["name"], ctx.substitute(var.get("value", ""), f"{where}.env[{i}]")))
        volume_mounts = []
        for i, mount in enumerate(step.get("volumeMounts", [])):
            resolved = copy.deepcopy(dict(mount))
            for key in ("name", "mountPath", "subPath"):
                if key in resolved:
                    resolved[key] = ctx.substitute(resolved[key], f"{where}.volumeMounts[{i}].{key}")
            volume_mounts.append(resolved)
        working_dir = step.get("workingDir")
        steps.append(ResolvedStep(
            name=ctx.substitute(step["name"], f"{where}.name"),
            image=ctx.substitute(step["image"], f"{where}.image"),
            command=ctx.expand(step.get("command", []), f"{where}.command"),
            args=ctx.expand(step.get("args", []), f"{where}.args"),
            env=tuple(env),
            volume_mounts=tuple(volume_mounts),
            security_context=copy.deepcopy(step.get("securityContext", {})),
            working_dir=None if working_dir is None else ctx.substitute(working_dir, f"{where}.workingDir"),
            workspaces=mounts,
        ))
    return steps


def kubernetes_volume(path: Path, files: Mapping[str, bytes], *, mode: int = 0o644) -> Path:
    """`path` laid out as the kubelet mounts a Secret or ConfigMap volume (its AtomicWriter,
    pkg/volume/util/atomic_writer.go): the files in a timestamped directory `..<time>`, a
    symlink `..data` to it, and one symlink per key into `..data`. `mode` is the volume's
    defaultMode (0644 unless the volume says otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.000000001", time.gmtime())
    (path / stamp).mkdir()
    for key, data in files.items():
        (path / stamp / key).write_bytes(data)
        os.chmod(path / stamp / key, mode)
        os.symlink(f"..data/{key}", path / key)
    os.symlink(stamp, path / "..data")
    return path
