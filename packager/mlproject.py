"""MLflow's MLproject format: entry points, typed parameters, command templates, environments.

Implemented here rather than through `mlflow.projects`: MLflow (even mlflow-skinny) pulls in a
tracking client and dozens of dependencies to run one shell command, and its runner insists on
its own environment managers. The format is small; this follows MLflow's rules for it
(parameter substitution with shell quoting, extra parameters appended as `--key value`, one
environment field per project) and refuses, with one message, everything MLflow would crash on.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import NoReturn

from packager import safeyaml
from packager.errors import InputError, bounded

MLPROJECT = "MLproject"
PARAM_TYPES = ("string", "float", "int", "path", "uri")
ENV_FIELDS = ("conda_env", "python_env", "docker_env")
MAX_VALUE_CHARS = 4096
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")  # -P keys; undeclared ones become `--key`
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # declared names: plain `{name}` fields only
_VERSION_RE = re.compile(r"(\d{1,3})\.(\d{1,3})(?:\.\d{1,4})?")
FORMAT_FIX = "see MLflow's MLproject format: https://mlflow.org/docs/latest/projects.html"
_TEMPLATE_FIX = "use {name} for a declared parameter, and {{ or }} for a literal brace"


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
    file: str = MLPROJECT  # where it was declared, for messages


@dataclass(frozen=True)
class MLProject:
    name: str
    entry_points: tuple[EntryPoint, ...]
    conda_env: str | None  # file name, relative to the project
    python_env: str | None
    file: str = MLPROJECT

    def entry_point(self, name: str) -> EntryPoint:
        for ep in self.entry_points:
            if ep.name == name:
                return ep
        known = bounded(", ".join(ep.name for ep in self.entry_points) or "none", 300, quote=False)
        raise InputError(f"has no entry point {bounded(name)} (it has: {known})", file=self.file,
                         fix=f"use --entry-point with one of: {known}")


@dataclass(frozen=True)
class PythonEnv:
    """MLflow's python_env.yaml: the interpreter version and pip requirement lines."""

    python: str | None
    build_dependencies: tuple[str, ...]
    dependencies: tuple[str, ...]


def _kind(value: object) -> str:
    """How a message names a value of the wrong type: its YAML kind and the value, bounded."""
    if isinstance(value, str):
        return bounded(value)
    names = {dict: "a mapping", list: "a list", bool: "the boolean", int: "the integer",
             float: "the number", type(None): "nothing (null)"}
    word = names.get(type(value), type(value).__name__)
    return word if value is None else f"{word} {bounded(value)}"


def _refuse(file: str, message: str, fix: str) -> NoReturn:
    raise InputError(message, file=file, fix=fix)


# --- MLproject --------------------------------------------------------------------------------

def parse_mlproject(text: str, *, default_name: str, file: str = MLPROJECT) -> MLProject:
    doc = safeyaml.load(text, file=file, fix=FORMAT_FIX)
    if not isinstance(doc, dict):
        _refuse(file, f"must be a YAML mapping, got {_kind(doc)}",
                "give it name:, entry_points: and an environment")
    envs = [f for f in ENV_FIELDS if f in doc]
    if len(envs) > 1:  # MLflow refuses these too: which environment would run is ambiguous
        _refuse(file, f"declares {' and '.join(envs)}; a project has one environment",
                f"keep one of {', '.join(envs)} (MLflow refuses such a project as well)")
    return MLProject(
        name=_project_name(doc.get("name"), default_name, file),
        entry_points=_entry_points(doc.get("entry_points"), file),
        conda_env=_env_field(doc, "conda_env", file),
        python_env=_env_field(doc, "python_env", file),
        file=file,
    )


def _project_name(value: object, default_name: str, file: str) -> str:
    if value is None or value == "":
        return default_name
    if not isinstance(value, str):
        _refuse(file, f"field 'name' must be a string, got {_kind(value)}",
                "set name: to a model name such as my-model")
    return value


