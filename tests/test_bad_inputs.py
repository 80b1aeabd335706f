"""Every bad input: a clear message naming file, field, value and fix; exit code 2; no output."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from models import GENERIC_CONFIG, PYTHON_CONFIG, PYTHON_MODEL, manifest, placeholder, write_tree

from packager.cli import main

PY_OK = {"model.py": PYTHON_MODEL, "config.pbtxt": PYTHON_CONFIG.format(name="model")}


def _py(**extra: str | bytes | None) -> dict[str, str | bytes | None]:
    files: dict[str, str | bytes | None] = dict(PY_OK)
    files.update(extra)
    return files


def _fifo(root: Path) -> None:
    os.mkfifo(root / "pipe")


def _outside_link(root: Path) -> None:
    secret = root.parent / "secret.txt"
    secret.write_text("not yours\n")
    (root / "stolen.txt").symlink_to(secret)


def _dir_link(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "loop").symlink_to(root / "sub")


Case = tuple[dict[str, str | bytes | None], Callable[[Path], None] | None, list[str]]

CASES: dict[str, Case] = {
    "empty-directory": ({}, None, ["empty"]),
    "no-model-file": ({"readme.txt": "hi"}, None, ["no model file", "readme.txt", "model.onnx"]),
    "two-model-kinds": (
        {"model.onnx": placeholder("onnx"), "model.pt": placeholder("pt")},
        None, ["two model kinds", "ONNX", "TorchScript", "model.onnx", "model.pt"],
    ),
    "netdef-without-init": (
        {"model.netdef": placeholder("netdef"), "config.pbtxt": 'platform: "caffe2_netdef"'},
        None, ["init_model.netdef", "model.netdef"],
    ),
    "onnx-directory-without-graph": ({"model.onnx/weights.bin": b"0"}, None,
                                     ["model.onnx is a directory", "model.onnx/model.onnx"]),
    "openvino-without-bin": ({"model.xml": placeholder("xml")}, None, ["model.bin"]),
    "model-pt-is-a-directory": ({"model.pt/x": "y", "config.pbtxt": ""}, None,
                                ["model.pt is a dir", "file"]),
    "unparsable-yaml": (_py(**{"odahuflow.model.yaml": "name: [unclosed\n"}), None,
                        ["odahuflow.model.yaml", "not valid YAML", ":2:1"]),
    "manifest-not-a-mapping": (_py(**{"odahuflow.model.yaml": "- a\n- b\n"}), None,
                               ["odahuflow.model.yaml", "mapping"]),
    "version-0": (_py(**{"odahuflow.model.yaml": manifest("model", 0)}), None,
                  ["odahuflow.model.yaml", "'version'", "0", "start at 1", "version: 1"]),
    "version-negative": (_py(**{"odahuflow.model.yaml": manifest("model", -1)}), None,
                         ["'version'", "-1", "version: 1"]),
    "version-float": (_py(**{"odahuflow.model.yaml": manifest("model", "1.0")}), None,
                      ["'version'", "1.0", "positive integer", "version: 1"]),
    "version-prefixed": (_py(**{"odahuflow.model.yaml": manifest("model", "v2")}), None,
                         ["'version'", "'v2'", "version: 2"]),
    "name-with-space": (_py(**{"odahuflow.model.yaml": "name: my model\nversion: 1\n"}), None,
                        ["'name'", "'my model'", "name: my-model"]),
    "name-with-newline": (_py(**{"odahuflow.model.yaml": 'name: "a\\nFROM evil"\nversion: 1\n'}),
                          None, ["'name'", "a\\nFROM evil", "fix: set name:"]),
    "name-upper-case": (_py(**{"odahuflow.model.yaml": "name: Wine\nversion: 1\n"}), None,
                        ["'Wine'", "lower-case", "name: wine"]),
    "name-dot-dot": (_py(**{"odahuflow.model.yaml": "name: ..\nversion: 1\n"}), None,
                     ["'..'", "not a valid"]),
    "name-with-dollar": (_py(**{"odahuflow.model.yaml": "name: a$HOME\nversion: 1\n"}), None,
                         ["'a$HOME'"]),
    "two-manifests": (_py(**{"odahuflow.model.yaml": manifest("a", 1),
                             "odahuflow.project.yaml": manifest("b", 1)}), None,
                      ["found 2 manifests", "odahuflow.project.yaml"]),
    "config-unknown-field": (
        {"model.py": PYTHON_MODEL, "config.pbtxt": 'backend: "python"\nmax_batch_sise: 4\n'},
        None, ["config.pbtxt:2:", "max_batch_sise"],
    ),
    "config-negative-batch": (
        {"model.onnx": placeholder("onnx"), "config.pbtxt": "max_batch_size: -2\n"},
        None, ["config.pbtxt", "max_batch_size", "-2"],
    ),
    "config-name-mismatch": (
        _py(**{"config.pbtxt": PYTHON_CONFIG.format(name="other")}), None,
        ["config.pbtxt", "'name'", "'other'", "'model'", 'name: "model"'],
    ),
    "config-platform-mismatch": (
        {"model.onnx": placeholder("onnx"),
         "config.pbtxt": GENERIC_CONFIG.format(name="model", platform="tensorrt_plan")},
        None, ["config.pbtxt", "'platform'", "tensorrt_plan", "ONNX", 'platform: "onnxruntime_onnx"'],
    ),
    "config-backend-mismatch": (
        {"model.pt": placeholder("pt"), "config.pbtxt": 'backend: "onnxruntime"\n'},
        None, ["'backend'", "onnxruntime", "TorchScript", 'backend: "pytorch"'],
    ),
    "config-required-missing-torchscript": (
        {"model.pt": placeholder("pt")}, None,
        ["config.pbtxt is missing", "TorchScript", "add config.pbtxt"],
    ),
    "config-required-missing-python": (
        {"model.py": PYTHON_MODEL}, None, ["config.pbtxt is missing", "auto_complete_config"],
    ),
    "symlink-outside": (_py(), _outside_link, ["stolen.txt", "outside the input directory"]),
    "symlink-to-directory": (_py(), _dir_link, ["loop", "symlink to a directory"]),
    "fifo": (_py(), _fifo, ["pipe", "FIFO", "remove 'pipe'"]),
    "config-not-utf8": ({"model.onnx": placeholder("onnx"), "config.pbtxt": b"\xff\xfe"},
                        None, ["config.pbtxt", "UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_cleanly(case: str, tmp_path: Path, capsys) -> None:
    files, extra, expected = CASES[case]
    root = write_tree(tmp_path / "model", files)
    if extra:
        extra(root)
    out = tmp_path / "out"
    code = main(["package", str(root), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    assert "fix:" in err, err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} missing from:\n{err}"
    assert not out.exists(), "bad input must leave no output at all"


def test_missing_input_directory(tmp_path: Path, capsys) -> None:
    code = main(["detect", str(tmp_path / "nope"), "--output", str(tmp_path / "out")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_output_inside_input_is_refused(tmp_path: Path, capsys) -> None:
    root = write_tree(tmp_path / "model", _py())
    code = main(["repository", str(root), "--output", str(root / "out")])
    assert code == 2
    assert "inside the input directory" in capsys.readouterr().err
    assert not (root / "out").exists()


@pytest.mark.parametrize(
    "option",
    [["--tag", "evil:1\nRUN rm -rf /"], ["--base-image", "ubuntu\nRUN id"],
     ["--base-image", "img:$TAG"], ["--image-name", '{{ Name }}:"x']],
)
def test_injected_options_are_refused(option: list[str], tmp_path: Path, capsys) -> None:
    root = write_tree(tmp_path / "model", _py())
    out = tmp_path / "out"
    code = main(["package", str(root), "--output", str(out), *option])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "not a valid Docker image reference" in err
    assert not out.exists() or not (out / "result.json").exists()
