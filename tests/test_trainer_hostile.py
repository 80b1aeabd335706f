"""`triton-packager train` under hostile input, faults and signals.

Every refusal is checked the same way: exit 2, one "error:" message naming the file, the field
and the value, a fix, no traceback, and nothing written anywhere under the test's directory
(project byte-for-byte unchanged, no --target, no staging folder, no lock file, no env cache).
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from models import write_tree

from packager.cli import main
from packager.errors import InputError
from packager.executor.report import Reporter
from packager.executor.runs import trainer
from packager.inputs import OWNED_MARKER as MARKER
from packager.mlproject import parse_mlproject, parse_params, passable, render_command

TRAIN = (
    "import os\n"
    "out = os.environ['ODAHUFLOW_OUTPUT_DIR']\n"
    "open(os.path.join(out, 'model.py'), 'w').write('# trained\\n')\n"
    "open(os.path.join(out, 'config.pbtxt'), 'w').write('name: \"demo\"\\nbackend: \"python\"\\n')\n"
)
BASIC = "name: demo\nentry_points:\n  main:\n    command: python train.py\n"
# The background `sleep` is a grandchild of the packager, in the command's process group.
SLEEPER = ("name: demo\nentry_points:\n  main:\n    parameters:\n      pidfile: path\n"
           "    command: 'sleep 1000 & echo $! > {pidfile}; echo started; sleep 60'\n")
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


# --- helpers ----------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _project(tmp: Path, mlproject: str | bytes = BASIC,
             files: dict[str, str | bytes | None] | None = None) -> Path:
    return write_tree(tmp / "ws" / "project", {"MLproject": mlproject, "train.py": TRAIN,
                                               **(files or {})})


def _snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under root: kind, mode and content (symlinks and FIFOs are not followed)."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st_ = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st_.st_mode):
                out[rel] = ("file", st_.st_mode, path.read_bytes())
            else:
                out[rel] = ("other", st_.st_mode)
    return out


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".staging-" in p.name or ".old-" in p.name]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead: it waits for init to reap it, which some container inits never do.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _cli_env(tmp: Path) -> dict[str, str]:
    return dict(os.environ, XDG_CACHE_HOME=str(tmp / "cache"))


def _clean_exit(err: str) -> None:
    assert "Traceback" not in err, err
    assert "internal error" not in err, err


# --- bad input: refused before the first write ------------------------------------------------

def _mkfifo(tmp: Path, project: Path) -> None:
    (project / "MLproject").unlink()
    os.mkfifo(project / "MLproject")


def _foreign_target(tmp: Path, project: Path) -> None:
    write_tree(tmp / "ws" / "target", {"thesis.tex": "years of work\n"})


def _target_symlink(tmp: Path, project: Path) -> None:
    (tmp / "ws" / "real").mkdir()
    (tmp / "ws" / "target").symlink_to(tmp / "ws" / "real")


def _env_symlink_out(tmp: Path, project: Path) -> None:
    (tmp / "outside.yaml").write_text("dependencies: []\n")
    (project / "env.yaml").symlink_to(tmp / "outside.yaml")


def _data_symlink(tmp: Path, project: Path) -> None:
    (project / "data").mkdir()
    (project / "data" / "secret").symlink_to("/etc/hostname")


def _two_mlprojects(tmp: Path, project: Path) -> None:
    (project / "mlproject").write_text(BASIC)


_NOT_UTF8 = b"name: demo\nentry_points:\n  main:\n    command: python train.py # caf\xe9\n"
_BOMB = ('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
         "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n" + BASIC)


def _ep(command: str, params: str = "") -> str:
    body = f"    parameters:\n{params}" if params else ""
    return f"name: demo\nentry_points:\n  main:\n{body}    command: {command}\n"


def _with_env(field_: str, value: str) -> str:
    return f"{field_}: {value}\n" + BASIC


@dataclass(frozen=True)
class Case:
    id: str
    expect: tuple[str, ...]  # fragments naming the file, the field and the value
    mlproject: str | bytes = BASIC
    files: dict[str, str | bytes | None] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # {tmp} and {project} are filled in
    target: str = "{tmp}/ws/target"
    setup: Callable[[Path, Path], None] | None = None


VENV = ("--env-manager", "virtualenv")
CASES = [
    Case("alias-bomb", ("MLproject", "aliases (*name) are not accepted"), _BOMB),
    Case("deep-nesting", ("MLproject", "nesting deeper than 50"),
         "entry_points: " + "[" * 20000 + "]" * 20000 + "\n"),
    Case("not-utf8", ("MLproject", "not UTF-8", f"byte {_NOT_UTF8.index(0xE9)}", "0xe9"),
         _NOT_UTF8),
    Case("huge-mlproject", ("MLproject", "larger than 1048576 bytes"),
         BASIC + "#" * (1 << 21) + "\n"),
    Case("mlproject-is-fifo", ("MLproject", "not a regular file"), setup=_mkfifo),
    Case("two-mlproject-files", ("2 MLproject files", "MLproject, mlproject"), setup=_two_mlprojects),
    Case("not-a-mapping", ("MLproject", "must be a YAML mapping", "a list"), "- a\n- b\n"),
    Case("parameters-list", ("MLproject", "entry_points.main.parameters", "a list ['a', 'b']"),
         _ep("python train.py", "      - a\n      - b\n")),
    Case("parameters-scalar", ("entry_points.main.parameters", "the integer 5"),
         "name: demo\nentry_points:\n  main:\n    parameters: 5\n    command: python train.py\n"),
    Case("entry-point-list", ("MLproject", "entry_points.main", "a list ['python', 'train.py']"),
         "entry_points:\n  main: [python, train.py]\n"),
    Case("entry-point-int-name", ("entry point names", "the integer 1"),
         "entry_points:\n  1: {command: python train.py}\n"),
    Case("empty-command", ("entry_points.main.command", "''"), _ep("''")),
    Case("nul-in-command", ("entry_points.main.command", "'python train.py\\x00'"),
         _ep('"python train.py\\0"')),
    Case("surrogate-in-default", ("MLproject", "default of parameter 'a'", "lone surrogate",
                                 "'x\\ud800'"),
         _ep("python train.py {a}", '      a: {default: "x\\ud800"}\n')),
    Case("param-name-not-identifier", ("entry_points.main.parameters", "'a.b'", "identifiers"),
         _ep("python train.py", "      a.b: float\n")),
    Case("param-type-list", ("parameter 'a'", "has type a list ['float']"),
         _ep("python train.py {a}", "      a: {type: [float]}\n")),
    Case("param-default-list", ("parameter 'a'", "default a list [1, 2]"),
         _ep("python train.py {a}", "      a: {default: [1, 2]}\n")),
    Case("bad-float-default", ("MLproject", "default of parameter 'a'", "is a float", "'nan'"),
         _ep("python train.py {a}", "      a: {type: float, default: .nan}\n")),
    Case("lone-open-brace", ("MLproject", "entry point 'main'", "not a valid template",
                             "'python train.py {'"), _ep("'python train.py {'")),
    Case("lone-close-brace", ("entry point 'main'", "not a valid template", "'python train.py }'"),
         _ep("'python train.py }'")),
    Case("positional-field", ("entry point 'main'", "'{0}'", "plain {name}"),
         _ep("'python train.py {0}'")),
    Case("attribute-field", ("entry point 'main'", "'{a.__class__}'"),
         _ep("'python train.py {a.__class__}'", "      a: {default: x}\n")),
    Case("undeclared-field", ("entry point 'main'", "'{nope}'", "not a declared parameter"),
         _ep("'python train.py {nope}'")),
    Case("name-not-string", ("MLproject", "field 'name'", "a list ['a', 'b']"),
         "name: [a, b]\n" + BASIC.removeprefix("name: demo\n")),
    Case("conda-env-list", ("MLproject", "field 'conda_env'", "a list ['a.yaml']"),
         _with_env("conda_env", "[a.yaml]")),
    Case("python-env-absolute", ("field 'python_env'", "'/etc/passwd'", "inside the project"),
         _with_env("python_env", "/etc/passwd")),
    Case("python-env-dotdot", ("field 'python_env'", "'../outside.yaml'", "without '..'"),
         _with_env("python_env", "../outside.yaml")),
    Case("python-env-symlink-out", ("field 'python_env'", "'env.yaml'", "outside the project"),
         _with_env("python_env", "env.yaml"), setup=_env_symlink_out),
    Case("python-env-missing", ("field 'python_env'", "'nope.yaml'", "missing"),
         _with_env("python_env", "nope.yaml")),
    Case("conda-and-python-env", ("MLproject", "conda_env and python_env", "one environment"),
         "conda_env: c.yaml\npython_env: p.yaml\n" + BASIC, {"c.yaml": "", "p.yaml": ""}),
    Case("docker-and-conda-env", ("conda_env and docker_env",),
         "conda_env: c.yaml\ndocker_env: {image: x}\n" + BASIC, {"c.yaml": ""}),
    Case("deps-not-a-list", ("python_env.yaml", "field 'dependencies'", "'numpy'"),
         _with_env("python_env", "python_env.yaml"), {"python_env.yaml": "dependencies: numpy\n"},
         VENV),
    Case("dep-is-a-pip-option", ("python_env.yaml", "'--index-url=http://evil.example'",
                                 "no options"),
         _with_env("python_env", "python_env.yaml"),
         {"python_env.yaml": "dependencies: ['--index-url=http://evil.example']\n"}, VENV),
    Case("python-pin-other-version", ("python_env.yaml", "Python 2.7", f"Python {PY}"),
         _with_env("python_env", "python_env.yaml"), {"python_env.yaml": "python: '2.7'\n"},
         VENV),
    Case("python-pin-unquoted", ("python_env.yaml", "field 'python'", "the number 3.1", "quote"),
         _with_env("python_env", "python_env.yaml"), {"python_env.yaml": "python: 3.10\n"}, VENV),
    Case("param-nul", ("-P x", "NUL", "'a\\x00b'"), args=("-P", "x=a\0b")),
    Case("param-too-long", ("-P x", "5000 characters long", "at most 4096"),
         args=("-P", "x=" + "v" * 5000)),
    Case("param-twice", ("-P a is given twice",), args=("-P", "a=1", "-P", "a=2")),
    Case("target-is-project-parent", ("--target", "contains the project"), target="{tmp}/ws"),
    Case("target-is-project", ("--target", "is the same directory as the project"),
         target="{project}"),
    Case("target-inside-project", ("--target", "is inside the project"), target="{project}/out"),
    Case("target-is-root", ("--target", "root directory"), target="/"),
    Case("target-foreign", ("--target", "did not create", "--force"), setup=_foreign_target),
    Case("target-symlink", ("--target is a symlink",), setup=_target_symlink),
    Case("archive-inside-target", ("--archive", "inside --target"),
         args=("--archive", "{tmp}/ws/target/m.tar.gz")),
    Case("archive-inside-project", ("--archive", "inside the project"),
         args=("--archive", "{project}/m.zip")),
    Case("archive-bad-suffix", ("--archive", "'m.rar'", "unknown suffix"),
         args=("--archive", "{tmp}/ws/m.rar")),
    Case("data-dir-escapes", ("--data-dir", "'../..'", "inside the project"),
         args=("--data-dir", "../..")),
    Case("data-symlink", ("'secret'", "data directory is a symlink"), setup=_data_symlink),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_before_any_write(case: Case, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    project = _project(tmp_path, case.mlproject, case.files)
    if case.setup is not None:
        case.setup(tmp_path, project)

    def fill(text: str) -> str:
        return text.replace("{tmp}", str(tmp_path)).replace("{project}", str(project))

    before = _snapshot(tmp_path)
    code = main(["train", str(project), "--target", fill(case.target), *map(fill, case.args)])
    err = capsys.readouterr().err
    assert code == 2, err
    _clean_exit(err)
    assert err.startswith("error: ") and "\n  fix: " in err, err
    for fragment in case.expect:
        assert fragment in err, (fragment, err)
    assert len(err) < 1500, err  # user values are bounded
    assert _snapshot(tmp_path) == before  # project, target, cache: nothing written
    assert not (tmp_path / ".ws.lock").exists()


# --- ownership of --target ----------------------------------------------------------------------

def test_foreign_target_is_replaced_only_with_force(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    project = _project(tmp_path)
    target = write_tree(tmp_path / "ws" / "target", {"old.txt": "theirs\n"})
    assert main(["train", str(project), "--target", str(target)]) == 2
    assert (target / "old.txt").read_text() == "theirs\n"
    assert main(["train", str(project), "--target", str(target), "--force"]) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [MARKER, "config.pbtxt", "model.py", "odahuflow.model.yaml"])
    _clean_exit(capsys.readouterr().err)


def test_second_train_into_own_target_needs_no_force(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    project = _project(tmp_path)
    target = tmp_path / "ws" / "target"
    before = _snapshot(project)
    for _ in range(2):
        assert main(["train", str(project), "--target", str(target)]) == 0, capsys.readouterr().err
    assert (target / "model.py").read_text() == "# trained\n"
    assert (tmp_path / "ws" / ".target.lock").is_file()  # the run held the --target lock
    assert _leftovers(tmp_path / "ws") == []
    assert _snapshot(project) == before


def test_training_that_deletes_the_mark_still_yields_an_owned_target(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = TRAIN + f"os.remove(os.path.join(out, {MARKER!r}))\n"
    project = _project(tmp_path, files={"train.py": train})
    target = tmp_path / "ws" / "target"
    assert main(["train", str(project), "--target", str(target)]) == 0, capsys.readouterr().err
    assert main(["train", str(project), "--target", str(target)]) == 0, capsys.readouterr().err


# --- processes: deadline, background children, signals -------------------------------------

def _assert_nothing_left(tmp: Path, project_before: dict[str, tuple[object, ...]],
                         project: Path, target: Path) -> None:
    assert not target.exists()
    assert _leftovers(target.parent) == []
    assert _snapshot(project) == project_before


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    project = _project(tmp_path, SLEEPER)
    pidfile, target = tmp_path / "grandchild.pid", tmp_path / "ws" / "target"
    before = _snapshot(project)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "packager", "train", str(project), "--target",
                           str(target), "--timeout", "2", "-P", f"pidfile={pidfile}"],
                          capture_output=True, text=True, timeout=60, env=_cli_env(tmp_path))
    assert time.monotonic() - started < 10
    assert proc.returncode == 6, proc.stderr
    _clean_exit(proc.stderr)
    assert "timed out after 2 s" in proc.stderr and "started" in proc.stderr
    grandchild = int(pidfile.read_text())
    assert _wait_for(lambda: not _alive(grandchild), 5), "the background sleep survived"
    _assert_nothing_left(tmp_path, before, project, target)


def test_background_child_holding_the_pipe_does_not_hang_a_finished_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mlproject = ("name: demo\nentry_points:\n  main:\n    parameters:\n      pidfile: path\n"
                 "    command: 'sleep 1000 & echo $! > {pidfile}; python train.py'\n")
    project = _project(tmp_path, mlproject)
    pidfile = tmp_path / "grandchild.pid"
    started = time.monotonic()
    code = main(["train", str(project), "--target", str(tmp_path / "ws" / "target"),
                 "-P", f"pidfile={pidfile}"])
    assert code == 0, capsys.readouterr().err
    assert time.monotonic() - started < 15
    assert _wait_for(lambda: not _alive(int(pidfile.read_text())), 5)


def test_output_without_newlines_is_bounded(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    train = "import sys\nsys.stdout.write('x' * 3_000_000)\nsys.stdout.flush()\n" + TRAIN
    project = _project(tmp_path, files={"train.py": train})
    assert main(["train", str(project), "--target", str(tmp_path / "ws" / "target")]) == 0
    err = capsys.readouterr().err
    assert max(len(line) for line in err.splitlines()) < 5000


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_mid_training_kills_the_group_and_removes_staging(sig: signal.Signals,
                                                                 tmp_path: Path) -> None:
    project = _project(tmp_path, SLEEPER)
    pidfile, target = tmp_path / "grandchild.pid", tmp_path / "ws" / "target"
    before = _snapshot(project)
    proc = subprocess.Popen([sys.executable, "-m", "packager", "train", str(project), "--target",
                             str(target), "-P", f"pidfile={pidfile}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_cli_env(tmp_path), start_new_session=True)
    try:
        assert _wait_for(lambda: pidfile.is_file() and pidfile.read_text().strip() != "", 30)
        assert [p for p in (tmp_path / "ws").iterdir() if ".staging-" in p.name]  # mid-training
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    _clean_exit(err)
    assert f"interrupted by {sig.name}" in err
    grandchild = int(pidfile.read_text())
    assert _wait_for(lambda: not _alive(grandchild), 5), "the background sleep survived"
    _assert_nothing_left(tmp_path, before, project, target)


# --- environments: cache keyed by content, interrupted builds, deadlines ---------------------

def test_venv_key_follows_the_requirements_content(tmp_path: Path) -> None:
    project = _project(tmp_path)
    spec = parse_mlproject(BASIC, default_name="demo")
    req = project / "requirements.txt"
    req.write_text("numpy==1.26.4\n")
    first = trainer.venv_spec(project, spec).key()
    req.write_text("numpy==2.0.0\n")  # same path, new content
    second = trainer.venv_spec(project, spec).key()
    req.write_text("numpy==1.26.4\n")
    assert first != second
    assert trainer.venv_spec(project, spec).key() == first
    # python_env.yaml: the dependency list itself is the key
    a = trainer.VenvSpec((("numpy",),), None).key()
    assert a != trainer.VenvSpec((("numpy", "onnx"),), None).key()
    assert a != trainer.VenvSpec((("numpy",), ("onnx",)), None).key()


def test_interrupted_venv_build_is_never_trusted(tmp_path: Path) -> None:
    spec = trainer.VenvSpec((("numpy",),), None)
    env = tmp_path / "cache" / "triton-packager" / "train-envs" / spec.key()
    write_tree(env, {"bin/python": "half-written\n"})  # an earlier build, killed midway
    builds: list[Path] = []

    def fake_build(path: Path, _spec: trainer.VenvSpec, _cwd: Path, _r: Reporter) -> None:
        builds.append(path)
        write_tree(path, {"bin/python": "complete\n"})

    assert trainer.virtualenv(spec, tmp_path, Reporter("quiet"), build=fake_build) == env
    assert (env / "bin/python").read_text() == "complete\n" and (env / ".complete").is_file()
    trainer.virtualenv(spec, tmp_path, Reporter("quiet"), build=fake_build)
    assert len(builds) == 1  # the complete one is reused

    def interrupted(path: Path, _spec: trainer.VenvSpec, _cwd: Path, _r: Reporter) -> None:
        write_tree(path, {"bin/python": "partial\n"})
        raise KeyboardInterrupt

    other = trainer.VenvSpec((("onnx",),), None)
    with pytest.raises(KeyboardInterrupt):
        trainer.virtualenv(other, tmp_path, Reporter("quiet"), build=interrupted)
    assert not (env.parent / other.key()).exists()


@pytest.fixture
def black_hole_index() -> Iterator[str]:
    """A package index that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/simple"