def _env_field(doc: dict[object, object], field: str, file: str) -> str | None:
    value = doc.get(field)
    if value is None:
        return None
    fix = f"set {field}: to a file name relative to the project, e.g. {field}: {field}.yaml"
    if not isinstance(value, str) or not value.strip():
        _refuse(file, f"field '{field}' must be a file name, got {_kind(value)}", fix)
    path = PurePosixPath(value)
    if not passable(value) or path.is_absolute() or value.startswith("~") or ".." in path.parts:
        _refuse(file, f"field '{field}' is {bounded(value)}; it must stay inside the project "
                "(relative, without '..')", fix)
    return value


def _entry_points(value: object, file: str) -> tuple[EntryPoint, ...]:
    if not isinstance(value, dict) or not value:
        _refuse(file, f"field 'entry_points' must be a non-empty mapping, got {_kind(value)}",
                "declare at least `entry_points: {main: {command: python train.py}}`")
    return tuple(_entry_point(name, spec, file) for name, spec in value.items())


def _entry_point(name: object, spec: object, file: str) -> EntryPoint:
    if not isinstance(name, str) or not name or not passable(name):
        _refuse(file, f"entry point names must be non-empty strings, got {_kind(name)}",
                "name entry points like main: or train:")
    where = f"entry_points.{name}"
    if isinstance(spec, str):  # `main: python train.py` is shorthand for the command
        spec = {"command": spec}
    if not isinstance(spec, dict):
        _refuse(file, f"field '{bounded(where, quote=False)}' must be a mapping with a command, "
                f"got {_kind(spec)}", f"write `{name}: {{command: python train.py}}`")
    command = spec.get("command")
    if not isinstance(command, str) or not command.strip() or not passable(command):
        _refuse(file, f"field '{bounded(where, quote=False)}.command' must be a non-empty shell "
                f"command without NUL or lone surrogate characters, got {_kind(command)}",
                f"add `command: python train.py` under {bounded(name)}")
    return EntryPoint(name, command, _parameters(where, spec.get("parameters"), file), file)


def _parameters(where: str, value: object, file: str) -> tuple[Parameter, ...]:
    field = bounded(f"{where}.parameters", quote=False)
    if value is None:
        return ()
    if not isinstance(value, dict):
        _refuse(file, f"field '{field}' must be a mapping of parameter names, got {_kind(value)}",
                "write parameters as `alpha: {type: float, default: 0.5}`, one per line")
    return tuple(_parameter(field, name, spec, file) for name, spec in value.items())


def _parameter(field: str, name: object, spec: object, file: str) -> Parameter:
    if not isinstance(name, str) or not _IDENT_RE.fullmatch(name):
        _refuse(file, f"field '{field}' has parameter name {_kind(name)}; names are identifiers "
                "(letters, digits, _)", "rename it, e.g. learning_rate")
    if isinstance(spec, str):  # `alpha: float` is shorthand for the type
        spec = {"type": spec}
    if not isinstance(spec, dict):
        _refuse(file, f"parameter {name!r} in '{field}' must be a type or a mapping, got "
                f"{_kind(spec)}", f"write `{name}: {{type: string, default: x}}`")
    p_type = spec.get("type", "string")
    if not isinstance(p_type, str) or p_type not in PARAM_TYPES:
        _refuse(file, f"parameter {name!r} in '{field}' has type {_kind(p_type)}",
                f"use one of {', '.join(PARAM_TYPES)}")
    default = spec.get("default")
    if isinstance(default, (list, dict)):
        _refuse(file, f"parameter {name!r} in '{field}' has default {_kind(default)}; defaults "
                "are single values", f"write `default: 1` (or remove it to require -P {name}=...)")
    return Parameter(name, p_type, None if default is None else str(default))


# --- parameters and commands ------------------------------------------------------------------

