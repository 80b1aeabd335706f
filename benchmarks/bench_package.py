"""Packaging cost against naive baselines measured in the same run; prints ratios, asserts nothing.

    python benchmarks/bench_package.py [--size-mib 512]

- stage: the repository + dockerfile phases (hardlinks) vs copying the input tree (copytree).
- build: the package phase vs a hand-written one-COPY Dockerfile, cold.
- rebuild after editing config.pbtxt: ours (weights layer cached) vs the one-COPY Dockerfile.
- memory: the packager's peak RSS growth over the run vs the model size.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import docker

from packager.baseimage import LOCAL_CPU_IMAGE
from packager.executor.phases import Workspace
from packager.pipeline import Options

CONFIG = 'platform: "onnxruntime_onnx"\nmax_batch_size: 0\n'


def _len(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def write_onnx(path: Path, size_mib: int) -> None:
    """A real single-file model.onnx (OUTPUT0 = INPUT0 + W) whose initializer W holds
    size_mib MiB of random float32 bytes, streamed to disk: the benchmark process never holds
    the weights, so its peak RSS measures the packager alone."""
    from onnx import TensorProto, helper

    n = size_mib << 18  # float32 values
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "W"], ["OUTPUT0"])], "bench",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, [n])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, [n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    graph_bytes = model.graph.SerializeToString()
    model.ClearField("graph")
    head = model.SerializeToString()
    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[n])
    tensor_head = tensor.SerializeToString() + b"\x4a" + _len(n * 4)  # raw_data = 9
    init = b"\x2a" + _len(len(tensor_head) + n * 4) + tensor_head  # GraphProto.initializer = 5
    graph_len = len(graph_bytes) + len(init) + n * 4
    with path.open("wb") as fh:
        fh.write(head + b"\x3a" + _len(graph_len) + graph_bytes + init)  # ModelProto.graph = 7
        for _ in range(size_mib):
            fh.write(os.urandom(1 << 20))


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=512)
    args = parser.parse_args()
    client = docker.from_env()
    created: list[str] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp_s:
        tmp = Path(tmp_s)
        model = tmp / "model"
        model.mkdir()
        write_onnx(model / "model.onnx", args.size_mib)
        (model / "config.pbtxt").write_text(CONFIG)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        naive_stage = timed(lambda: shutil.copytree(model, tmp / "copy"))
        ours_stage = timed(lambda: Workspace(model, tmp / "out", Options(
            base_image=LOCAL_CPU_IMAGE)).run("dockerfile"))

        naive_ctx = tmp / "naive"
        (naive_ctx / "model_repository/model/1").mkdir(parents=True)
        os.link(model / "model.onnx", naive_ctx / "model_repository/model/1/model.onnx")
        shutil.copy(model / "config.pbtxt", naive_ctx / "model_repository/model/config.pbtxt")
        (naive_ctx / "Dockerfile").write_text(
            f"FROM {LOCAL_CPU_IMAGE}\nCOPY model_repository /models\n"
            'CMD ["tritonserver", "--model-repository=/models"]\n')

        def naive_build() -> None:
            tag = f"bench-naive:{uuid.uuid4().hex[:8]}"
            created.append(tag)
            client.images.build(path=str(naive_ctx), tag=tag, rm=True)

        def ours_build() -> None:
            tag = f"bench-ours:{uuid.uuid4().hex[:8]}"
            created.append(tag)
            Workspace(model, tmp / "out", Options(base_image=LOCAL_CPU_IMAGE, tag=tag),
                      force=True).run("package")

        naive_cold, ours_cold = timed(naive_build), timed(ours_build)
        edited = CONFIG + "instance_group [ { kind: KIND_CPU } ]\n"
        (model / "config.pbtxt").write_text(edited)
        (naive_ctx / "model_repository/model/config.pbtxt").write_text(edited)
        naive_re, ours_re = timed(naive_build), timed(ours_build)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0

        for tag in created:
            with contextlib.suppress(docker.errors.DockerException):
                client.images.remove(tag, force=True)

    size = args.size_mib
    print(f"model: a model.onnx holding {size} MiB of random weights")
    rows = [
        ("stage (hardlink) / copytree", ours_stage, naive_stage),
        ("cold build / one-COPY Dockerfile", ours_cold, naive_cold),
        ("rebuild after config edit / one-COPY", ours_re, naive_re),
    ]
    for label, ours, base in rows:
        print(f"{label:40s} {ours:8.2f}s vs {base:8.2f}s  ratio {ours / base:6.3f}")
    print(f"{'peak RSS growth / model size':40s} {rss / 1024:8.1f} MiB vs {size:5d} MiB  "
          f"ratio {rss / 1024 / size:6.3f}")


if __name__ == "__main__":
    main()
