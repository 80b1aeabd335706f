"""MLflow's MLproject format: entry points, typed parameters, command templates, environments.

Implemented here rather than through `mlflow.projects`: MLflow (even mlflow-skinny) pulls in a
tracking client and dozens of dependencies to run one shell command, and its runner insists on
its own environment managers. The format is small; this follows MLflow's rules for it
(parameter substitution with shell quoting, extra parameters appended as `--key value`).
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass

import yaml

from packager.errors import InputError

MLPROJECT = "MLproject"
PARAM_TYPES = ("string", "float", "int", "path", "uri")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: str | None  # None: required


@dataclass(frozen=True)
class EntryPoint:
    name: str
    command: str
    parameters: tuple[Parameter, ...]


@dataclass(frozen=True)
class MLProject:
    name: str
    entry_points: tuple[EntryPoint, ...]
    conda_env: str | None  # file name, relative to the project
    python_env: str | None

    def entry_point(self, name: str) -> EntryPoint:
        for ep in self.entry_points:
            if ep.name == name:
                return ep
        known = ", ".join(ep.name for ep in self.entry_points) or "none"
        raise InputError(f"has no entry point {name!r} (it has: {known})", file=MLPROJECT,
                         fix=f"use --entry-point with one of: {known}")


def parse_mlproject(text: str, *, default_name: str) -> MLProject:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"is not valid YAML: {str(exc).splitlines()[0]}", file=MLPROJECT,
                         fix="see MLflow's MLproject format") from None
    if not isinstance(doc, dict):
        raise InputError("must be a YAML mapping", file=MLPROJECT,
                         fix="give it name:, entry_points: and an environment")
    eps = doc.get("entry_points")
    if not isinstance(eps, dict) or not eps:
        raise InputError("field 'entry_points' is missing or empty", file=MLPROJECT,
                         fix="declare at least `entry_points: {main: {command: ...}}`")
    entry_points = []
    for ep_name, spec in eps.items():
        if isinstance(spec, str):
            spec = {"command": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("command"), str):
            raise InputError(f"entry point {ep_name!r} has no 'command' string", file=MLPROJECT,
                             fix=f"add `command: python train.py` under {ep_name}")
        params = []
        for p_name, p_spec in (spec.get("parameters") or {}).items():
            if not isinstance(p_spec, dict):  # `alpha: float` is shorthand for the type
                p_spec = {"type": p_spec}
            p_type = str(p_spec.get("type", "string"))
            if p_type not in PARAM_TYPES:
                raise InputError(
                    f"parameter {p_name!r} of entry point {ep_name!r} has type {p_type!r}",
                    file=MLPROJECT, fix=f"use one of {', '.join(PARAM_TYPES)}")
            default = p_spec.get("default")
            params.append(Parameter(str(p_name), p_type,
                                    None if default is None else str(default)))
        entry_points.append(EntryPoint(str(ep_name), spec["command"], tuple(params)))
    return MLProject(
        name=str(doc.get("name") or default_name),
        entry_points=tuple(entry_points),
        conda_env=doc.get("conda_env"),
        python_env=doc.get("python_env"),
    )


def _check_value(p: Parameter, value: str) -> str:
    if p.type == "float":
        try:
            if not math.isfinite(float(value)):
                raise ValueError
        except ValueError:
            raise InputError(f"parameter {p.name!r} is a float, got {value!r}",
                             fix=f"pass -P {p.name}=<number>") from None
    elif p.type == "int" and not re.fullmatch(r"[+-]?\d+", value):
        raise InputError(f"parameter {p.name!r} is an int, got {value!r}",
                         fix=f"pass -P {p.name}=<whole number>")
    return value


def parse_params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _KEY_RE.fullmatch(key):
            raise InputError(f"-P {pair!r} is not key=value", fix="pass parameters as -P name=value")
        out[key] = value
    return out


def render_command(ep: EntryPoint, given: dict[str, str]) -> str:
    """MLflow's substitution: declared parameters replace `{name}` (shell-quoted); the rest are
    appended as `--name value`."""
    values: dict[str, str] = {}
    for p in ep.parameters:
        if p.name in given:
            values[p.name] = _check_value(p, given[p.name])
        elif p.default is not None:
            values[p.name] = _check_value(p, p.default)
        else:
            raise InputError(f"entry point {ep.name!r} needs parameter {p.name!r}",
                             fix=f"pass -P {p.name}=<{p.type}>")
    try:
        command = ep.command.format(**{k: shlex.quote(v) for k, v in values.items()})
    except (KeyError, IndexError) as exc:
        raise InputError(f"the command of entry point {ep.name!r} uses {exc} which is not a "
                         "declared parameter", file=MLPROJECT,
                         fix="declare it under parameters:") from None
    declared = {p.name for p in ep.parameters}
    extra = [f"--{k} {shlex.quote(v)}" for k, v in given.items() if k not in declared]
    return " ".join([command, *extra])