def test_pip_gets_a_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, black_hole_index: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(trainer, "INSTALL_TIMEOUT", 3.0)
    monkeypatch.setenv("PIP_INDEX_URL", black_hole_index)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    project = _project(tmp_path, files={"requirements.txt": "surely-not-installed-pkg==1.0\n"})
    target = tmp_path / "ws" / "target"
    code = main(["train", str(project), "--target", str(target), "--env-manager", "virtualenv"])
    err = capsys.readouterr().err
    assert code == 3, err
    _clean_exit(err)
    assert "installing the project's requirements timed out after 3s" in err
    assert not target.exists() and _leftovers(tmp_path / "ws") == []
    envs = tmp_path / "cache" / "triton-packager" / "train-envs"
    assert [p.name for p in envs.iterdir() if not p.name.startswith(".")] == []


FAKE_CONDA = """#!/bin/sh
case "$1" in
  env) echo "$@" >> "$FAKE_CONDA_LOG"; sleep "${FAKE_CONDA_SLEEP:-0}"; exit "${FAKE_CONDA_RC:-0}";;
  run) shift 3; exec "$@";;
esac
exit 9
"""


@pytest.mark.parametrize(("behaviour", "code", "expected"), [
    ({}, 0, ""),
    ({"FAKE_CONDA_RC": "1"}, 6, "creating the conda environment from conda.yaml failed"),
    ({"FAKE_CONDA_SLEEP": "30"}, 3, "creating the conda environment from conda.yaml timed out"),
])
def test_conda_env_creation_has_a_deadline(behaviour: dict[str, str], code: int, expected: str,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake = write_tree(tmp_path / "bin", {"conda": FAKE_CONDA}) / "conda"
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{Path(sys.executable).parent}"
                       f"{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CONDA_LOG", str(tmp_path / "conda.log"))
    for key, value in behaviour.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(trainer, "INSTALL_TIMEOUT", 1.5)
    project = _project(tmp_path, "conda_env: conda.yaml\n" + BASIC,
                       {"conda.yaml": "dependencies: [python]\n"})
    target = tmp_path / "ws" / "target"
    started = time.monotonic()
    assert main(["train", str(project), "--target", str(target), "--env-manager", "conda"]) == code
    err = capsys.readouterr().err
    _clean_exit(err)
    assert expected in err
    assert time.monotonic() - started < 15
    assert (target / "model.py").is_file() == (code == 0)
    assert "env update -n triton-train-project-" in (tmp_path / "conda.log").read_text()


