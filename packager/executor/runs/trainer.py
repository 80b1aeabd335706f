"""The MLproject trainer: run an entry point, collect its output with the project's data/,
write the manifest, and move the result into --target all at once.

Order of work: every check on the request, the project and the environment files runs first
(`_plan`), so bad input exits 2 before anything is written; then the --target lock is taken,
the environment prepared, and the command run in its own process group with a deadline.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import math
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from packager.errors import EnvironmentFault, InputError, PackagerError, TrainError, bounded
from packager.executor import process
from packager.executor.fs import staged_dir
from packager.executor.reader import read_input
from packager.executor.report import Reporter
from packager.executor.runs.artifact import pack
from packager.executor.runs.mlproject_files import load_project, read_text, stays_inside
from packager.executor.state import lock
from packager.executor.state.ownership import check_disjoint, check_replaceable, claim
from packager.limits import DEFAULT_TRAIN_TIMEOUT, ENV_MANAGERS
from packager.manifest import check_name, check_version
from packager.mlproject import (
    EntryPoint,
    MLProject,
    check_python_pin,
    parse_params,
    parse_python_env,
    render_command,
)

OUTPUT_ENV = "ODAHUFLOW_OUTPUT_DIR"  # the original trainer's name; training code writes here
MANIFEST = "odahuflow.model.yaml"
LOG_TAIL = 20
CREATE_TIMEOUT = 600.0  # `python -m venv` (ensurepip) and nothing else
INSTALL_TIMEOUT = 3600.0  # pip install / conda env update: a stalled index must not hang forever
COMPLETE = ".complete"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
_TICK = 0.2  # how often the output pump re-checks the deadline
_DRAIN = 2.0  # after the command exits, how long to keep reading what it printed last
_MAX_LINE = 4096  # longer output lines are cut: a script printing megabytes without "\n"
_TAIL_LINE = 300  # characters of each line kept for the error message


@dataclass(frozen=True)
class TrainRequest:
    """What `triton-packager train` is asked to do; the fields are the command's options, with
    the CLI's defaults. `train` checks every one before anything runs or is written."""

    project: str | os.PathLike[str]
    target: str | os.PathLike[str]
    entry_point: str = "main"
    # Entry point parameters: (key, value) pairs or `-P` strings "KEY=VALUE", checked alike.
    params: Sequence[tuple[str, str] | str] = ()
    name: str | None = None
    version: int | str = 1  # a positive whole number (a str as --version gives it)
    env_manager: str = "local"
    data_dir: str = "data"
    overwrite_data: bool = False
    archive: str | os.PathLike[str] | None = None  # empty: none
    timeout: float = DEFAULT_TRAIN_TIMEOUT  # seconds for the training command itself
    force: bool = False  # replace a non-empty --target the packager did not create


@dataclass(frozen=True)
class VenvSpec:
    """What a cached virtualenv holds: its key is the hash of this content, not of file paths,
    so an edited requirements.txt gets a new environment."""

    groups: tuple[tuple[str, ...], ...]  # pip install argument lists, installed in order
    requirements: bytes | None  # requirements.txt as read when the run started

    def key(self) -> str:
        h = hashlib.sha256()
        parts = [sys.implementation.name, sys.version, sys.base_prefix, *(
            "\0".join(g) for g in self.groups)]
        for part in parts:
            data = part.encode("utf-8", "surrogateescape")
            h.update(b"%d:" % len(data) + data)  # length-prefixed: no two lists hash alike
        h.update(b"requirements.txt:" + (self.requirements if self.requirements is not None
                                          else b"<none>"))
        return h.hexdigest()[:32]

    def line_count(self) -> int:
        return sum(len(g) for g in self.groups) + (self.requirements or b"").count(b"\n")


@dataclass(frozen=True)
class _Plan:
    """The checked request: nothing here has touched the disk yet."""

    project: Path
    spec: MLProject
    ep: EntryPoint
    command: str
    name: str
    version: int
    target: Path
    archive: Path | None
    data: Path | None
    venv: VenvSpec | None
    conda: tuple[str, Path, str] | None  # (executable, environment file, env name)


# --- checks (no writes) -----------------------------------------------------------------------

