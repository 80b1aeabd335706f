"""Packaging speed and memory against a hand-written Dockerfile, measured side by side in one run.

    python benchmarks/bench_package.py [--sizes-gib 1 4] [--rounds 3] [--json out/bench.json]

For each model size and shape (one big file; an ONNX model with its weights in ~50 external
data files), each round makes fresh random weights, then measures through the same engine:

- baseline cold:     `FROM base` + `COPY model_repository /models`, built with the docker SDK;
- baseline config:   the same after editing config.pbtxt (the legacy builder re-sends and
                     re-copies everything after the changed file's layer: here, all of it);
- package cold:      `triton-packager package` in a fresh process (its real cost: imports,
                     hashing, staging, the weights image, the model image);
- package config:    after editing only config.pbtxt;
- package small:     after editing only a small extra file (labels.txt);
- package no-change: nothing changed;
- push bytes:        registry storage growth when pushing the config-edited image after the
                     first one (round 1 only: a multi-GB push is slow), ours and baseline;
- peak memory:       the packager process's maximum RSS.

Medians over the rounds are printed as a table, with ratios against the baseline measured in
the same run, and written as JSON with the machine's cores, memory and engine version. It
asserts nothing: targets are read from the table (README "Performance").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from e2e import registry

from packager.basechoice import LOCAL_CPU_IMAGE

REPO = Path(__file__).resolve().parent.parent
CHUNK = 64 << 20
SHAPES = ("single-file", "onnx-external-50")


def _fill(path: Path, size: int, seed: bytes) -> None:
    """`size` bytes that differ per round (a fresh seed) without the cost of os.urandom."""
    block = bytearray(os.urandom(CHUNK))
    with path.open("wb") as fh:
        written = 0
        n = 0
        while written < size:
            part = min(CHUNK, size - written)
            block[:24] = seed + n.to_bytes(8, "big")
            fh.write(block[:part])
            written += part
            n += 1


def make_model(root: Path, shape: str, size: int, seed: bytes) -> Path:
    """A model directory of `size` bytes of weights in the given shape."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "labels.txt").write_text("cat\ndog\n")
    (root / "odahuflow.model.yaml").write_text("name: bench\nversion: 1\n")
    if shape == "single-file":  # an opaque TensorRT plan: one file of `size` bytes
        _fill(root / "model.plan", size, seed)
        (root / "config.pbtxt").write_text('name: "bench"\nplatform: "tensorrt_plan"\n'
                                           "max_batch_size: 0\n")
        return root
    from onnx import TensorProto, helper

    d = root / "model.onnx"
    d.mkdir()
    parts = 50
    per = (size // parts) // 4 * 4
    inits = []
    for i in range(parts):
        name = f"w{i:02d}.bin"
        _fill(d / name, per, seed)
        t = TensorProto(name=f"W{i}", data_type=TensorProto.FLOAT, dims=[per // 4])
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", name), ("offset", "0"), ("length", str(per))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        inits.append(t)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], "bench",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, [4])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (d / "model.onnx").write_bytes(model.SerializeToString())
    (root / "config.pbtxt").write_text('name: "bench"\nplatform: "onnxruntime_onnx"\n'
                                       "max_batch_size: 0\n")
    return root


def baseline_context(model: Path, ctx: Path) -> Path:
    """What a team writes by hand: the Triton tree (hardlinked) and a one-COPY Dockerfile."""
    shutil.rmtree(ctx, ignore_errors=True)
    version = ctx / "model_repository/bench/1"
    version.mkdir(parents=True)
    for item in model.iterdir():
        if item.name in ("config.pbtxt", "odahuflow.model.yaml"):
            continue
        if item.is_dir():
            shutil.copytree(item, version / item.name, copy_function=os.link)
        else:
            os.link(item, version / item.name)
    shutil.copy(model / "config.pbtxt", ctx / "model_repository/bench/config.pbtxt")
    (ctx / "Dockerfile").write_text(f"FROM {LOCAL_CPU_IMAGE}\nCOPY model_repository /models\n"
                                    'CMD ["tritonserver", "--model-repository=/models"]\n')
    return ctx


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# A child's ru_maxrss counts the memory of the process it was forked from (the high-water mark
# survives exec), and this benchmark holds big buffers. So a small interpreter forks the
# packager and reports the packager's own peak.
_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stdout.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


class Packager:
    """`triton-packager package` as a user runs it: a fresh process, peak RSS recorded."""

    def __init__(self, out: Path, builder: Builder) -> None:
        self.out = out
        self.builder = builder
        self.peak_kib = 0

    def __call__(self, model: Path, tag: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "packager", "package",
             str(model), "--output", str(self.out), "--base-image", LOCAL_CPU_IMAGE, "--tag", tag,
             "--builder", self.builder.name, "--quiet"], cwd=REPO, capture_output=True,
            text=True, timeout=3600, env={**os.environ, **self.builder.env})
        if proc.returncode != 0:
            raise SystemExit(f"package failed ({proc.returncode}):\n{proc.stderr}")
        # The packager prints the image name on stdout; the wrapper's figure comes last.
        self.peak_kib = max(self.peak_kib, int(proc.stdout.strip().splitlines()[-1]))


class Builder:
    """One of the packager's builders, and the hand-written baseline built through it."""

    def __init__(self, name: str, client: docker.DockerClient, tmp: Path) -> None:
        self.name = name
        self.client = client
        self.env: dict[str, str] = {}
        if name == "buildah":
            from packager.executor.images import buildah as bb

            self.storage = bb.Storage("overlay", tmp / "buildah" / "root", tmp / "buildah" / "run")
            self.env = {bb.ENV_DRIVER: "overlay", bb.ENV_ROOT: str(self.storage.root),
                        bb.ENV_RUNROOT: str(self.storage.runroot)}
            # the base comes into buildah's storage once, outside the timings
            bb.ensure_image(f"docker-daemon:{LOCAL_CPU_IMAGE}", storage=self.storage)

    def baseline(self, ctx: Path, tag: str) -> None:
        if self.name == "docker":
            self.client.images.build(path=str(ctx), tag=tag, rm=True)
            return
        subprocess.run(["buildah", *self.storage.flags(), "build", "--isolation", "chroot",
                        "--layers", "--pull=never", "--format", "docker", "--quiet", "-t", tag,
                        str(ctx)], check=True, capture_output=True, timeout=3600)

    def remove(self, refs: list[str]) -> None:
        if self.name == "docker":
            for ref in refs:
                with contextlib.suppress(docker.errors.DockerException):
                    self.client.images.remove(ref, force=True)
            with contextlib.suppress(docker.errors.DockerException):
                for img in self.client.images.list("triton-packager/weights"):
                    self.client.images.remove(img.id, force=True)
            with contextlib.suppress(docker.errors.DockerException):
                self.client.images.prune(filters={"dangling": True})
            return
        b = ["buildah", *self.storage.flags()]
        names = subprocess.run([*b, "images", "--format", "{{.Name}}:{{.Tag}}"],
                               capture_output=True, text=True, timeout=300).stdout.split()
        for name in names:
            if not name.endswith(LOCAL_CPU_IMAGE):
                subprocess.run([*b, "rmi", "-f", name], capture_output=True, timeout=300)
        subprocess.run([*b, "rmi", "--prune"], capture_output=True, timeout=300)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def push_bytes(client: docker.DockerClient, reg: str, data: Path, first: str,
               second: str) -> int:
    """Registry storage growth from pushing `second` after `first` (same repository)."""
    for i, ref in enumerate((first, second)):
        target = f"{reg}/bench"
        client.images.get(ref).tag(target, f"r{i}")
        before = dir_bytes(data) if data.exists() else 0
        for chunk in client.api.push(target, tag=f"r{i}", stream=True, decode=True):
            if "error" in chunk:
                raise SystemExit(f"push failed: {chunk['error']}")
        grown = (dir_bytes(data) if data.exists() else 0) - before
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(f"{target}:r{i}")
    return grown


@contextlib.contextmanager
def cleanup(builder: Builder) -> Iterator[list[str]]:
    refs: list[str] = []
    try:
        yield refs
    finally:
        builder.remove(refs)


def one_round(client: docker.DockerClient, builder: Builder, tmp: Path, shape: str, size: int,
              rnd: int, reg: str | None) -> dict[str, float]:
    seed = os.urandom(16)
    model = make_model(tmp / "model", shape, size, seed)
    ctx = baseline_context(model, tmp / "baseline")
    shutil.rmtree(tmp / "out", ignore_errors=True)
    ours = Packager(tmp / "out", builder)
    r: dict[str, float] = {}
    with cleanup(builder) as refs:
        def base_build(tag: str) -> None:
            refs.append(tag)
            builder.baseline(ctx, tag)

        r["baseline_cold"] = timed(lambda: base_build("bench-base:cold"))
        refs.append("bench-ours:cold")
        r["package_cold"] = timed(lambda: ours(model, "bench-ours:cold"))
        edit = "instance_group [ { kind: KIND_CPU } ]\n"
        for path in (model / "config.pbtxt", ctx / "model_repository/bench/config.pbtxt"):
            path.write_text(path.read_text() + edit)
        r["baseline_config"] = timed(lambda: base_build("bench-base:config"))
        refs.append("bench-ours:config")
        r["package_config"] = timed(lambda: ours(model, "bench-ours:config"))
        (model / "labels.txt").write_text("cat\ndog\nbird\n")
        refs.append("bench-ours:small")
        r["package_small"] = timed(lambda: ours(model, "bench-ours:small"))
        r["package_nochange"] = timed(lambda: ours(model, "bench-ours:small"))
        r["peak_rss_mib"] = ours.peak_kib / 1024
        if reg is not None and rnd == 0 and builder.name == "docker":
            data = tmp / "registry-data"
            r["push_ours_config_bytes"] = push_bytes(client, reg, data, "bench-ours:cold",
                                                     "bench-ours:config")
            shutil.rmtree(data, ignore_errors=True)
            r["push_baseline_config_bytes"] = push_bytes(client, reg, data, "bench-base:cold",
                                                         "bench-base:config")
            shutil.rmtree(data, ignore_errors=True)
    return r


def machine(versions: dict[str, str]) -> dict[str, Any]:
    return {"cores": os.cpu_count(), "memory_gib": round(
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30), 1),
        "python": platform.python_version(), "builders": versions}


def write_json(out: Path, machine_doc: dict[str, Any], results: list[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine_doc, "results": results}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-gib", type=float, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--no-push", action="store_true", help="skip the registry measurements")
    parser.add_argument("--json", default="out/bench.json")
    parser.add_argument("--builders", nargs="+", choices=("docker", "buildah"),
                        default=["docker", "buildah"] if shutil.which("buildah") else ["docker"])
    args = parser.parse_args()
    client = docker.from_env(timeout=1800)
    results: list[dict[str, Any]] = []
    buildah_version = subprocess.run(["buildah", "--version"], capture_output=True, text=True,
                                     timeout=60).stdout.strip() if shutil.which("buildah") else ""
    versions = {"docker": client.version().get("Version", "?"),
                "buildah": buildah_version or "not installed"}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR"), prefix="bench-") as t, \
            (contextlib.nullcontext(None) if args.no_push else registry(Path(t))) as reg:
        tmp = Path(t)
        builders = [Builder(name, client, tmp) for name in args.builders]
        for size_gib in args.sizes_gib:
            size = int(size_gib * (1 << 30))
            for shape in args.shapes:
                for builder in builders:
                    rounds = []
                    for rnd in range(args.rounds):
                        rounds.append(one_round(client, builder, tmp, shape, size, rnd, reg))
                        print(f"  {builder.name} {size_gib:g} GiB {shape} round {rnd + 1}: "
                              + ", ".join(f"{k}={v:.2f}" for k, v in rounds[-1].items()
                                          if not k.endswith("bytes")), flush=True)
                    med = {k: statistics.median(r[k] for r in rounds if k in r)
                           for k in rounds[0]}
                    results.append({"builder": builder.name, "size_gib": size_gib,
                                    "shape": shape, "rounds": rounds, "median": med})
                    # written after every case: a long run stopped early keeps what it measured
                    write_json(Path(args.json), machine(versions), results)
        for builder in builders:
            if builder.name == "buildah":
                builder.remove([])
    machine_doc = machine(versions)
    print(f"\nmachine: {machine_doc['cores']} cores, {machine_doc['memory_gib']} GiB, "
          f"Docker {versions['docker']}, {versions['buildah']}")
    print(f"medians of {args.rounds} rounds; ratio = package / baseline cold, measured in the "
          "same round\n")
    head = (f"{'builder':8s} {'model':24s} {'baseline':>9s} {'cold':>8s} {'ratio':>6s} {'config':>8s} "
            f"{'/cold':>6s} {'small':>7s} {'nochange':>9s} {'push cfg':>10s} {'base push':>10s} "
            f"{'RSS MiB':>8s}")
    print(head)
    print("-" * len(head))
    for res in results:
        m = res["median"]
        push = m.get("push_ours_config_bytes")
        bpush = m.get("push_baseline_config_bytes")
        size = res["size_gib"] * (1 << 30)
        print(f"{res['builder']:8s} {res['size_gib']:g} GiB {res['shape']:18s} "
              f"{m['baseline_cold']:8.2f}s "
              f"{m['package_cold']:7.2f}s {m['package_cold'] / m['baseline_cold']:6.2f} "
              f"{m['package_config']:7.2f}s {m['package_config'] / m['package_cold']:6.1%} "
              f"{m['package_small']:6.2f}s {m['package_nochange']:8.2f}s "
              + (f"{push / size:10.3%} {bpush / size:10.1%}" if push is not None and bpush
                 else f"{'-':>10s} {'-':>10s}")
              + f" {m['peak_rss_mib']:8.1f}")
        print(f"{'':33s} baseline after config edit: {m['baseline_config']:.2f}s "
              f"({m['baseline_config'] / m['baseline_cold']:.0%} of its cold build)")
    write_json(Path(args.json), machine_doc, results)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