# --- properties: any MLproject either trains or is refused with exit 2 ----------------------

_NAMES = st.sampled_from(["a", "b", "lr", "a.b", "1x", "", "x y", "_p"])
# Integers within 18 digits: longer ones stay strings (safeyaml), i.e. a shorthand command.
_NON_TEXT = st.one_of(st.none(), st.booleans(), st.integers(-10**17, 10**17), st.floats())
_SCALARS = st.one_of(_NON_TEXT, st.integers(), st.text(max_size=12),
                     st.sampled_from(["{", "}", "{a}", "{0}", "float", "int"]))
_PIECES = st.sampled_from([" {a}", " {b}", " {", " }", " {0}", " {}", " {a.x}", " {a!r}",
                           " {a:>3}", " {{", " }}", " --flag", " {nope}", " {a[0]}", ""])
_PARAM_SPEC = st.one_of(
    st.sampled_from(["float", "int", "string", "path", "uri", "tensor"]),
    st.fixed_dictionaries({}, optional={"type": st.one_of(st.sampled_from(["float", "int", "string"]),
                                                           _SCALARS),
                                        "default": _SCALARS}),
    _SCALARS, st.lists(_SCALARS, max_size=2))
_PARAMS = st.one_of(st.none(), st.dictionaries(_NAMES, _PARAM_SPEC, max_size=3),
                    st.lists(_NAMES, max_size=2), _SCALARS)