def _resolved(path: Path, label: str) -> Path:
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # a symlink loop (RuntimeError before Python 3.13)
        raise InputError(f"{label} {bounded(str(path))} runs into a symlink loop", file=str(path),
                         fix=f"give a {label} without looping symlinks") from None


def _output_path(given: Path, label: str) -> Path:
    """The real location of an output: parent symlinks resolved, the last component kept as
    written (a symlink there is refused by check_replaceable rather than followed)."""
    absolute = given.absolute()
    if absolute.name in ("", ".."):
        absolute = _resolved(absolute, label)
    if not absolute.name:
        raise InputError(f"{label} is the root directory", file=str(given),
                         fix=f"choose a new directory as {label}")
    return _resolved(absolute.parent, label) / absolute.name


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def _check_target(given: Path, project: Path, force: bool) -> Path:
    target = _output_path(given, "--target")
    check_disjoint(project, "project", target, "--target")
    check_replaceable(target, option="--target", force=force)
    return target


def _check_archive(given: Path | None, target: Path, project: Path,
                   force: bool = False) -> Path | None:
    if given is None:
        return None
    archive = _output_path(given, "--archive")
    fix = "choose an --archive path outside --target and the project, e.g. ./model.tar.gz"
    if not archive.name.endswith(ARCHIVE_SUFFIXES):
        raise InputError(f"--archive name {bounded(archive.name)} has an unknown suffix",
                         file=str(given), fix=f"end it with one of {', '.join(ARCHIVE_SUFFIXES)}")
    for base, label in ((target, "--target"), (project, "the project")):
        if _inside(archive, base):
            raise InputError(f"--archive {bounded(str(given))} is inside {label} {base}",
                             file=str(given), fix=fix)
    if archive.is_dir() or archive.is_symlink():
        raise InputError("--archive is a directory or a symlink", file=str(given), fix=fix)
    if archive.exists() and not force:
        raise InputError("--archive exists; it would be overwritten", file=str(given),
                         fix="choose a new --archive path, or pass --force to replace it")
    parent = archive.parent
    while not parent.exists():  # the first existing ancestor must be a directory we can use
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"--archive is below {bounded(str(parent))}, which is not a directory",
                         file=str(given), fix=fix)
    return archive


def _check_data(project: Path, data_dir: str) -> Path | None:
    """--data-dir stays inside the project and holds only regular files and directories; found
    out now, before training, so a bad data/ never costs a training run."""
    rel = PurePosixPath(data_dir)
    fix = "give --data-dir as a directory inside the project, e.g. --data-dir data"
    if not data_dir or "\0" in data_dir or rel.is_absolute() or ".." in rel.parts:
        raise InputError(f"--data-dir {bounded(data_dir)} must be relative and stay inside the "
                         "project", file=str(project), fix=fix)
    data = project / data_dir
    if not data.exists() and not data.is_symlink():
        return None
    real = _resolved(data, "--data-dir")
    if not real.is_dir() or not _inside(real, project):
        raise InputError(f"--data-dir {bounded(data_dir)} is not a directory inside the project",
                         file=str(data), fix=fix)
    for item in sorted(real.rglob("*")):
        mode = item.lstat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            kind = "a symlink" if stat.S_ISLNK(mode) else "a special file"
            raise InputError(f"{bounded(str(item.relative_to(real)))} in the data directory is "
                             f"{kind}", file=str(real), fix="replace it with a regular file")
    return real


def venv_spec(project: Path, spec: MLProject) -> VenvSpec:
    """What --env-manager virtualenv installs: python_env.yaml's lists, or requirements.txt."""
    if spec.python_env is not None:
        path = project / spec.python_env
        env = parse_python_env(read_text(path, fix="see MLflow's python_env.yaml"), file=str(path))
        check_python_pin(env, file=str(path))
        return VenvSpec(tuple(g for g in (env.build_dependencies, env.dependencies) if g), None)
    req = project / "requirements.txt"
    if not (req.is_file() or req.is_symlink()):
        return VenvSpec((), None)
    stays_inside(project, req)
    # Read once, checked (a regular, small, UTF-8 file): these bytes are the cache key.
    content = read_text(req, fix="pip reads requirements.txt as UTF-8").encode("utf-8")
    return VenvSpec((("-r", str(req)),), content)


