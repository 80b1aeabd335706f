"""Figures for `--serve-with runtime` (a phase, not a test: it asserts nothing).

For each of the ONNX, OpenVINO and TensorFlow SavedModel examples (trained here unless
--trained DIR holds them): the image packaged in this mode on the local CPU base, its size
against the base image alone, and the time from `docker start` to /v2/health/ready. For one
example (ONNX by default), requests per second at batch 1 -- one client in sequence, and 16
concurrent clients with dynamic batching -- against the same runtime called directly in this
Python process on the same inputs (one call per request, and one call per 16-row batch), all in
one run on the same machine.

    python benchmarks/bench_serve_runtime.py [--trained DIR] [--seconds 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from packager.analysis import Options  # noqa: E402
from packager.basechoice import LOCAL_CPU_IMAGE  # noqa: E402
from packager.configgen import ConfigOptions  # noqa: E402
from packager.executor.container import serve  # noqa: E402
from packager.executor.phases import BuildEnv, Workspace  # noqa: E402
from packager.executor.report import Reporter  # noqa: E402
from packager.executor.runs.trainer import TrainRequest, train  # noqa: E402

EXAMPLES = {"onnx": ("linear-onnx", "onnx", "model.onnx", 4),
            "openvino": ("linear-openvino", "openvino", "model.xml", 4),
            "tensorflow-savedmodel": ("dense-savedmodel", "tf_savedmodel", "model.savedmodel", 1)}
CA = Path("/etc/ssl/certs/ca-certificates.crt")


def direct(kind: str, path: Path) -> Any:
    """feed -> outputs, with the runtime in this process."""
    if kind == "onnx":
        import onnxruntime

        s = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda feed: s.run(None, feed)
    if kind == "openvino":
        import openvino

        c = openvino.Core().compile_model(str(path), "CPU")
        return lambda feed: c(feed)
    import tensorflow as tf

    f = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda feed: f(**{k: tf.constant(v) for k, v in feed.items()})


def rate(fn: Any, seconds: float) -> float:
    """Calls of fn() per second over about `seconds`."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def served_rates(running: Any, name: str, width: int, seconds: float) -> dict[str, float]:
    import tritonclient.grpc as grpc

    x = np.random.default_rng(0).standard_normal((1, width)).astype(np.float32)

    def one(client: Any) -> None:
        t = grpc.InferInput("INPUT0", [1, width], "FP32")
        t.set_data_from_numpy(x)
        client.infer(name, [t])

    single = grpc.InferenceServerClient(running.grpc_url)
    sequential = rate(lambda: one(single), seconds)
    clients = [grpc.InferenceServerClient(running.grpc_url) for _ in range(16)]
    stats0 = single.get_inference_statistics(name, as_json=True)["model_stats"][0]

    def worker(c: Any) -> int:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            one(c)
            n += 1
        return n

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        total = sum(pool.map(worker, clients))
    concurrent_rate = total / (time.perf_counter() - start)
    stats1 = single.get_inference_statistics(name, as_json=True)["model_stats"][0]
    inferences = int(stats1["inference_count"]) - int(stats0.get("inference_count", 0))
    executions = int(stats1["execution_count"]) - int(stats0.get("execution_count", 0))
    return {"batch1_sequential_rps": sequential, "batch1_16_concurrent_rps": concurrent_rate,
            "mean_dynamic_batch": inferences / max(executions, 1)}


def main() -> int:
    import docker

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trained", default=None, help="directory holding trained examples")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate-example", default="onnx", choices=sorted(EXAMPLES))
    p.add_argument("--json", default=None)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-runtime-"))
    trained_root = Path(args.trained) if args.trained else work / "trained"
    client = docker.from_env()
    base_size = client.images.get(LOCAL_CPU_IMAGE).attrs["Size"]
    results: dict[str, Any] = {"base_image": LOCAL_CPU_IMAGE, "base_image_bytes": base_size,
                               "machine": platform.platform(), "examples": {}}
    for example, (name, kind, model_file, width) in EXAMPLES.items():
        model = trained_root / example
        if not (model / model_file).exists():
            model = train(TrainRequest(REPO / "examples" / example, model), Reporter("quiet"))
        tag = f"triton-packager-bench/{name}:runtime"
        options = Options(base_image=LOCAL_CPU_IMAGE, tag=tag, serve_with="runtime",
                          model_config=ConfigOptions(dynamic_batching=True))
        t0 = time.perf_counter()
        Workspace(model, work / f"out-{example}", options, Reporter("quiet"),
                  build_env=BuildEnv(ca_bundle=CA if CA.is_file() else None)).run("package")
        build_s = time.perf_counter() - t0
        size = client.images.get(tag).attrs["Size"]
        entry: dict[str, Any] = {"image_bytes": size, "over_base_bytes": size - base_size,
                                 "ratio_to_base": size / base_size, "package_seconds": build_s}
        t0 = time.perf_counter()
        with serve(tag, timeout=600) as running:
            entry["seconds_to_ready"] = time.perf_counter() - t0
            if example == args.rate_example:
                entry.update(served_rates(running, name, width, args.seconds))
                run = direct(kind, model / model_file)
                x1 = np.random.default_rng(0).standard_normal((1, width)).astype(np.float32)
                x16 = np.random.default_rng(0).standard_normal((16, width)).astype(np.float32)
                entry["direct_batch1_rps"] = rate(lambda r=run, x=x1: r({"INPUT0": x}),
                                                  args.seconds)
                entry["direct_batch16_rows_per_s"] = 16 * rate(
                    lambda r=run, x=x16: r({"INPUT0": x}), args.seconds)
                entry["ratio_sequential_to_direct"] = (entry["batch1_sequential_rps"]
                                                       / entry["direct_batch1_rps"])
                entry["ratio_concurrent_to_direct"] = (entry["batch1_16_concurrent_rps"]
                                                       / entry["direct_batch1_rps"])
        client.images.remove(tag, force=True)
        results["examples"][example] = entry
        print(json.dumps({example: entry}), flush=True)
    text = json.dumps(results, indent=2) + "\n"
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