_VALUES = st.one_of(st.text(max_size=20), st.sampled_from(["0.5", "3", "nan", "inf", "-1e9", "a\0b",
                                                            "x" * 5000, "$(id)", "'; rm -rf /"]))
_GIVEN = st.dictionaries(st.sampled_from(["a", "b", "lr", "extra", "x-y"]), _VALUES, max_size=3)


@st.composite
def _documents(draw: st.DrawFn) -> str:
    """MLproject text: mostly well-formed around one hostile detail, sometimes plain garbage."""
    command = "python train.py" + "".join(draw(st.lists(_PIECES, max_size=3)))
    well_formed = st.fixed_dictionaries({"command": st.just(command)},
                                        optional={"parameters": _PARAMS})
    hostile_entry = st.one_of(_NON_TEXT, st.lists(_SCALARS, max_size=2))
    entry: object = draw(well_formed if draw(st.integers(0, 5)) else
                         st.one_of(st.just(command), hostile_entry))
    doc: dict[object, object] = {"entry_points": {"main": entry}}
    if draw(st.integers(0, 3)) == 0:
        doc.update(draw(st.dictionaries(st.sampled_from(["name", "conda_env", "python_env"]),
                                        st.one_of(_SCALARS, st.just("demo")), max_size=2)))
    text = yaml.safe_dump(doc, allow_unicode=True)
    return text if draw(st.integers(0, 4)) else text + draw(st.text(max_size=40))


