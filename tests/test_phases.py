"""Phases as build targets: digests, skipping, --force, atomic outputs. No Docker needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from models import PYTHON_CONFIG, PYTHON_MODEL, backend_files, onnx_external_data_files, write_tree

from packager.analysis import Options
from packager.cli import main
from packager.executor import fs
from packager.executor.phases import Workspace, chain


def _model(tmp: Path) -> Path:
    return write_tree(tmp / "model", {"model.py": PYTHON_MODEL,
                                      "config.pbtxt": PYTHON_CONFIG.format(name="model"),
                                      "data/table.csv": "a,b\n1,2\n"})


def test_chain_runs_dependencies_first() -> None:
    assert chain("dockerfile") == ["detect", "repository", "dockerfile"]
    assert chain("package") == ["detect", "repository", "dockerfile", "package"]


def test_rerun_skips_and_force_redoes(tmp_path: Path) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    first = Workspace(model, out, Options()).run("dockerfile")
    assert first.ran == ["detect", "repository", "dockerfile"]
    again = Workspace(model, out, Options()).run("dockerfile")
    assert again.ran == [] and again.skipped == ["detect", "repository", "dockerfile"]
    forced = Workspace(model, out, Options(), force=True).run("dockerfile")
    assert forced.ran == ["detect", "repository", "dockerfile"]


def test_changed_input_or_option_reruns_only_what_depends_on_it(tmp_path: Path) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    Workspace(model, out, Options()).run("dockerfile")
    # An option of the dockerfile phase only: earlier phases stay cached.
    opt = Workspace(model, out, Options(healthcheck="none")).run("dockerfile")
    assert opt.ran == ["dockerfile"]
    assert "HEALTHCHECK" not in (out / "context" / "Dockerfile").read_text()
    # One byte of one input file: everything reruns, and the new byte is in the tree.
    (model / "data" / "table.csv").write_text("a,b\n1,3\n")
    changed = Workspace(model, out, Options(healthcheck="none")).run("dockerfile")
    assert changed.ran == ["detect", "repository", "dockerfile"]
    assert (out / "model_repository/model/1/data/table.csv").read_text() == "a,b\n1,3\n"


def test_deleted_output_is_rebuilt(tmp_path: Path) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    Workspace(model, out, Options()).run("repository")
    (out / "detect.json").unlink()
    assert Workspace(model, out, Options()).run("repository").ran == ["detect"]


def test_repository_is_the_triton_layout_with_hardlinks(tmp_path: Path) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    Workspace(model, out, Options()).run("repository")
    repo = out / "model_repository"
    got = sorted(str(p.relative_to(repo)) for p in repo.rglob("*"))
    # The mark says the packager made this folder (and may replace it); Triton reads only
    # the model directories of a repository.
    assert got == [".triton-packager-owned", "model", "model/1", "model/1/data",
                   "model/1/data/table.csv", "model/1/model.py", "model/config.pbtxt"]
    assert (repo / "model/config.pbtxt").read_bytes() == (model / "config.pbtxt").read_bytes()
    assert os.stat(repo / "model/1/model.py").st_ino == os.stat(model / "model.py").st_ino


def test_private_files_are_copied_world_readable_and_input_left_alone(tmp_path: Path) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    os.chmod(model / "model.py", 0o600)
    Workspace(model, out, Options()).run("repository")
    placed = out / "model_repository/model/1/model.py"
    assert os.stat(placed).st_ino != os.stat(model / "model.py").st_ino
    assert placed.stat().st_mode & 0o777 == 0o644
    assert (model / "model.py").stat().st_mode & 0o777 == 0o600


def test_failure_mid_write_leaves_previous_output_intact(tmp_path: Path, monkeypatch) -> None:
    model, out = _model(tmp_path), tmp_path / "out"
    Workspace(model, out, Options()).run("repository")
    before = sorted(p.name for p in (out / "model_repository").rglob("*"))
    (model / "extra.txt").write_text("new\n")

    def boom(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(fs, "place_file", boom)
    with pytest.raises(OSError):
        Workspace(model, out, Options()).run("repository")
    assert sorted(p.name for p in (out / "model_repository").rglob("*")) == before
    assert not [p for p in out.iterdir() if ".staging-" in p.name]


def test_generated_config_is_reported(tmp_path: Path, capsys) -> None:
    model = write_tree(tmp_path / "model", backend_files("onnx", "model", with_config=False))
    assert main(["detect", str(model), "-o", str(tmp_path / "out")]) == 0
    assert "generated a complete one from model.onnx" in capsys.readouterr().err
    doc = json.loads((tmp_path / "out" / "detect.json").read_text())
    assert doc["backend"] == "onnx" and doc["config"]["generated"] is True
    assert doc["config"]["source"] == "model"
    assert doc["config"]["inputs"] == [["INPUT0", "FP32", [4]], ["INPUT1", "FP32", [4]]]


def test_json_lines_mode(tmp_path: Path, capsys) -> None:
    assert main(["repository", str(_model(tmp_path)), "-o", str(tmp_path / "out"), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["phase"] for e in events if e["event"] == "step"] == ["detect", "repository"]


def test_unknown_manifest_key_warns(tmp_path: Path, capsys) -> None:
    model = _model(tmp_path)
    (model / "odahuflow.model.yaml").write_text("name: model\nversion: 1\nowner: me\n")
    assert main(["detect", str(model), "-o", str(tmp_path / "out")]) == 0
    assert "unknown key 'owner'" in capsys.readouterr().err


def test_python_module_entry_point(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "packager", "detect", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_onnx_directory_with_external_data_goes_to_the_weights_layer(tmp_path: Path) -> None:
    files = onnx_external_data_files()
    model = write_tree(tmp_path / "model", dict(files))
    Workspace(model, tmp_path / "out", Options()).run("dockerfile")
    ctx = tmp_path / "out" / "context"
    assert (ctx / "weights/models/model/1/model.onnx/model.onnx").read_bytes() == \
        files["model.onnx/model.onnx"]
    assert (ctx / "weights/models/model/1/model.onnx/weights.bin").exists()
    assert (ctx / "weights/Dockerfile").is_file()
    assert (ctx / ".dockerignore").read_text() == "weights/\n"
    assert (ctx / "config/model/config.pbtxt").read_text().startswith("# Generated")