def _check_conda(project: Path, spec: MLProject) -> tuple[str, Path, str]:
    """(conda executable, environment file, env name): the name carries the file's hash, so an
    edited file gets a new environment instead of a stale one."""
    exe = next((found for n in ("conda", "mamba", "micromamba") if (found := shutil.which(n))),
               None)
    if exe is None:
        raise InputError(
            "--env-manager conda needs a conda, mamba or micromamba executable, and none is "
            "on PATH", fix="install one, or use --env-manager virtualenv or local")
    if not spec.conda_env:
        raise InputError("declares no conda_env", file=spec.file,
                         fix="add conda_env: train_conda.yaml, or use another env manager")
    conda_file = project / spec.conda_env
    text = read_text(conda_file, fix="conda reads environment files as UTF-8 YAML")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", project.name)[:40].strip("-") or "project"
    return exe, conda_file, f"triton-train-{label}-{digest}"


def _plan(req: TrainRequest) -> _Plan:
    if req.env_manager not in ENV_MANAGERS:
        raise InputError(f"--env-manager {bounded(req.env_manager)} is unknown",
                         fix=f"use one of {', '.join(ENV_MANAGERS)}")
    if not (isinstance(req.timeout, (int, float)) and math.isfinite(req.timeout)
            and req.timeout > 0):
        raise InputError(f"--timeout {bounded(req.timeout)} is not a positive number of seconds",
                         fix="pass e.g. --timeout 3600")
    for option, given in (("PROJECT", req.project), ("--target", req.target)):
        if os.fspath(given) == "":  # Path("") would be the working directory
            raise InputError(f"{option} is empty", fix=f"give {option} a directory path")
    # The CLI's own checks once, first: -P and --version before the project is read.
    params = parse_params(req.params)
    version = check_version(req.version, file="--version")
    project = _resolved(Path(req.project), "the project")
    mlproject_file, spec = load_project(project)
    ep = spec.entry_point(req.entry_point)
    command = render_command(ep, params)
    name = check_name(req.name or spec.name, file="--name" if req.name else str(mlproject_file))
    target = _check_target(Path(req.target), project, req.force)
    return _Plan(
        project=project, spec=spec, ep=ep, command=command, name=name, version=version,
        target=target, archive=_check_archive(Path(req.archive) if req.archive else None, target,
                                              project, req.force),
        data=_check_data(project, req.data_dir),
        venv=venv_spec(project, spec) if req.env_manager == "virtualenv" else None,
        conda=_check_conda(project, spec) if req.env_manager == "conda" else None,
    )


# --- environments -----------------------------------------------------------------------------

def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is invalid and ignored
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:
            raise EnvironmentFault("cannot find a cache directory: HOME is not set",
                                   fix="set HOME or XDG_CACHE_HOME") from None
    return Path(base) / "triton-packager" / "train-envs"


def _tail(text: str) -> tuple[str, ...]:
    return tuple(ln[:_TAIL_LINE] for ln in text.strip().splitlines()[-LOG_TAIL:])


def _env_step(cmd: Sequence[str], *, what: str, timeout: float, fix: str,
              failure: type[PackagerError] = TrainError, **kwargs: Any) -> None:
    """One environment command with a deadline: too slow is the machine or the network (exit 3);
    failing is usually the requirements (exit 6) unless the caller knows better."""
    env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    try:
        proc = process.run(cmd, timeout=timeout, stdin=subprocess.DEVNULL, env=env, **kwargs)
    except process.Timeout as exc:
        raise EnvironmentFault(f"{what} timed out after {exc.seconds:.0f}s", log_tail=_tail(exc.output),
                               fix="check that the package index is reachable, then retry") from None
    if proc.returncode != 0:
        raise failure(f"{what} failed (exit code {proc.returncode})",
                         log_tail=_tail(proc.stdout + proc.stderr), fix=fix)


def _build_venv(env: Path, spec: VenvSpec, cwd: Path, report: Reporter) -> None:
    report.step(f"train: creating a virtualenv ({spec.line_count()} requirement lines) in {env}")
    _env_step([sys.executable, "-m", "venv", str(env)], what="creating the virtualenv",
              timeout=CREATE_TIMEOUT, failure=EnvironmentFault,
              fix="install the venv module (e.g. apt-get install python3-venv)")
    for group in spec.groups:
        _env_step([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--timeout", "60",
                   *group], what="installing the project's requirements", cwd=cwd,
                  timeout=INSTALL_TIMEOUT, fix="check the requirements and the package index")


