"""The MLproject trainer: run an entry point, collect its output with the project's data/,
write the manifest, and move the result into --target all at once."""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path

import yaml

from packager.errors import InputError, TrainError
from packager.executor.artifact import pack
from packager.executor.fs import staged_dir
from packager.executor.reader import read_input
from packager.executor.report import Reporter
from packager.manifest import check_name, check_version
from packager.mlproject import MLPROJECT, MLProject, parse_mlproject, render_command

OUTPUT_ENV = "ODAHUFLOW_OUTPUT_DIR"  # the original trainer's name; training code writes here
ENV_MANAGERS = ("local", "virtualenv", "conda")
MANIFEST = "odahuflow.model.yaml"
LOG_TAIL = 20


@dataclass(frozen=True)
class TrainRequest:
    project: Path
    target: Path
    entry_point: str = "main"
    params: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    version: int = 1
    env_manager: str = "local"
    data_dir: str = "data"
    overwrite_data: bool = False
    archive: Path | None = None


def _find_mlproject(project: Path) -> Path:
    if not project.is_dir():
        raise InputError("is not a directory", file=str(project),
                         fix="give the path of an MLproject repository")
    for child in project.iterdir():
        if child.name.lower() == MLPROJECT.lower() and child.is_file():
            return child
    raise InputError(f"has no {MLPROJECT} file", file=str(project),
                     fix=f"add an {MLPROJECT} file (MLflow's format) with a main entry point")


def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "triton-packager" / "train-envs"


def _virtualenv(project: Path, python_env: str | None, report: Reporter) -> Path:
    """A virtualenv with the project's declared requirements, cached by their content."""
    deps: list[str] = []
    if python_env:
        doc = yaml.safe_load((project / python_env).read_text()) or {}
        deps = [str(d) for d in doc.get("dependencies") or []]
    elif (project / "requirements.txt").is_file():
        deps = ["-r", str(project / "requirements.txt")]
    key = hashlib.sha256("\n".join([sys.version, *deps]).encode()).hexdigest()[:16]
    env = _cache() / key
    if (env / ".complete").exists():
        return env
    report.step(f"train: creating a virtualenv ({len(deps)} requirement lines)")
    shutil.rmtree(env, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    if deps:
        proc = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", *deps],
                              capture_output=True, text=True, cwd=project)
        if proc.returncode != 0:
            raise TrainError("installing the project's requirements failed",
                             log_tail=tuple(proc.stderr.strip().splitlines()[-LOG_TAIL:]),
                             fix="check the requirements and the package index")
    (env / ".complete").write_text("ok\n")
    return env


def _command_prefix(req: TrainRequest, spec: MLProject, report: Reporter) -> tuple[list[str], str]:
    """(argv prefix, PATH) for the chosen environment manager."""
    path = os.environ.get("PATH", "")
    conda_env = spec.conda_env
    if req.env_manager == "conda":
        exe = next((shutil.which(n) for n in ("conda", "mamba", "micromamba") if shutil.which(n)),
                   None)
        if exe is None:
            raise InputError(
                "--env-manager conda needs a conda, mamba or micromamba executable, and none is "
                "on PATH", fix="install one, or use --env-manager virtualenv or local")
        if not conda_env:
            raise InputError(f"{MLPROJECT} declares no conda_env", file=str(req.project),
                             fix="add conda_env: train_conda.yaml, or use another env manager")
        env_name = f"triton-train-{req.project.resolve().name}"
        create = ([exe, "create", "-y", "-n", env_name, "-f", conda_env]
                  if exe.endswith("micromamba") else
                  [exe, "env", "update", "-n", env_name, "-f", conda_env])
        proc = subprocess.run(create, cwd=req.project, capture_output=True, text=True)
        if proc.returncode != 0:
            raise TrainError(f"creating the conda environment from {conda_env} failed",
                             log_tail=tuple((proc.stdout + proc.stderr).splitlines()[-LOG_TAIL:]),
                             fix="check the conda file and that a conda channel is reachable")
        return [exe, "run", "-n", env_name], path
    if req.env_manager == "virtualenv":
        env_dir = _virtualenv(req.project.resolve(), spec.python_env, report)
        return [], f"{env_dir / 'bin'}{os.pathsep}{path}"
    return [], f"{Path(sys.executable).parent}{os.pathsep}{path}"


def _copy_data(src: Path, out: Path, overwrite: bool, report: Reporter) -> None:
    for item in sorted(src.rglob("*")):
        rel = item.relative_to(src)
        dest = out / rel
        if item.is_symlink():
            raise InputError(f"{rel} in the data directory is a symlink", file=str(src),
                             fix="replace it with the file it points to")
        if item.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif dest.exists() and not overwrite:
            report.warn(f"data/{rel} not copied: training produced {rel} (use --overwrite-data)")
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, dest)


def train(req: TrainRequest, report: Reporter) -> Path:
    if req.env_manager not in ENV_MANAGERS:
        raise InputError(f"--env-manager {req.env_manager!r} is unknown",
                         fix=f"use one of {', '.join(ENV_MANAGERS)}")
    project = req.project.resolve()
    mlproject_file = _find_mlproject(project)
    spec = parse_mlproject(mlproject_file.read_text(encoding="utf-8"),
                           default_name=project.name)
    ep = spec.entry_point(req.entry_point)
    command = render_command(ep, dict(req.params))
    name = check_name(req.name or spec.name, file=str(mlproject_file) if not req.name else "--name")
    version = check_version(req.version, file="--version")
    target = req.target.resolve()
    if target == project or project in target.parents:
        raise InputError("--target is inside the project", file=str(target),
                         fix="choose a --target outside the MLproject repository")

    prefix, path = _command_prefix(req, spec, report)

    with staged_dir(target) as out:
        env = dict(os.environ, PATH=path, **{OUTPUT_ENV: str(out)})
        env["MLFLOW_ENTRY_POINT"] = ep.name
        report.step(f"train: {spec.name}:{ep.name}: {command}")
        started = time.monotonic()
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)
        proc = subprocess.Popen([*prefix, "bash", "-c", command], cwd=project, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            report.log(f"[{time.monotonic() - started:7.1f}s] {line}")
        code = proc.wait()
        elapsed = time.monotonic() - started
        if code != 0:
            raise TrainError(f"the training command exited with code {code} after {elapsed:.1f}s",
                             log_tail=tuple(tail),
                             fix="fix the training code; --target was left as it was")
        data = project / req.data_dir
        if data.is_dir():
            _copy_data(data, out, req.overwrite_data, report)
        (out / MANIFEST).write_text(yaml.safe_dump({"name": name, "version": version},
                                                   sort_keys=False))
        from packager.detect import detect

        try:
            detect(read_input(out))
        except InputError as exc:
            raise TrainError(
                f"training produced no usable model: {exc.message}",
                fix=f"save the model file (e.g. model.onnx) into ${OUTPUT_ENV}; "
                "--target was left as it was",
            ) from None
        report.step(f"train: done in {elapsed:.1f}s; model {name!r} version {version}")
    if req.archive is not None:
        pack(target, req.archive)
        report.step(f"train: archive {req.archive}")
    return target
