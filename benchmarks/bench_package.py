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
- cold push:         into an empty local registry (Debian's docker-registry on 127.0.0.1):
                     the hand-written image with the builder's own push (`docker push`;
                     `buildah push` with its defaults) against `triton-packager push` (weights
                     layers uncompressed, layers in bounded sizes);
- pull-back:         the pushed image pulled again by the same engine (`docker pull` /
                     `buildah pull`) after removing it and, for ours, its weights image;
- push bytes:        registry storage growth when pushing after one more config edit (round 1
                     only: the hand-written image re-sends everything), ours and baseline;
- largest layer:     the largest layer in the registry's manifest of our pushed image;
- peak memory:       the packager process's maximum RSS (package and push);
- peak extra disk:   the filesystem's used-space peak during the cold package beyond what it
                     kept at the end (the image store's growth): temporary copies.

16 GiB is opt-in (`--sizes-gib 16 --rounds 1`), never part of `make test`.

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
import threading
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
        self.run("package", str(model), "--base-image", LOCAL_CPU_IMAGE, "--tag", tag,
                 "--builder", self.builder.name)

    def push(self, registry_path: str) -> str:
        return self.run("push", "--registry", registry_path)

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "packager", args[0],
             *args[1:], "--output", str(self.out), "--quiet"], cwd=REPO, capture_output=True,
            text=True, timeout=7200, env={**os.environ, **self.builder.env})
        if proc.returncode != 0:
            raise SystemExit(f"{args[0]} failed ({proc.returncode}):\n{proc.stderr}")
        # The packager prints the image name on stdout; the wrapper's figure comes last.
        lines = proc.stdout.strip().splitlines()
        self.peak_kib = max(self.peak_kib, int(lines[-1]))
        return lines[0] if len(lines) > 1 else ""