def virtualenv(spec: VenvSpec, cwd: Path, report: Reporter,
               build: Callable[[Path, VenvSpec, Path, Reporter], None] = _build_venv) -> Path:
    """The cached virtualenv for `spec`, built once.

    Built in place (not staged and renamed: pip writes the env's absolute path into every
    script's shebang) under a lock, so two trainings never build the same env at once; the
    `.complete` file is written last, and a directory without it is an interrupted build,
    never trusted and rebuilt from scratch.
    """
    env = _cache() / spec.key()
    if (env / COMPLETE).is_file():
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    with lock.exclusive(env.parent / f".{env.name}.lock", what=f"the training environment {env}",
                        report=report, wait=CREATE_TIMEOUT + INSTALL_TIMEOUT):
        if (env / COMPLETE).is_file():  # another run built it while this one waited
            return env
        shutil.rmtree(env, ignore_errors=True)
        try:
            build(env, spec, cwd, report)
            (env / COMPLETE).write_text("ok\n")
        except BaseException:
            shutil.rmtree(env, ignore_errors=True)
            raise
    return env


def _conda(exe: str, conda_file: Path, env_name: str, project: Path, report: Reporter) -> list[str]:
    create = ([exe, "create", "-y", "-n", env_name, "-f", str(conda_file)]
              if exe.endswith("micromamba") else
              [exe, "env", "update", "-n", env_name, "-f", str(conda_file)])
    cache = _cache()
    cache.mkdir(parents=True, exist_ok=True)
    with lock.exclusive(cache / f".conda-{env_name}.lock", what=f"conda env {env_name}",
                        report=report, wait=INSTALL_TIMEOUT):
        report.step(f"train: conda env {env_name} from {conda_file.name}")
        _env_step(create, what=f"creating the conda environment from {conda_file.name}",
                  cwd=project, timeout=INSTALL_TIMEOUT,
                  fix="check the conda file and that a conda channel is reachable")
    return [exe, "run", "-n", env_name]


def _command_prefix(plan: _Plan, report: Reporter) -> tuple[list[str], str]:
    """(argv prefix, PATH) for the chosen environment manager."""
    path = os.environ.get("PATH", "")
    if plan.conda is not None:
        return _conda(*plan.conda, plan.project, report), path
    if plan.venv is not None:
        env_dir = virtualenv(plan.venv, plan.project, report)
        return [], f"{env_dir / 'bin'}{os.pathsep}{path}"
    return [], f"{Path(sys.executable).parent}{os.pathsep}{path}"


# --- running the command ----------------------------------------------------------------------

