"""The MLproject trainer: format rules, parameters, failures that leave --target untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from models import write_tree

from packager.cli import main
from packager.errors import InputError
from packager.executor.state.ownership import claim
from packager.inputs import OWNED_MARKER as MARKER
from packager.mlproject import parse_mlproject, parse_params, render_command

GOOD_TRAIN = (
    "import os, sys\n"
    "out = os.environ['ODAHUFLOW_OUTPUT_DIR']\n"
    "open(os.path.join(out, 'model.py'), 'w').write('# trained with ' + ' '.join(sys.argv[1:]))\n"
    "print('trained', sys.argv[1:])\n"
)
CONFIG = 'name: "demo"\nbackend: "python"\n'


def _project(tmp: Path, *, mlproject: str | None = None, train: str = GOOD_TRAIN,
             data: dict[str, str | bytes | None] | None = None) -> Path:
    files: dict[str, str | bytes | None] = {
        "MLproject": mlproject if mlproject is not None else (
            "name: demo\nentry_points:\n  main:\n    parameters:\n"
            "      alpha: {type: float, default: 0.5}\n      epochs: {type: int, default: 2}\n"
            "    command: python train.py --alpha {alpha} --epochs {epochs}\n"
            "  other:\n    command: python train.py other\n"),
        "train.py": train,
        "data/config.pbtxt": CONFIG,
    }
    files.update({f"data/{k}": v for k, v in (data or {}).items()})
    return write_tree(tmp / "project", files)


def _target(tmp: Path) -> Path:
    """A --target an earlier run made (marked as the packager's, so a new run may replace it)."""
    target = tmp / "target"
    target.mkdir()
    (target / "old-model.txt").write_text("previous good artifact\n")
    claim(target, "train")
    return target


def _untouched(target: Path) -> bool:
    return sorted(p.name for p in target.iterdir()) == sorted([MARKER, "old-model.txt"])


def test_train_collects_output_data_and_manifest(tmp_path: Path, capsys) -> None:
    project = _project(tmp_path, data={"extra/notes.txt": "hi\n", "model.py": "# from data\n"})
    target = tmp_path / "target"
    code = main(["train", str(project), "--target", str(target), "-P", "alpha=0.25",
                 "-P", "extra=x y", "--version", "3", "--archive", str(tmp_path / "a.tar.gz")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (target / "model.py").read_text() == "# trained with --alpha 0.25 --epochs 2 --extra x y"
    assert (target / "config.pbtxt").read_text() == CONFIG
    assert (target / "extra/notes.txt").read_text() == "hi\n"
    assert yaml.safe_load((target / "odahuflow.model.yaml").read_text()) == {
        "name": "demo", "version": 3}
    # data/model.py did not overwrite the trained one, and the user was told
    assert "data/model.py not copied" in captured.err
    assert "trained ['--alpha', '0.25'" in captured.err  # streamed output with elapsed time
    assert "s] trained" in captured.err
    assert (tmp_path / "a.tar.gz").stat().st_size > 0
    # the archive round-trips through setup
    assert main(["setup", str(tmp_path / "a.tar.gz"), "-o", str(tmp_path / "unpacked")]) == 0
    assert (tmp_path / "unpacked/model.py").read_text() == (target / "model.py").read_text()


def test_overwrite_data_and_other_entry_point(tmp_path: Path) -> None:
    project = _project(tmp_path, data={"model.py": "# from data\n"})
    target = tmp_path / "target"
    assert main(["train", str(project), "--target", str(target), "-e", "other",
                 "--overwrite-data", "--name", "renamed"]) == 0
    assert (target / "model.py").read_text() == "# from data\n"
    assert "name: renamed" in (target / "odahuflow.model.yaml").read_text()


@pytest.mark.parametrize(
    ("case", "code", "expected"),
    [
        ("missing-mlproject", 2, ["has no MLproject file"]),
        ("unknown-entry-point", 2, ["no entry point 'nope'", "main, other"]),
        ("wrong-param-type", 2, ["'alpha' is a float", "'abc'"]),
        ("wrong-int", 2, ["'epochs' is an int", "'2.5'"]),
        ("failing-command", 6, ["exited with code 3", "boom: bad data"]),
        ("no-model-file", 6, ["produced no usable model", "ODAHUFLOW_OUTPUT_DIR"]),
        ("bad-name", 2, ["'Demo Model'", "name: demo-model"]),
        ("conda-without-conda", 2, ["conda, mamba or micromamba"]),
    ],
)
def test_failures_leave_target_untouched(case: str, code: int, expected: list[str],
                                         tmp_path: Path, capsys, monkeypatch) -> None:
    args: list[str] = []
    if case == "missing-mlproject":
        project = write_tree(tmp_path / "project", {"train.py": GOOD_TRAIN})
    elif case == "failing-command":
        project = _project(tmp_path, train="import sys\nprint('boom: bad data')\nsys.exit(3)\n")
    elif case == "no-model-file":
        project = _project(tmp_path, train="print('forgot to save')\n")
        (project / "data/config.pbtxt").unlink()
    elif case == "bad-name":
        project = _project(tmp_path, mlproject="name: Demo Model\nentry_points:\n  main:\n"
                           "    command: python train.py\n")
    else:
        project = _project(tmp_path)
    if case == "unknown-entry-point":
        args = ["-e", "nope"]
    elif case == "wrong-param-type":
        args = ["-P", "alpha=abc"]
    elif case == "wrong-int":
        args = ["-P", "epochs=2.5"]
    elif case == "conda-without-conda":
        monkeypatch.setenv("PATH", "/nonexistent")
        args = ["--env-manager", "conda"]
    target = _target(tmp_path)
    assert main(["train", str(project), "--target", str(target), *args]) == code
    err = capsys.readouterr().err
    for fragment in expected:
        assert fragment in err, err
    assert "fix:" in err
    assert _untouched(target)
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


def test_mlproject_format_rules() -> None:
    spec = parse_mlproject(
        "name: x\nconda_env: c.yaml\nentry_points:\n  main:\n    parameters:\n      a: float\n"
        "      p: {type: path}\n    command: run {a} {p}\n  short: echo hi\n", default_name="d")
    assert spec.conda_env == "c.yaml"
    main_ep = spec.entry_point("main")
    assert render_command(main_ep, {"a": "1e-3", "p": "my file"}) == "run 1e-3 'my file'"
    with pytest.raises(InputError, match="needs parameter 'a'"):
        render_command(main_ep, {"p": "x"})
    assert render_command(spec.entry_point("short"), {}) == "echo hi"
    assert render_command(spec.entry_point("short"), {"k": "$(id)"}) == "echo hi --k '$(id)'"
    with pytest.raises(InputError, match="type 'tensor'"):
        parse_mlproject("entry_points: {main: {parameters: {a: tensor}, command: x}}",
                        default_name="d")
    with pytest.raises(InputError, match="entry_points"):
        parse_mlproject("name: x\n", default_name="d")
    with pytest.raises(InputError, match="key=value"):
        parse_params(["novalue"])


def test_virtualenv_env_manager_runs_in_a_fresh_cached_env(tmp_path: Path, monkeypatch,
                                                           capsys) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    train = ("import os, sys\nout = os.environ['ODAHUFLOW_OUTPUT_DIR']\n"
             "open(os.path.join(out, 'model.py'), 'w').write('# ' + sys.prefix)\n")
    project = _project(tmp_path, train=train,
                       mlproject="name: demo\npython_env: python_env.yaml\nentry_points:\n"
                       "  main:\n    command: python train.py\n")
    (project / "python_env.yaml").write_text("python: '3.11'\ndependencies: []\n")
    target = tmp_path / "target"
    assert main(["train", str(project), "--target", str(target),
                 "--env-manager", "virtualenv"]) == 0, capsys.readouterr().err
    prefix = (target / "model.py").read_text().removeprefix("# ")
    assert prefix.startswith(str(tmp_path / "cache" / "triton-packager" / "train-envs"))