def passable(text: str) -> bool:
    """Can be an argv or environment string: no NUL, and encodable the way the OS encodes them
    (YAML's "\\ud800" escape yields a lone surrogate that Popen would fail on)."""
    if "\0" in text:
        return False
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return True


def _check_text(label: str, value: str, fix: str, file: str | None = None) -> None:
    if not passable(value):
        raise InputError(f"{label} contains a NUL or a lone surrogate character: {bounded(value)}",
                         file=file, fix=fix)
    if len(value) > MAX_VALUE_CHARS:
        raise InputError(f"{label} is {len(value)} characters long; at most {MAX_VALUE_CHARS} are "
                         f"accepted: {bounded(value)}", file=file, fix=fix)


def _check_value(p: Parameter, value: str, default_of: EntryPoint | None = None) -> str:
    """A -P value, or (with `default_of`) the default the MLproject declares for it."""
    label = f"parameter {p.name!r}"
    file, fix = None, f"pass -P {p.name}=<{p.type}>"
    if default_of is not None:
        label = f"the default of parameter {p.name!r} (entry point {bounded(default_of.name)})"
        file, fix = default_of.file, f"fix its default: in the MLproject, or {fix}"
    _check_text(label, value, fix, file)
    if p.type == "float":
        try:
            if not math.isfinite(float(value)):
                raise ValueError
        except ValueError:
            raise InputError(f"{label} is a float, got {bounded(value)}", file=file,
                             fix=fix.replace(f"<{p.type}>", "<number>")) from None
    elif p.type == "int" and not re.fullmatch(r"[+-]?[0-9]+", value):
        raise InputError(f"{label} is an int, got {bounded(value)}", file=file,
                         fix=fix.replace(f"<{p.type}>", "<whole number>"))
    return value


def parse_params(pairs: Sequence[str | tuple[str, str]]) -> dict[str, str]:
    """`-P KEY=VALUE` strings, or (key, value) pairs from a Python caller, checked alike."""
    out: dict[str, str] = {}
    for given in pairs:
        if isinstance(given, str):
            pair = given
            key, sep, value = pair.partition("=")
        else:
            key, value = given
            pair, sep = f"{key}={value}", "="
            if "=" in key:  # as one -P string it would name another key
                sep = ""
        if not sep or not _KEY_RE.fullmatch(key) or len(key) > 200:
            raise InputError(f"-P {bounded(pair)} is not key=value",
                             fix="pass parameters as -P name=value (name: letters, digits, _ . -)")
        if key in out:
            raise InputError(f"-P {key} is given twice", fix=f"pass -P {key}=... once")
        _check_text(f"-P {key}", value, f"pass a value of at most {MAX_VALUE_CHARS} characters, "
                    "without NUL (put long values in a file and pass its path)")
        out[key] = value
    return out


def _substitute(ep: EntryPoint, values: dict[str, str]) -> str:
    """`{name}` -> values[name]. Parsed rather than `str.format`-ed: format() also does
    positional fields, attribute and index lookups (`{a.__class__}`), conversions and padding,
    none of which belongs in a shell command."""
    label = f"the command of entry point {bounded(ep.name)}"
    try:
        parts = list(string.Formatter().parse(ep.command))
    except ValueError as exc:  # a lone { or }
        raise InputError(f"{label} is not a valid template ({exc}): {bounded(ep.command)}",
                         file=ep.file, fix=_TEMPLATE_FIX) from None
    out: list[str] = []
    for literal, field, spec, conversion in parts:
        out.append(literal)
        if field is None:
            continue
        shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not _IDENT_RE.fullmatch(field) or spec or conversion:
            raise InputError(f"{label} uses {bounded(shown)}; only plain {{name}} fields are "
                             "substituted", file=ep.file, fix=_TEMPLATE_FIX)
        if field not in values:
            raise InputError(f"{label} uses {bounded(shown)} which is not a declared parameter",
                             file=ep.file, fix=f"declare {field} under parameters:")
        out.append(values[field])
    return "".join(out)


