"""`--serve-with runtime`, proven by serving: the ONNX, OpenVINO and TensorFlow SavedModel examples
(trained here, with the samples their trainings write) and a generated ONNX model with a dynamic
batch dimension and dynamic_batching, packaged on the local CPU base image and served by a real
Triton. Answers over HTTP and gRPC equal the runtime called directly at batch 1, 3 and 8; 16
concurrent requests are batched; `verify` checks the samples and exits 4 on a wrong one.

Two images for the module (the examples together; the generated model with its own config) and
a third that differs from the second only in samples.npz: the pip environments are built once
(the TensorFlow one takes minutes) and reused from the build cache."""

from __future__ import annotations

import concurrent.futures
import shutil
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import EXAMPLES
from e2e import Recorder, remove_image
from models import write_tree
from proof import require
from runtime_models import direct_runner, linear_samples, npz, onnx_linear_model

from packager.analysis import Options
from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main
from packager.executor.container import Running, serve
from packager.executor.phases import BuildEnv, Workspace
from packager.executor.report import Reporter
from packager.executor.runs.trainer import TrainRequest, train

pytestmark = [pytest.mark.docker, pytest.mark.serving]

SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
MANIFEST = "name: linear\nversion: 1\n"
LINEAR_CONFIG = """\
name: "linear"
max_batch_size: 8
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 3 ] } ]
dynamic_batching { max_queue_delay_microseconds: 20000 }
instance_group [ { count: 1 kind: KIND_CPU } ]
"""


@dataclass(frozen=True)
class Model:
    name: str
    backend_key: str
    model_file: Path
    input: str
    output: str
    width: int  # the input's one dim past the batch


@dataclass(frozen=True)
class Served:
    models: dict[str, Model]
    running: dict[str, Running]  # model name -> the server that serves it
    outs: dict[str, Path]  # "examples", "linear", "wrong": package outputs


def _package(models: list[Path], out: Path, tag: str, **config: Any) -> str:
    from packager.configgen import ConfigOptions

    options = Options(base_image=LOCAL_CPU_IMAGE, tag=tag, serve_with="runtime",
                      model_config=ConfigOptions(**config))
    outcome = Workspace(models, out, options, Recorder(),
                        build_env=BuildEnv(ca_bundle=SYSTEM_CA)).run("package")
    assert outcome.result is not None
    return outcome.result.image


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, client: Any) -> Iterator[Served]:
    for module in ("torch", "onnx", "onnxruntime", "openvino", "tensorflow"):
        require(module)
    root = tmp_path_factory.mktemp("runtime")
    trained = {e: train(TrainRequest(EXAMPLES / e, root / "trained" / e), Reporter("quiet"))
               for e in ("onnx", "openvino", "tensorflow-savedmodel")}
    linear = write_tree(root / "linear", {
        "model.onnx": onnx_linear_model(), "config.pbtxt": LINEAR_CONFIG,
        "odahuflow.model.yaml": MANIFEST, "samples.npz": npz(linear_samples((1, 3, 8)))})
    wrong_samples = linear_samples((1, 3))
    wrong_samples["output.Y.1"][2, 1] += 0.5  # sample 1, batch item 2, element 1
    wrong = write_tree(root / "wrong", {
        "model.onnx": onnx_linear_model(), "config.pbtxt": LINEAR_CONFIG,
        "odahuflow.model.yaml": MANIFEST, "samples.npz": npz(wrong_samples)})
    models = {
        "linear-onnx": Model("linear-onnx", "onnx", trained["onnx"] / "model.onnx",
                             "INPUT0", "OUTPUT0", 4),
        "linear-openvino": Model("linear-openvino", "openvino",
                                 trained["openvino"] / "model.xml", "INPUT0", "OUTPUT0", 4),
        "dense-savedmodel": Model("dense-savedmodel", "tf_savedmodel",
                                  trained["tensorflow-savedmodel"] / "model.savedmodel",
                                  "INPUT0", "OUTPUT0", 1),
        "linear": Model("linear", "onnx", linear / "model.onnx", "X", "Y", 4),
    }
    outs = {k: root / f"out-{k}" for k in ("examples", "linear", "wrong")}
    images = [
        _package(list(trained.values()), outs["examples"], "triton-packager-test/runtime-examples:1",
                 dynamic_batching=True),
        _package([linear], outs["linear"], "triton-packager-test/runtime-linear:1"),
        _package([wrong], outs["wrong"], "triton-packager-test/runtime-wrong:1"),
    ]
    try:
        with ExitStack() as stack:
            examples = stack.enter_context(serve(images[0], timeout=300))
            one = stack.enter_context(serve(images[1], timeout=300))
            running = {n: (one if n == "linear" else examples) for n in models}
            yield Served(models, running, outs)
    finally:
        for image in images:
            remove_image(client, image)