class _Lines:
    """Splits the child's byte stream into bounded, decoded lines."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        *complete, self.pending = (self.pending + chunk).split(b"\n")
        for raw in complete:
            self._out(raw)
        while len(self.pending) > _MAX_LINE:
            self._out(self.pending[:_MAX_LINE])
            self.pending = self.pending[_MAX_LINE:]

    def flush(self) -> None:
        if self.pending:
            self._out(self.pending)
            self.pending = b""

    def _out(self, raw: bytes) -> None:
        self.emit(raw[:_MAX_LINE].decode("utf-8", "replace").rstrip("\r"))


def _pump(proc: subprocess.Popen[bytes], deadline: float, emit: Callable[[str], None]) -> int | None:
    """Forward the child's output until it exits; None when the deadline passes first.

    select() with a short tick instead of a blocking readline: the deadline is checked while
    the child is silent, and a background process that inherited the pipe (keeping it open
    after the command exited) cannot hold the packager. Signals still interrupt select().
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    lines = _Lines(emit)
    is_open, drain_until = True, math.inf
    try:
        while True:
            code, now = proc.poll(), time.monotonic()
            if code is None and now >= deadline:
                return None
            if code is not None:
                drain_until = min(drain_until, now + _DRAIN)
                if not is_open or now >= drain_until:
                    return code
            wait = 0.0 if code is not None else min(_TICK, deadline - now)
            if not is_open:  # the command closed its output but runs on
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait)
                continue
            if not select.select([fd], [], [], wait)[0]:
                if code is not None:
                    return code  # exited, and whoever still holds the pipe is silent
                continue
            chunk = os.read(fd, 65536)
            if chunk:
                lines.feed(chunk)
            else:
                is_open = False
    finally:
        lines.flush()


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _run_command(plan: _Plan, prefix: list[str], path: str, out: Path, timeout: float,
                 report: Reporter) -> float:
    """Run the entry point with `out` as its output dir; the seconds it took."""
    env = dict(os.environ, PATH=path, **{OUTPUT_ENV: str(out)}, MLFLOW_ENTRY_POINT=plan.ep.name)
    report.step(f"train: {plan.spec.name}:{plan.ep.name}: {bounded(plan.command, 500, quote=False)}")
    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL)

    def emit(line: str) -> None:
        tail.append(line[:_TAIL_LINE])
        report.log(f"[{time.monotonic() - started:7.1f}s] {line}")

    # A new session: the whole group (the script's own children included) is killed when this
    # block is left for any reason: success, failure, deadline, SIGINT/SIGTERM.
    with process.child([*prefix, "bash", "-c", plan.command], cwd=plan.project, env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT) as proc:
        code = _pump(proc, started + timeout, emit)
    elapsed = time.monotonic() - started
    if code is None:
        raise TrainError(f"the training command timed out after {timeout:g} s; it and every "
                         "process it started were stopped", log_tail=tuple(tail),
                         fix="raise --timeout, or make the training finish sooner; --target was "
                         "left as it was")
    if code != 0:
        raise TrainError(f"the training command {_describe_exit(code)} after {elapsed:.1f}s",
                         log_tail=tuple(tail),
                         fix="fix the training code; --target was left as it was")
    return elapsed


def _copy_data(src: Path, out: Path, overwrite: bool, report: Reporter) -> None:
    for item in sorted(src.rglob("*")):
        rel = item.relative_to(src)
        dest = out / rel
        if item.is_symlink():  # checked before training too; this catches a swap since
            raise InputError(f"{rel} in the data directory is a symlink", file=str(src),
                             fix="replace it with the file it points to")
        if item.is_dir() != dest.is_dir() and dest.exists():
            raise TrainError(
                f"data/{rel} is a {'directory' if item.is_dir() else 'file'}, but the training "
                f"produced a {'directory' if dest.is_dir() else 'file'} {rel}",
                fix="rename one of them; --target was left as it was")
        if item.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif dest.exists() and not overwrite:
            report.warn(f"data/{rel} not copied: training produced {rel} (use --overwrite-data)")
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, dest)


def _collect(plan: _Plan, out: Path, overwrite: bool, report: Reporter) -> None:
    if plan.data is not None:
        _copy_data(plan.data, out, overwrite, report)
    from packager.layout import is_repository

    repository = is_repository(read_input(out).entries)
    if repository:  # a whole model repository: its directories name the models and versions
        report.info("training produced a model repository; --name and --version are not used")
    else:
        (out / MANIFEST).write_text(yaml.safe_dump(
            {"name": plan.name, "version": plan.version}, sort_keys=False))
    claim(out, "train")  # again: the training code may have removed or overwritten the mark
    from packager.analysis import analyze_package
    from packager.detect import detect

    try:
        if repository:
            analyze_package([read_input(out)])
        else:
            detect(read_input(out))
    except InputError as exc:
        raise TrainError(
            f"training produced no usable model: {exc.message}",
            fix=f"save the model file (e.g. model.onnx) into ${OUTPUT_ENV}; "
            "--target was left as it was",
        ) from None


def train(req: TrainRequest, report: Reporter) -> Path:
    plan = _plan(req)  # every check; nothing is written before this returns
    target = plan.target
    with lock.exclusive(lock.lock_for(target), what=str(target), report=report):
        prefix, path = _command_prefix(plan, report)
        with staged_dir(target, kind="train", force=req.force) as out:
            elapsed = _run_command(plan, prefix, path, out, req.timeout, report)
            _collect(plan, out, req.overwrite_data, report)
        report.step(f"train: done in {elapsed:.1f}s; model {plan.name!r} version {plan.version}")
    if plan.archive is not None:
        pack(target, plan.archive)
        report.step(f"train: archive {plan.archive}")
    return target