class Builder:
    """One of the packager's builders, and the hand-written baseline built through it."""

    def __init__(self, name: str, client: docker.DockerClient, tmp: Path) -> None:
        self.name = name
        self.client = client
        # the push's record of gzipped layers, emptied with the registry each round
        self.env: dict[str, str] = {"XDG_CACHE_HOME": str(tmp / "cache")}
        if name == "buildah":
            from packager.executor.images import buildah as bb

            self.storage = bb.Storage("overlay", tmp / "buildah" / "root", tmp / "buildah" / "run")
            self.env |= {bb.ENV_DRIVER: "overlay", bb.ENV_ROOT: str(self.storage.root),
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

    def push(self, ref: str, target: str) -> None:
        """The builder's own push with its defaults (every layer gzipped)."""
        if self.name == "docker":
            repo, _, tag = target.rpartition(":")
            self.client.images.get(ref).tag(repo, tag)
            for chunk in self.client.api.push(repo, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    raise SystemExit(f"push failed: {chunk['error']}")
            return
        subprocess.run(["buildah", *self.storage.flags(), "push", "--quiet", "--tls-verify=false",
                        ref, f"docker://{target}"], check=True, capture_output=True, timeout=7200)

    def pull(self, ref: str) -> None:
        if self.name == "docker":
            self.client.images.pull(ref)
            return
        subprocess.run(["buildah", *self.storage.flags(), "pull", "--quiet", "--tls-verify=false",
                        f"docker://{ref}"], check=True, capture_output=True, timeout=7200)

    def drop(self, refs: list[str]) -> None:
        """Remove `refs` so that a pull has to fetch them (for ours, with its weights image:
        the FROM of the output's Dockerfile -- only this run's, on a shared engine)."""
        if self.name == "docker":
            for ref in refs:
                with contextlib.suppress(docker.errors.DockerException):
                    self.client.images.remove(ref, force=True)
            return
        b = ["buildah", *self.storage.flags()]
        names = subprocess.run([*b, "images", "--format", "{{.Name}}:{{.Tag}}"],
                               capture_output=True, text=True, timeout=300).stdout.split()
        for name in names:
            if any(name.endswith(r) for r in refs):
                subprocess.run([*b, "rmi", "-f", name], capture_output=True, timeout=300)
        subprocess.run([*b, "rmi", "--prune"], capture_output=True, timeout=300)

    def remove(self, refs: list[str]) -> None:
        if self.name == "docker":
            for ref in refs:
                with contextlib.suppress(docker.errors.DockerException):
                    self.client.images.remove(ref, force=True)
            return
        b = ["buildah", *self.storage.flags()]
        names = subprocess.run([*b, "images", "--format", "{{.Name}}:{{.Tag}}"],
                               capture_output=True, text=True, timeout=300).stdout.split()
        for name in names:
            if not name.endswith(LOCAL_CPU_IMAGE):
                subprocess.run([*b, "rmi", "-f", name], capture_output=True, timeout=300)
        subprocess.run([*b, "rmi", "--prune"], capture_output=True, timeout=300)


def weights_tag(out: Path) -> str:
    """The weights image the output's model image starts FROM (this run's own)."""
    dockerfile = (out / "context" / "Dockerfile").read_text()
    return next(ln.split()[1] for ln in dockerfile.splitlines()
                if ln.startswith("FROM ") and "triton-packager/weights:" in ln)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class DiskPeak:
    """The peak of the used space of the filesystem holding `path`, sampled every 50 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = self.peak = self.used()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def used(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, self.used())

    def __enter__(self) -> DiskPeak:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.end = self.used()


def manifest_layers(reg: str, repository: str, tag: str) -> list[int]:
    """Layer sizes in the registry's manifest of repository:tag."""
    import urllib.request

    req = urllib.request.Request(f"http://{reg}/v2/{repository}/manifests/{tag}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return [int(m["size"]) for m in json.loads(resp.read())["layers"]]


def push_and_pull(builder: Builder, ours: Packager, reg: str, tmp: Path, rnd: int,
                  model: Path, r: dict[str, float], refs: list[str]) -> None:
    """Cold pushes into an empty registry, pull-back, and (round 1) the push after an edit."""
    data = tmp / "registry-data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(tmp / "cache", ignore_errors=True)
    base_target = f"{reg}/base:r{rnd}"
    refs.append(base_target)
    r["push_baseline_cold"] = timed(lambda: builder.push("bench-base:config", base_target))
    base_bytes = dir_bytes(data)
    pushed: list[str] = []
    r["push_package_cold"] = timed(lambda: pushed.append(ours.push(f"{reg}/ours")))
    ours_ref = pushed[0].split("@")[0]
    refs.append(ours_ref)
    r["push_package_cold_bytes"] = dir_bytes(data) - base_bytes
    repo, _, tag = ours_ref.removeprefix(reg + "/").rpartition(":")
    r["largest_layer_bytes"] = max(manifest_layers(reg, repo, tag))
    # every local image holding the pushed layers goes first (buildah reuses a layer it has by
    # digest, and an uncompressed layer's digest is its diff ID), so the pull fetches them
    builder.drop([base_target, "bench-base:config"])
    r["pull_baseline"] = timed(lambda: builder.pull(base_target))
    builder.drop([ours_ref, "bench-ours:cold", "bench-ours:config", "bench-ours:small",
                  weights_tag(ours.out)])
    r["pull_package"] = timed(lambda: builder.pull(ours_ref))
    if rnd == 0:
        # one more config edit: what each sends when only config.pbtxt changed
        # a real change (a comment would be normalised away by the generated config)
        (model / "config.pbtxt").write_text((model / "config.pbtxt").read_text()
                                            + 'parameters { key: "bench" value { '
                                            'string_value: "edited" } }\n')
        refs.append("bench-ours:edit")
        ours(model, "bench-ours:edit")
        before = dir_bytes(data)
        refs.append(ours.push(f"{reg}/ours").split("@")[0])
        r["push_ours_config_bytes"] = dir_bytes(data) - before
        before = dir_bytes(data)
        # the hand-written image of the other config: all of its COPY layer is new
        builder.push("bench-base:cold", f"{reg}/base:edit")
        refs.append(f"{reg}/base:edit")
        r["push_baseline_config_bytes"] = dir_bytes(data) - before
    shutil.rmtree(data, ignore_errors=True)


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
        with DiskPeak(tmp) as disk:
            r["package_cold"] = timed(lambda: ours(model, "bench-ours:cold"))
        refs.append(weights_tag(ours.out))  # removed with the round's images
        r["package_cold_extra_disk_bytes"] = disk.peak - disk.end
        r["package_cold_kept_disk_bytes"] = disk.end - disk.start
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
        if reg is not None:
            push_and_pull(builder, ours, str(reg), tmp, rnd, model, r, refs)
        r["peak_rss_mib"] = ours.peak_kib / 1024
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
        if "push_package_cold" in m:
            both = ((m["package_cold"] + m["push_package_cold"])
                    / (m["baseline_cold"] + m["push_baseline_cold"]))
            print(f"{'':33s} cold push {m['push_package_cold']:.2f}s vs {m['push_baseline_cold']:.2f}s "
                  f"({m['push_package_cold'] / m['push_baseline_cold']:.2f}); pull-back "
                  f"{m['pull_package']:.2f}s vs {m['pull_baseline']:.2f}s "
                  f"({m['pull_package'] / m['pull_baseline']:.2f}); build+push "
                  f"{both:.2f}; "
                  f"largest layer {m['largest_layer_bytes'] / (1 << 20):.0f} MiB")
        print(f"{'':33s} peak extra disk in the cold package "
              f"{m['package_cold_extra_disk_bytes'] / (1 << 20):.0f} MiB (kept: "
              f"{m['package_cold_kept_disk_bytes'] / (1 << 20):.0f} MiB)")
    write_json(Path(args.json), machine_doc, results)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