def _client(kind: str, running: Running) -> tuple[Any, Any]:
    if kind == "http":
        import tritonclient.http as module

        return module, module.InferenceServerClient(running.http_url, concurrency=16)
    import tritonclient.grpc as module

    return module, module.InferenceServerClient(running.grpc_url)


def _infer(module: Any, client: Any, m: Model, x: np.ndarray) -> np.ndarray:
    t = module.InferInput(m.input, list(x.shape), "FP32")
    t.set_data_from_numpy(x)
    return np.asarray(client.infer(m.name, [t]).as_numpy(m.output))


MODELS = ("linear-onnx", "linear-openvino", "dense-savedmodel", "linear")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("name", MODELS)
def test_answers_equal_the_runtime_called_directly(served: Served, name: str,
                                                  protocol: str) -> None:
    m = served.models[name]
    direct = direct_runner(m.backend_key, m.model_file)
    module, client = _client(protocol, served.running[name])
    rng = np.random.default_rng(7)
    for batch in (1, 3, 8):
        x = rng.standard_normal((batch, m.width)).astype(np.float32)
        got = _infer(module, client, m, x)
        want = direct({m.input: x})[m.output]
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_sixteen_concurrent_requests_are_answered_in_fewer_executions(served: Served,
                                                                       name: str) -> None:
    m = served.models[name]
    direct = direct_runner(m.backend_key, m.model_file)
    module, client = _client("grpc", served.running[name])

    def counts() -> tuple[int, int]:
        stats = client.get_inference_statistics(m.name, as_json=True)["model_stats"][0]
        return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))

    # A model with `dynamic_batching { }` (no queue delay) joins only requests that queue while
    # another runs: on a loaded machine one burst may arrive spread out. Bursts of 16 requests
    # started together until one is batched (at most 5); every answer is checked each time.
    rng = np.random.default_rng(16)
    clients = [_client("grpc", served.running[name])[1] for _ in range(16)]
    inferences = executions = 0
    for _ in range(5):
        before = counts()
        xs = [rng.standard_normal((1, m.width)).astype(np.float32) for _ in range(16)]
        start = threading.Barrier(16)

        def one(pair: tuple[object, np.ndarray], start: threading.Barrier = start) -> np.ndarray:
            start.wait(timeout=60)
            return _infer(module, pair[0], m, pair[1])

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            got = list(pool.map(one, zip(clients, xs, strict=True)))
        for x, y in zip(xs, got, strict=True):
            np.testing.assert_allclose(y, direct({m.input: x})[m.output], rtol=1e-5, atol=1e-5)
        after = counts()
        inferences, executions = after[0] - before[0], after[1] - before[1]
        assert inferences == 16
        if executions < inferences:
            break
    assert executions < inferences, f"{executions} executions for {inferences} requests"


def test_wrong_types_and_shapes_get_tritons_errors(served: Served) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    m = served.models["linear-onnx"]
    client = httpclient.InferenceServerClient(served.running[m.name].http_url)
    for x, dtype, words in (
            (np.zeros((1, 4), np.float64), "FP64", "expects 'FP32'"),
            (np.zeros((1, 5), np.float32), "FP32", "unexpected shape for input 'INPUT0'"),
            (np.zeros((9, 4), np.float32), "FP32", "batch-size must be <= 8")):
        t = httpclient.InferInput(m.input, list(x.shape), dtype)
        t.set_data_from_numpy(x)
        with pytest.raises(InferenceServerException) as err:
            client.infer(m.name, [t])
        text = str(err.value)
        assert words in text and "[400]" in text and "Traceback" not in text, text


def test_verify_checks_the_samples_of_every_example(served: Served, capsys) -> None:
    assert main(["verify", "-o", str(served.outs["examples"])]) == 0
    err = capsys.readouterr().err
    for name in ("linear-onnx", "linear-openvino", "dense-savedmodel"):
        assert f"{name} v1: 2 sample(s) of samples.npz answered within tolerance" in err, err
    assert main(["verify", "-o", str(served.outs["linear"])]) == 0
    assert "linear v1: 3 sample(s)" in capsys.readouterr().err


def test_a_wrong_expected_sample_makes_verify_exit_4(served: Served, capsys) -> None:
    assert main(["verify", "-o", str(served.outs["wrong"])]) == 4
    err = capsys.readouterr().err
    assert "model linear version 1: output Y of sample 1 differs from samples.npz" in err
    assert "largest error 0.5 at [2, 1]" in err and "--rtol/--atol" in err


def test_without_samples_verify_says_answers_were_not_checked(served: Served, tmp_path: Path,
                                                              capsys) -> None:
    out = tmp_path / "out"
    shutil.copytree(served.outs["linear"], out, symlinks=True)
    (out / "model_repository" / "linear" / "1" / "samples.npz").unlink()
    assert main(["verify", "-o", str(out)]) == 0
    assert "no samples.npz beside the model, so its answers were not checked" in \
        capsys.readouterr().err