def render_command(ep: EntryPoint, given: dict[str, str]) -> str:
    """MLflow's substitution: declared parameters replace `{name}` (shell-quoted); the rest are
    appended as `--name value`."""
    values: dict[str, str] = {}
    for p in ep.parameters:
        if p.name in given:
            values[p.name] = _check_value(p, given[p.name])
        elif p.default is not None:
            values[p.name] = _check_value(p, p.default, default_of=ep)
        else:
            raise InputError(f"entry point {bounded(ep.name)} needs parameter {p.name!r}",
                             fix=f"pass -P {p.name}=<{p.type}>")
    command = _substitute(ep, {k: shlex.quote(v) for k, v in values.items()})
    declared = {p.name for p in ep.parameters}
    extra = []
    for key, value in given.items():
        if key not in declared:
            if not _KEY_RE.fullmatch(key):  # appended unquoted as --key: it must be a plain word
                raise InputError(f"parameter name {bounded(key)} is not a plain word",
                                 fix="use letters, digits, _ . - in parameter names")
            _check_text(f"-P {key}", value, f"pass a value of at most {MAX_VALUE_CHARS} characters")
            extra.append(f"--{key} {shlex.quote(value)}")
    return " ".join([command, *extra])


# --- python_env.yaml --------------------------------------------------------------------------

def parse_python_env(text: str, *, file: str) -> PythonEnv:
    fix = "see MLflow's python_env.yaml: `python: \"3.11\"` and `dependencies: [numpy]`"
    doc = safeyaml.load(text, file=file, fix=fix)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        _refuse(file, f"must be a YAML mapping, got {_kind(doc)}", fix)
    python = doc.get("python")
    if python is not None and not isinstance(python, str):
        # `python: 3.10` is the number 3.1 in YAML: guessing would pick the wrong interpreter
        _refuse(file, f"field 'python' must be a quoted version string, got {_kind(python)}",
                'quote it: python: "3.11"')
    return PythonEnv(python, _requirement_list(doc, "build_dependencies", file),
                     _requirement_list(doc, "dependencies", file))


def _requirement_list(doc: dict[object, object], field: str, file: str) -> tuple[str, ...]:
    value = doc.get(field)
    fix = f"write {field}: as a list of pip requirements, e.g. {field}: [numpy, pandas==2.2]"
    if value is None:
        return ()
    if not isinstance(value, list):
        _refuse(file, f"field '{field}' must be a list of strings, got {_kind(value)}", fix)
    for item in value:
        # They become pip arguments: a leading '-' would be an option (-r /etc/..., --index-url)
        if (not isinstance(item, str) or not item.strip() or item.lstrip().startswith("-")
                or any(c in item for c in "\r\n") or not passable(item) or len(item) > MAX_VALUE_CHARS):
            _refuse(file, f"field '{field}' has entry {_kind(item)}; entries are requirement "
                    "strings (no options, no line breaks)", fix)
    return tuple(value)


def check_python_pin(env: PythonEnv, *, file: str,
                     running: tuple[int, int] | None = None) -> None:
    """The virtualenv manager builds from this interpreter and cannot install another Python,
    so a pin for a different major.minor is refused rather than silently ignored."""
    if env.python is None:
        return
    have = running or (sys.version_info.major, sys.version_info.minor)
    match = _VERSION_RE.fullmatch(env.python.strip())
    if match is None:
        _refuse(file, f"field 'python' is {bounded(env.python)}, not a version such as '3.11'",
                f'write python: "{have[0]}.{have[1]}"')
    want = (int(match.group(1)), int(match.group(2)))
    if want != have:
        _refuse(file, f"field 'python' asks for Python {want[0]}.{want[1]}, but "
                f"--env-manager virtualenv can only use this interpreter, Python {have[0]}.{have[1]}",
                f'set python: "{have[0]}.{have[1]}", or run triton-packager under Python '
                f"{want[0]}.{want[1]}, or use --env-manager conda")