@settings(max_examples=150, deadline=None)
@given(text=_documents(), given_=_GIVEN)
def test_parse_and_render_either_succeed_or_refuse(text: str, given_: dict[str, str]) -> None:
    try:
        spec = parse_mlproject(text, default_name="demo")
        command = render_command(spec.entry_point("main"), given_)
    except InputError as exc:
        assert exc.exit_code == 2 and exc.message and len(str(exc)) < 1500
        return
    assert command.strip() and passable(command)


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.text(max_size=30), max_size=4))
def test_parse_params_either_parses_or_refuses(pairs: list[str]) -> None:
    try:
        parsed = parse_params(pairs)
    except InputError as exc:
        assert exc.exit_code == 2 and len(str(exc)) < 1500
        return
    assert all("\0" not in v and len(v) <= 4096 for v in parsed.values())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_documents(), given_=_GIVEN)
@example(text=_ep("'python train.py {a} }}'", "      a: {type: float, default: 1}\n"),
         given_={"a": "0.5", "x-y": "'; touch /tmp/pwned #"})
def test_cli_trains_or_refuses_with_exit_2(text: str, given_: dict[str, str],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = write_tree(Path(tmp) / "project", {"MLproject": text, "train.py": TRAIN})
        target = Path(tmp) / "target"
        args = [a for k, v in given_.items() for a in ("-P", f"{k}={v}")]
        code = main(["train", str(project), "--target", str(target), *args])
        err = capsys.readouterr().err
        _clean_exit(err)
        assert code in (0, 2), err
        if code == 2:
            assert "error:" in err and not target.exists()
            assert _leftovers(Path(tmp)) == []
        else:
            assert (target / "model.py").is_file()


@pytest.mark.parametrize("linked", ["MLproject", "requirements.txt"])
def test_project_files_linked_out_of_the_project_are_not_read(
        linked: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A symlinked MLproject or requirements.txt that leads out of the project would be read,
    and its lines echoed in errors: refused before anything is read or written."""
    secret = tmp_path / "secret.txt"
    secret.write_text("root:$6$hash:20228:0:99999:7:::\n")
    project = _project(tmp_path)
    (project / linked).unlink(missing_ok=True)
    (project / linked).symlink_to(secret)
    before = _snapshot(tmp_path)
    code = main(["train", str(project), "--target", str(tmp_path / "ws" / "target"),
                 "--env-manager", "virtualenv"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "points outside the project" in err and "Traceback" not in err
    assert "$6$hash" not in err
    assert _snapshot(tmp_path) == before
