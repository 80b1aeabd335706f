"""Every example MLproject repo: trained here where its framework runs on a CPU, packaged by the
generators and pinned by snapshot; the model file checked with its own framework against the
config; the Python example also built, served and queried."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES
from e2e import infer_add_sub, package, remove_image
from proof import onnxruntime_runner, openvino_runner, prove, require

from packager.analysis import Options, analyze, dockerfile_for
from packager.cli import main
from packager.executor.container import serve
from packager.executor.reader import read_input
from packager.executor.report import Reporter
from packager.executor.runs.trainer import TrainRequest, train

ALL = sorted(p.name for p in EXAMPLES.iterdir() if (p / "MLproject").is_file())
NEEDS_GPU_OR_LEGACY = {"tensorrt": "cannot build model.plan here", "caffe2": "caffe2.python"}
BACKEND = {"onnx": "onnx", "openvino": "openvino", "torchscript": "pytorch",
           "tensorflow-savedmodel": "tf_savedmodel", "tensorflow-graphdef": "tf_graphdef",
           "python": "python"}
# The frameworks each example trains with (the first is the one its checks use).
FRAMEWORK = {"onnx": ("onnx", "torch"), "openvino": ("openvino", "torch"),
             "torchscript": ("torch",), "tensorflow-savedmodel": ("tensorflow",),
             "tensorflow-graphdef": ("tensorflow",), "python": ("numpy",)}


def test_every_backend_has_an_example() -> None:
    assert set(ALL) == {"python", "onnx", "torchscript", "openvino", "tensorflow-savedmodel",
                        "tensorflow-graphdef", "tensorrt", "caffe2", *REPOSITORIES}
    for name in ALL:
        assert (EXAMPLES / name / "README.md").is_file(), name
    index = (EXAMPLES / "README.md").read_text()
    assert all(f"({name}/)" in index for name in ALL)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("trained")

    def get(name: str) -> Path:
        if name not in cache:
            for module in FRAMEWORK[name]:
                require(module)
            cache[name] = train(TrainRequest(EXAMPLES / name, root / name), Reporter("quiet"))
        return cache[name]

    return get  # type: ignore[return-value]


@pytest.mark.parametrize("name", sorted(FRAMEWORK))
def test_example_trains_and_packages(name: str, trained, snapshot) -> None:
    out = trained(name)
    tree = read_input(out)
    analysis = analyze(tree)
    spec = dockerfile_for(analysis, Options())
    assert analysis.plan.listing() == snapshot(name="tree")
    # The weights image's tag is the digest of the trained bytes, which the frameworks do not
    # promise to reproduce bit for bit: pinned here as a digest, not as its value.
    text = re.sub(r"(triton-packager/weights:)[0-9a-f]{64}", r"\1<weights digest>", spec.text)
    assert text == snapshot(name="Dockerfile")
    assert analysis.backend.key == BACKEND[name]
    assert analysis.meta.source == "odahuflow.model.yaml"  # written by the trainer


# Repository examples: (entry model, input, output, expected output from the trained files).
REPOSITORIES = ("bls", "ensemble")


def _expected(name: str, out: Path, raw: np.ndarray) -> np.ndarray:
    linear = json.loads((out / "linear/1/weights.json").read_text())
    w, b = np.array(linear["w"], dtype=np.float32), np.float32(linear["b"])
    if name == "ensemble":
        stats = json.loads((out / "preprocess/1/stats.json").read_text())
        raw = (raw - np.array(stats["mean"], dtype=np.float32)) / np.array(stats["std"],
                                                                           dtype=np.float32)
        return raw @ w + b
    return 1.0 / (1.0 + np.exp(-(raw @ w + b)))


@pytest.mark.docker
@pytest.mark.serving
@pytest.mark.parametrize("name", REPOSITORIES)
def test_repository_example_trains_packages_and_serves(name: str, tmp_path: Path,
                                                       snapshot) -> None:
    import tritonclient.http as httpclient

    out = train(TrainRequest(EXAMPLES / name, tmp_path / "trained"), Reporter("quiet"))
    assert not (out / "odahuflow.model.yaml").exists()  # a repository names its own models
    outcome, _ = package(out, tmp_path / "out")
    assert outcome.result is not None and outcome.analysis is not None
    assert outcome.analysis.plan.listing() == snapshot(name="tree")
    entry, inp, outp = {"ensemble": ("pipeline", "RAW", "PREDICTION"),
                        "bls": ("score", "FEATURES", "PROBABILITY")}[name]
    raw = np.array([[10.0, -5.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    try:
        with serve(outcome.result.image) as running:
            c = httpclient.InferenceServerClient(running.http_url)
            t = httpclient.InferInput(inp, list(raw.shape), "FP32")
            t.set_data_from_numpy(raw)
            got = c.infer(entry, [t]).as_numpy(outp)
        np.testing.assert_allclose(got, _expected(name, out, raw), rtol=1e-4, atol=1e-4)
    finally:
        import docker

        remove_image(docker.from_env(), outcome.result.image)


@pytest.mark.parametrize("name", sorted(NEEDS_GPU_OR_LEGACY))
def test_examples_that_cannot_train_here_stop_clearly(name: str, tmp_path: Path, capsys) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "previous.txt").write_text("kept\n")
    # --force: the target is not the packager's, and even so a failed training leaves it alone.
    code = main(["train", str(EXAMPLES / name), "--target", str(target), "--force"])
    err = capsys.readouterr().err
    assert code == 6
    assert "exited with code 3" in err and NEEDS_GPU_OR_LEGACY[name] in err
    assert [p.name for p in target.iterdir()] == ["previous.txt"]


# --- the model files, checked with their own frameworks against config.pbtxt ---------------

def test_onnx_model_computes_the_fitted_map(trained) -> None:
    onnx = require("onnx")
    from onnx.reference import ReferenceEvaluator

    out = trained("onnx")
    model = onnx.load(str(out / "model.onnx"))
    x = np.eye(4, dtype=np.float32)
    (y,) = ReferenceEvaluator(model).run(None, {"INPUT0": x})
    assert y.shape == (4, 2)  # generated config: batch x dims [2]
    true_w = np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0], [2.0, 1.0]]) + np.array([0.25, -1.0])
    np.testing.assert_allclose(y, true_w, atol=0.01)


# --- the generated configs of the examples, proven with each model's own runtime ------------

@pytest.mark.parametrize(("name", "runner", "model_file"), [
    ("onnx", onnxruntime_runner, "model.onnx"), ("openvino", openvino_runner, "model.xml")])
def test_example_config_is_generated_from_the_model_and_runs_it(trained, name, runner,
                                                                model_file) -> None:
    out = trained(name)
    analysis = analyze(read_input(out))
    config = analysis.config
    assert analysis.config_source == "model" and analysis.signature is not None
    assert config.max_batch_size == 8  # the exported batch axis is dynamic
    assert config.inputs == (("INPUT0", "FP32", (4,)),)
    assert config.outputs == (("OUTPUT0", "FP32", (2,)),)
    assert prove(config, runner(str(out / model_file))) == 3  # batch 1, 3 and 8


def test_savedmodel_example_signature_is_read_without_tensorflow(trained) -> None:
    tf = require("tensorflow")
    out = trained("tensorflow-savedmodel")
    analysis = analyze(read_input(out))
    sig = analysis.signature
    assert sig is not None and sig.format == "TensorFlow SavedModel"
    loaded = tf.saved_model.load(str(out / "model.savedmodel")).signatures["serving_default"]
    want_in = {k: (v.dtype.name, tuple(-1 if d is None else d for d in v.shape))
               for k, v in loaded.structured_input_signature[1].items()}
    want_out = {k: (v.dtype.name, tuple(-1 if d is None else d for d in v.shape))
                for k, v in loaded.structured_outputs.items()}
    tf_names = {"float32": "FP32", "int64": "INT64", "int32": "INT32", "string": "STRING"}
    assert {t.name: (t.datatype, t.dims) for t in sig.inputs} == {
        k: (tf_names[d], s) for k, (d, s) in want_in.items()}
    assert {t.name: (t.datatype, t.dims) for t in sig.outputs or ()} == {
        k: (tf_names[d], s) for k, (d, s) in want_out.items()}


def test_torchscript_model_matches_its_config(trained) -> None:
    torch = require("torch")
    out = trained("torchscript")
    model = torch.jit.load(str(out / "model.pt"))
    probs = model(torch.tensor([[3.0, 3.0, 0.0, 0.0], [-3.0, -3.0, 0.0, 0.0]])).detach().numpy()
    assert probs.shape == (2, 3)  # config: dims [3]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert probs[0].argmax() == 2 and probs[1].argmax() == 0


def test_openvino_model_computes_the_fitted_map(trained) -> None:
    ov = require("openvino")
    out = trained("openvino")
    compiled = ov.Core().compile_model(str(out / "model.xml"), "CPU")
    y = compiled(np.zeros((1, 4), dtype=np.float32))[compiled.output("OUTPUT0")]
    np.testing.assert_allclose(y, [[0.5, 0.5]], atol=0.01)


def test_tensorflow_models_compute_their_lines(trained) -> None:
    tf = require("tensorflow")
    saved = tf.saved_model.load(str(trained("tensorflow-savedmodel") / "model.savedmodel"))
    y = saved.signatures["serving_default"](INPUT0=tf.constant([[0.0], [1.0]]))["OUTPUT0"]
    np.testing.assert_allclose(y.numpy(), [[-1.0], [2.0]], atol=0.05)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((trained("tensorflow-graphdef") / "model.graphdef").read_bytes())
    fn = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    run = fn.prune(fn.graph.get_tensor_by_name("INPUT0:0"), fn.graph.get_tensor_by_name("OUTPUT0:0"))
    np.testing.assert_allclose(run(tf.constant([[0.0], [1.0]])).numpy(), [[0.5], [-1.5]], atol=0.05)


# --- images ----------------------------------------------------------------------------------

@pytest.mark.docker
def test_onnx_example_image_builds(trained, tmp_path: Path) -> None:
    import docker

    outcome, _ = package(trained("onnx"), tmp_path / "out")
    assert outcome.result is not None
    try:
        labels = docker.from_env().images.get(outcome.result.image).labels
        assert labels["io.triton-packager.model.name"] == "linear-onnx"
        assert labels["io.triton-packager.model.backend"] == "onnx"
    finally:
        remove_image(docker.from_env(), outcome.result.image)


@pytest.mark.docker
@pytest.mark.serving
def test_python_example_from_training_to_answer(trained, tmp_path: Path) -> None:
    import docker

    out = trained("python")
    scale = json.loads((out / "scale.json").read_text())["scale"]
    assert abs(scale - 2.0) < 0.01
    outcome, _ = package(out, tmp_path / "out")
    assert outcome.result is not None
    try:
        a = np.array([1, 2, 3, 4], dtype=np.float32)
        b = np.array([4, 3, 2, 1], dtype=np.float32)
        with serve(outcome.result.image) as running:
            out0, out1 = infer_add_sub(running.http_url, a, b)
        np.testing.assert_allclose(out0, (a + b) * scale, rtol=1e-6)
        np.testing.assert_allclose(out1, (a - b) * scale, rtol=1e-6)
    finally:
        remove_image(docker.from_env(), outcome.result.image)
