"""`--serve-with runtime` without a server: the generated adapter and config (pinned by
snapshot), the adapter run in-process against the real runtimes (one runtime call per dynamic
batch, Triton-style errors), samples.npz checks, and every refusal (exit 2, nothing written)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from models import PYTHON_CONFIG, PYTHON_MODEL, backend_files, write_tree
from proof import require
from runtime_models import (
    B,
    Request,
    W,
    adapter,
    linear_samples,
    npz,
    onnx_linear_model,
    onnx_unloadable_model,
)

from packager.analysis import analyze, as_package
from packager.cli import main
from packager.executor.reader import read_input
from packager.runtime import RUNTIMES, serve_with_runtime
from packager.samples import compare, tolerance

LOCAL = "triton-packager/tritonserver-cpu:2.51.0-py3.11"
MANIFEST = "name: linear\nversion: 1\n"


def _linear(tmp: Path, **extra: bytes | str) -> Path:
    return write_tree(tmp / "linear", {"model.onnx": onnx_linear_model(),
                                       "odahuflow.model.yaml": MANIFEST, **extra})


def _served(model: Path, template_dirs: tuple[str, ...] = ()) -> tuple[str, str, str]:
    """(config.pbtxt, model.py, requirements.txt) of a model served through its runtime."""
    package, adapted = serve_with_runtime(as_package(analyze(read_input(model))), template_dirs)
    plan = package.plan.models[0]
    source = next(e.content for e in plan.entries if e.dest.endswith("/model.py"))
    assert source is not None and adapted
    return plan.config_text, source, plan.env_text("requirements.txt")


@pytest.mark.parametrize("key", ["onnx", "openvino", "tf_savedmodel"])
def test_adapter_and_config_are_pinned(key: str, tmp_path: Path, snapshot) -> None:
    model = write_tree(tmp_path / "m", backend_files(key, "model", with_config=False))
    config, source, requirements = _served(model)
    assert config == snapshot(name="config.pbtxt")
    assert source == snapshot(name="model.py")
    runtime = RUNTIMES[key]
    assert f"{runtime.package}=={runtime.version}\n" in requirements
    assert 'backend: "python"' in config and "platform" not in config
    compile(source, "model.py", "exec")  # valid Python


def test_config_keeps_everything_a_client_sees(tmp_path: Path) -> None:
    given = ('name: "linear"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 4\n'
             'version_policy { all { } }\n'
             'input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
             'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 3 ] } ]\n'
             'dynamic_batching { max_queue_delay_microseconds: 500 }\n'
             'instance_group [ { count: 2 kind: KIND_CPU } ]\n')
    config, _, _ = _served(_linear(tmp_path, **{"config.pbtxt": given}))
    for kept in ('name: "linear"', "max_batch_size: 4", "all {", 'name: "X"', "dims: 4",
                 'name: "Y"', "dims: 3", "max_queue_delay_microseconds: 500", "count: 2",
                 "KIND_CPU", 'backend: "python"'):
        assert kept in config, kept
    assert "onnxruntime_onnx" not in config


def test_adapter_runs_a_dynamic_batch_as_one_runtime_call(tmp_path: Path) -> None:
    require("onnxruntime")
    model = _linear(tmp_path)
    _, source, _ = _served(model)
    (tmp_path / "repo" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "1" / "model.onnx").write_bytes((model / "model.onnx").read_bytes())
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((n, 4)).astype(np.float32) for n in (1, 3, 2, 1)]
    with adapter(source, tmp_path / "repo") as (m, calls):
        responses = m.execute([Request(X=x) for x in xs])
        assert calls() == 1
        for x, r in zip(xs, responses, strict=True):
            assert r.error is None
            np.testing.assert_allclose(r.outputs()["Y"], x @ W + B, rtol=1e-5, atol=1e-5)
        # wrong type, wrong shape, missing input: Triton-style errors, the good request answered
        bad = m.execute([Request(X=xs[0].astype(np.float64)), Request(X=np.zeros((1, 5), np.float32)),
                         Request(), Request(X=xs[1])])
        assert "data type float64" in bad[0].error.message()
        assert "unexpected shape for input 'X'" in bad[1].error.message()
        assert "input 'X' is missing" in bad[2].error.message()
        assert bad[3].error is None and bad[3].outputs()["Y"].shape == (3, 3)


def test_template_dir_overrides_the_adapter(tmp_path: Path) -> None:
    custom = tmp_path / "templates" / "runtime"
    custom.mkdir(parents=True)
    (custom / "model.py.j2").write_text(
        '{% extends "runtime/adapter.py.j2" %}{% block run %}\n'
        "    def _run(self, feed):\n        raise RuntimeError('custom')\n{% endblock %}\n")
    _, source, _ = _served(_linear(tmp_path), (str(tmp_path / "templates"),))
    assert "raise RuntimeError('custom')" in source and "self._session.run" not in source


# --- samples.npz --------------------------------------------------------------------------------

def test_tolerances_by_data_type() -> None:
    assert tolerance("FP32", None, None) == (1e-4, 1e-5)
    assert tolerance("FP32", 0.0, 1e-3) == (0.0, 1e-3)
    assert tolerance("INT64", 1.0, 1.0) == (0.0, 0.0)
    want = np.array([1.0, 2.0], np.float32)
    assert compare("Y", 0, "FP32", want + 1e-6, want) is None
    miss = compare("Y", 3, "FP32", want + np.array([0, 0.5], np.float32), want)
    assert miss is not None and miss.sample == 3 and miss.largest_error == pytest.approx(0.5)
    assert miss.where == (1,)


@pytest.mark.parametrize(("change", "words"), [
    ({"input.Z.0": np.zeros((1, 4), np.float32)}, "config.pbtxt has no input 'Z'"),
    ({"input.X.0": np.zeros((1, 4), np.float64)}, "input.X.0 is float64, config.pbtxt says TYPE_FP32"),
    ({"input.X.0": np.zeros((1, 5), np.float32)}, "input.X.0 has shape [1, 5]"),
    ({"input.X.0": np.zeros((9, 4), np.float32)}, "[batch 1..8]"),
    ({"output.Y.0": np.zeros((2, 3), np.float32)}, "output.Y.0 has batch 2"),
    ({"extra": np.zeros(1)}, "names are input.<TENSOR>.<i>"),
    ({"input.X.5": np.zeros((1, 4), np.float32)}, "without gaps"),
])
def test_samples_not_matching_the_config_are_refused(change: dict[str, np.ndarray], words: str,
                                                    tmp_path: Path, capsys) -> None:
    samples = {**linear_samples((1,)), **change}
    model = _linear(tmp_path, **{"samples.npz": npz(samples)})
    out = tmp_path / "out"
    code = main(["repository", str(model), "-o", str(out)])  # any mode: samples are checked
    err = capsys.readouterr().err
    assert code == 2, err
    assert words in err and "samples.npz" in err and "fix:" in err
    assert not out.exists()


def test_a_samples_file_that_is_no_npz_is_refused(tmp_path: Path, capsys) -> None:
    model = _linear(tmp_path, **{"samples.npz": b"not a zip"})
    assert main(["repository", str(model), "-o", str(tmp_path / "out")]) == 2
    assert "is not a numpy .npz file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- refusals of the mode ---------------------------------------------------------------------

@pytest.mark.parametrize(("key", "words"), [
    ("pytorch", "TorchScript would need torch"),
    ("tensorrt", "no CPU runtime from PyPI runs a TensorRT model"),
    ("tf_graphdef", "TensorFlow GraphDef"),
])
def test_backends_it_cannot_serve_are_refused(key: str, words: str, tmp_path: Path,
                                             capsys) -> None:
    model = write_tree(tmp_path / "m", backend_files(key, "model", with_config=True))
    out = tmp_path / "out"
    code = main(["package", str(model), "-o", str(out), "--serve-with", "runtime",
                 "--base-image", LOCAL])
    err = capsys.readouterr().err
    assert code == 2, err
    assert words in err and str(model) in err and "fix:" in err
    assert not out.exists()


def test_a_model_its_runtime_cannot_load_is_refused(tmp_path: Path, capsys) -> None:
    require("onnxruntime")
    model = write_tree(tmp_path / "bad", {"model.onnx": onnx_unloadable_model()})
    out = tmp_path / "out"
    code = main(["dockerfile", str(model), "-o", str(out), "--serve-with", "runtime",
                 "--base-image", LOCAL])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "onnxruntime cannot load the model" in err and "NoSuchOperator" in err
    assert f"{model}/model.onnx" in err and "fix:" in err
    assert not out.exists()


def test_a_model_py_of_its_own_is_refused(tmp_path: Path, capsys) -> None:
    given = ('name: "linear"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
             'input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
             'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    model = _linear(tmp_path, **{"config.pbtxt": given, "model.py": "print('mine')\n"})
    code = main(["repository", str(model), "-o", str(tmp_path / "out"), "--serve-with", "runtime"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "has a model.py of its own" in err
    assert not (tmp_path / "out").exists()


def test_packaged_tree_and_dockerfile_are_pinned(tmp_path: Path, snapshot) -> None:
    """The model repository and Dockerfile of a model served through its runtime: the model
    file in the weights layer as it was, model.py beside it, the runtime's pip environment."""
    from packager.analysis import Options, base_image_for
    from packager.dockerfile import render_dockerfile

    model = _linear(tmp_path, **{"samples.npz": npz(linear_samples((1,)))})
    package, _ = serve_with_runtime(as_package(analyze(read_input(model))))
    options = Options(base_image=LOCAL)
    spec = render_dockerfile(package.plan, base_image_for(package, options))
    assert package.plan.listing() == snapshot(name="tree")
    # The weights tag is a digest of the model bytes onnx writes: pinned as a digest only.
    text = re.sub(r"(triton-packager/weights:)[0-9a-f]{64}", r"\1<weights digest>", spec.text)
    assert text == snapshot(name="Dockerfile")
    assert dict(spec.context_texts)["env/requirements-1.txt"] == snapshot(name="requirements")


def test_gpu_instances_are_warned_about(tmp_path: Path) -> None:
    given = ('name: "linear"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
             'input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
             'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 3 ] } ]\n'
             'instance_group [ { kind: KIND_GPU } ]\n')
    model = _linear(tmp_path, **{"config.pbtxt": given})
    package, _ = serve_with_runtime(as_package(analyze(read_input(model))))
    assert any("KIND_GPU" in w and "KIND_CPU" in w for w in package.warnings)


def test_a_package_with_nothing_to_serve_through_a_runtime_says_so(tmp_path: Path) -> None:
    model = tmp_path / "py"
    write_tree(model, {"model.py": PYTHON_MODEL, "config.pbtxt": PYTHON_CONFIG.format(name="model")})
    package, adapted = serve_with_runtime(as_package(analyze(read_input(model))))
    assert adapted == () and package.models[0].backend.key == "python"
    assert any("nothing was changed" in w for w in package.warnings), package.warnings
    onnx, _ = serve_with_runtime(as_package(analyze(read_input(_linear(tmp_path)))))
    assert not any("nothing was changed" in w for w in onnx.warnings)
