"""Packaging speed and memory against a hand-written Dockerfile, measured side by side in one run.

    python benchmarks/bench_package.py [--sizes-gib 1 4] [--rounds 3] [--json out/bench.json]

For each model size and shape (one big file; an ONNX model with its weights in ~50 external
data files), each round makes fresh random weights, then measures through the same engine:

- baseline cold:     `FROM base` + `COPY model_repository /models`, built with the docker SDK
                     (the context streamed as `docker build` streams it) or `buildah build`;
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

Lean rounds (`--lean`; implied for sizes from 16 GiB, one file unless --shapes says otherwise)
measure only the cold build, the cold pushes, the pull-backs, peak RSS (package and push apart)
and disk, with one image of the weights at a time so that peak disk stays near the model, one
image, the registry's copy and the engine's transient copy: the hand-written image is built,
pushed, dropped (with its build cache) and pulled back, then it and the registry's blobs are
deleted before ours is packaged, pushed, dropped (with its weights image) and pulled back; the
model is deleted once the hand-written image is built and before our pull, and written
again from the same seed for ours. Each step records the
filesystem's free space before and after it and its used-space peak above the round's start
(`disk_*_bytes`; `peak_disk_bytes` and `peak_disk_copies` for the round). The edits and the
pushes after an edit (they need both images at once) are not measured: absent from the JSON,
listed under "skipped". A lean round first checks the free space against
size x --lean-copies (4 with the Docker engine, 4.5 with buildah) + 5 GB and exits naming
the figures when it does not fit. It puts the
builders' temporary files (TMPDIR) in the bench's directory, whose files are measured on their
own too (`disk_own_peak_*_bytes`: other work on a shared filesystem does not blur them; with the
Docker engine they include its data root's tmp but not its image store).

16 GiB is opt-in (`--sizes-gib 16 --rounds 1`, lean), never part of `make test`.

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
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
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
CHUNK_IO = 1 << 20
SHAPES = ("single-file", "onnx-external-50")


def _fill(path: Path, size: int, seed: bytes) -> None:
    """`size` bytes that differ per round (a fresh seed) without the cost of os.urandom: the
    same seed gives the same bytes (a lean round deletes the model and writes it again)."""
    block = bytearray(random.Random(seed).randbytes(CHUNK))
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


def tar_stream(ctx: Path) -> Iterator[bytes]:
    """The directory `ctx` as a tar, in 1 MiB chunks, written by a thread into a pipe: nothing
    on disk, as a build context for docker-py (requests sends a generator chunked)."""
    r, w = os.pipe()

    def write() -> None:
        try:
            with open(w, "wb", buffering=CHUNK_IO) as fh, \
                    tarfile.open(fileobj=fh, mode="w|", bufsize=CHUNK_IO) as tar:
                for item in sorted(ctx.iterdir()):
                    tar.add(str(item), arcname=item.name)
        except OSError:  # the reader went away (a failed build): the build reports it
            pass

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    with open(r, "rb") as fh:
        while chunk := fh.read(CHUNK_IO):
            yield chunk
    thread.join()


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
        self.last_kib = 0  # the last run's own peak

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
        self.last_kib = int(lines[-1])
        self.peak_kib = max(self.peak_kib, self.last_kib)
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
            # the context streamed, as `docker build` sends it: docker-py's path= first writes
            # the whole context to a temporary file (a copy of the weights, and its time)
            self.client.images.build(fileobj=tar_stream(ctx), custom_context=True, tag=tag,
                                     rm=True)
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
        self._remove(refs, lambda name: any(name.endswith(r) for r in refs))

    def remove(self, refs: list[str]) -> None:
        """Remove `refs` (docker), or every image but the local base (buildah's own storage)."""
        self._remove(refs, lambda name: not name.endswith(LOCAL_CPU_IMAGE))

    def _remove(self, refs: list[str], buildah_wanted: Callable[[str], bool]) -> None:
        if self.name == "docker":
            for ref in refs:
                with contextlib.suppress(docker.errors.DockerException):
                    self.client.images.remove(ref, force=True)
            return
        b = ["buildah", *self.storage.flags()]
        names = subprocess.run([*b, "images", "--format", "{{.Name}}:{{.Tag}}"],
                               capture_output=True, text=True, timeout=300).stdout.split()
        for name in names:
            if buildah_wanted(name):
                subprocess.run([*b, "rmi", "-f", name], capture_output=True, timeout=300)
        subprocess.run([*b, "rmi", "--prune"], capture_output=True, timeout=300)


def weights_tag(out: Path) -> str:
    """The weights image the output's model image starts FROM (this run's own)."""
    dockerfile = (out / "context" / "Dockerfile").read_text()
    return next(ln.split()[1] for ln in dockerfile.splitlines()
                if ln.startswith("FROM ") and "triton-packager/weights:" in ln)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def free_bytes(path: Path) -> int:
    """What an unprivileged writer can still use on the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class DiskPeak:
    """The peak of the used space of the filesystem holding `path`, sampled every 50 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = self.peak = self.used()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def used(self) -> int:
        return used_bytes(self.path)

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


# A lean round (--lean; every size from LEAN_FROM_GIB GiB) measures what a round at that size
# is for -- cold build, cold push and pull-back of both images, peak RSS, disk -- while holding at
# most one image of the weights at a time: the hand-written image is built, pushed, dropped and
# pulled back, then it and the registry's blobs go before ours is packaged, pushed, dropped and
# pulled back. The model is deleted before each pull (the pull needs room for the engine's
# download beside the unpacked layer) and written again, same seed, for ours. What needs both
# images at once (the edits, the pushes after an edit) is not measured: those keys are absent
# and listed in the result's "skipped".
LEAN_FROM_GIB = 16
# Copies of the weights a lean round needs free, by builder (README "Performance"), as measured
# at 0.5 GiB: with the Docker engine four (our push: the model the weights are sent from, the
# image, the registry's copy, and `docker save`'s copy inside the engine meanwhile); with buildah
# four to four and a half (`buildah build --layers` of the hand-written image: the model, the
# image and two to two and a half copies on the side while it commits; about four in both pushes
# and in our package: the model, the layout, containers/image's temporary copy, the image).
LEAN_COPIES = {"docker": 4.0, "buildah": 4.5}
LEAN_MARGIN = 5 * 10**9
LEAN_SKIPPED = ("baseline_config", "package_config", "package_small", "package_nochange",
                "push_ours_config_bytes", "push_baseline_config_bytes")


def check_lean_disk(paths: list[Path], size: int, copies: float) -> dict[str, float]:
    """Exit, naming the figures, when a filesystem a lean round writes to has less free space
    than `copies` copies of the weights plus LEAN_MARGIN; else the free space seen."""
    need = size * copies + LEAN_MARGIN
    seen: dict[str, float] = {}
    devices: set[int] = set()
    for path in paths:
        try:
            dev = path.stat().st_dev
        except OSError:
            continue
        if dev in devices:
            continue
        devices.add(dev)
        free = free_bytes(path)
        seen[str(path)] = free
        if free < need:
            raise SystemExit(
                f"a lean round of {size / (1 << 30):g} GiB needs about {need / 1e9:.1f} GB free "
                f"on {path} ({copies:g} copies of the weights, {size / 1e9:.1f} GB each, + "
                f"{LEAN_MARGIN / 1e9:.0f} GB) and {free / 1e9:.1f} GB are free: free space, "
                "or set BENCH_DIR to a bigger filesystem (the Docker engine's images stay in its "
                "own data root)")
    return seen


def allocated_bytes(roots: list[Path]) -> int:
    """The space the files under `roots` take (each inode once; what a walk can read), mounts
    under them left out (a container's overlay view would count its layers twice)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    devices = {r.stat().st_dev for r in roots if r.exists()}
    stack = [str(r) for r in roots]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    if st.st_dev in devices:
                        stack.append(entry.path)
                    continue
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


class OwnPeak:
    """The peak of allocated_bytes(roots), sampled every second: the bench's own files and the
    builders' temporary ones, which other work on a shared filesystem does not blur as it does
    the filesystem's used space (the Docker engine's image store is not among them)."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self.start = self.peak = self.end = allocated_bytes(roots)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self.peak = max(self.peak, allocated_bytes(self.roots))

    def __enter__(self) -> OwnPeak:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.end = allocated_bytes(self.roots)
        self.peak = max(self.peak, self.end)


class LeanSteps:
    """The steps of a lean round, each with the filesystem's free space before and after it and
    its used-space peak (sampled every 50 ms) above the round's start, all written into `r` as
    disk_free_before_STEP_bytes, disk_free_after_STEP_bytes and disk_peak_STEP_bytes. The
    filesystem is shared: other work on it shows in these figures too. Beside them,
    disk_own_peak_STEP_bytes: the peak of the files under `own` (the bench's directory, the
    builders' temporary directories) above the round's start, which other work does not blur."""

    def __init__(self, tmp: Path, r: dict[str, float], own: list[Path]) -> None:
        self.tmp = tmp
        self.r = r
        self.own = own
        self.start = self.peak = used_bytes(tmp)
        self.own_start = self.own_peak = allocated_bytes(own)
        r["disk_free_start_bytes"] = free_bytes(tmp)
        self.last: DiskPeak | None = None

    def step(self, name: str, fn: Callable[[], Any]) -> float:
        self.r[f"disk_free_before_{name}_bytes"] = free_bytes(self.tmp)
        with DiskPeak(self.tmp) as disk, OwnPeak(self.own) as own:
            seconds = timed(fn)
        self.r[f"disk_free_after_{name}_bytes"] = free_bytes(self.tmp)
        self.r[f"disk_peak_{name}_bytes"] = disk.peak - self.start
        self.r[f"disk_own_peak_{name}_bytes"] = own.peak - self.own_start
        self.peak = max(self.peak, disk.peak)
        self.own_peak = max(self.own_peak, own.peak)
        self.last = disk
        return seconds


def lean_round(builder: Builder, tmp: Path, shape: str, size: int, rnd: int,
               reg: str, own: list[Path]) -> dict[str, float]:
    seed = os.urandom(16)
    data, model_dir, out = tmp / "registry-data", tmp / "model", tmp / "out"

    def wipe_registry() -> None:
        # the registry serves from this directory; it recreates what it needs on the next push
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(tmp / "cache", ignore_errors=True)

    def gone(*paths: Path) -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)

    def drop(images: list[str], *paths: Path) -> None:
        builder.drop(images)
        gone(*paths)

    def clean(images: list[str]) -> None:
        builder.drop(images)
        wipe_registry()

    wipe_registry()
    gone(out, tmp / "baseline")
    r: dict[str, float] = {}
    d = LeanSteps(tmp, r, own)
    ours = Packager(out, builder)
    base_ref, base_tag = f"{reg}/base:lean{rnd}", "bench-base:cold"
    with cleanup(builder) as refs:
        d.step("model", lambda: make_model(model_dir, shape, size, seed))
        ctx = baseline_context(model_dir, tmp / "baseline")
        refs += [base_tag, base_ref]
        r["baseline_cold"] = d.step("baseline_cold", lambda: builder.baseline(ctx, base_tag))
        d.step("drop_model", lambda: gone(ctx, model_dir))  # the push needs only the image
        r["push_baseline_cold"] = d.step("push_baseline_cold",
                                         lambda: builder.push(base_tag, base_ref))
        r["push_baseline_cold_bytes"] = dir_bytes(data)
        # the pull needs room for the engine's download beside the unpacked layer
        d.step("drop_baseline", lambda: drop([base_ref, base_tag]))
        r["pull_baseline"] = d.step("pull_baseline", lambda: builder.pull(base_ref))
        d.step("clean_baseline", lambda: clean([base_ref]))

        d.step("model_again", lambda: make_model(model_dir, shape, size, seed))
        refs.append("bench-ours:cold")
        r["package_cold"] = d.step("package_cold", lambda: ours(model_dir, "bench-ours:cold"))
        assert d.last is not None
        r["package_cold_extra_disk_bytes"] = d.last.peak - d.last.end
        r["package_cold_kept_disk_bytes"] = d.last.end - d.last.start
        r["package_rss_mib"] = ours.last_kib / 1024
        weights = weights_tag(out)
        refs.append(weights)
        pushed: list[str] = []
        r["push_package_cold"] = d.step("push_package_cold",
                                        lambda: pushed.append(ours.push(f"{reg}/ours")))
        r["push_rss_mib"] = ours.last_kib / 1024
        ours_ref = pushed[0].split("@")[0]
        refs.append(ours_ref)
        r["push_package_cold_bytes"] = dir_bytes(data)
        repo, _, tag = ours_ref.removeprefix(reg + "/").rpartition(":")
        r["largest_layer_bytes"] = max(manifest_layers(reg, repo, tag))
        d.step("drop_package", lambda: drop([ours_ref, "bench-ours:cold", weights], out,
                                            model_dir))
        r["pull_package"] = d.step("pull_package", lambda: builder.pull(ours_ref))
        d.step("clean_package", lambda: clean([ours_ref]))
        r["peak_rss_mib"] = ours.peak_kib / 1024
    r["peak_disk_bytes"] = d.peak - d.start
    r["peak_disk_copies"] = r["peak_disk_bytes"] / size
    r["own_peak_disk_bytes"] = d.own_peak - d.own_start
    return r


def machine(versions: dict[str, str]) -> dict[str, Any]:
    return {"cores": os.cpu_count(), "memory_gib": round(
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30), 1),
        "python": platform.python_version(), "builders": versions}


def write_json(out: Path, machine_doc: dict[str, Any], results: list[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine_doc, "results": results}, indent=2) + "\n")


def _v(m: dict[str, float], key: str, spec: str, scale: float = 1) -> str:
    """m[key] / scale formatted, or "--" where the round did not measure it."""
    return format(m[key] / scale, spec) if key in m else "--"


def _ratio(m: dict[str, float], num: tuple[str, ...], den: tuple[str, ...], spec: str) -> str:
    if not all(k in m for k in (*num, *den)):
        return "--"
    return format(sum(m[k] for k in num) / sum(m[k] for k in den), spec)


def print_summary(results: list[dict[str, Any]], machine_doc: dict[str, Any],
                  rounds: int) -> None:
    versions = machine_doc["builders"]
    print(f"\nmachine: {machine_doc['cores']} cores, {machine_doc['memory_gib']} GiB, "
          f"Docker {versions['docker']}, {versions['buildah']}")
    print(f"medians of {rounds} rounds; ratio = package / baseline cold, measured in the "
          "same round; -- = not measured (lean rounds: no edits)\n")
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
              f"{_v(m, 'baseline_cold', '8.2f')}s {_v(m, 'package_cold', '7.2f')}s "
              f"{_ratio(m, ('package_cold',), ('baseline_cold',), '6.2f'):>6s} "
              f"{_v(m, 'package_config', '7.2f')}s "
              f"{_ratio(m, ('package_config',), ('package_cold',), '6.1%'):>6s} "
              f"{_v(m, 'package_small', '6.2f')}s {_v(m, 'package_nochange', '8.2f')}s "
              + (f"{push / size:10.3%} {bpush / size:10.1%}" if push is not None and bpush
                 else f"{'--':>10s} {'--':>10s}")
              + f" {_v(m, 'peak_rss_mib', '8.1f')}")
        if "baseline_config" in m:
            print(f"{'':33s} baseline after config edit: {m['baseline_config']:.2f}s "
                  f"({m['baseline_config'] / m['baseline_cold']:.0%} of its cold build)")
        if "push_package_cold" in m:
            print(f"{'':33s} cold push {m['push_package_cold']:.2f}s vs "
                  f"{m['push_baseline_cold']:.2f}s "
                  f"({m['push_package_cold'] / m['push_baseline_cold']:.2f}); pull-back "
                  f"{m['pull_package']:.2f}s vs {m['pull_baseline']:.2f}s "
                  f"({m['pull_package'] / m['pull_baseline']:.2f}); build+push "
                  + _ratio(m, ("package_cold", "push_package_cold"),
                           ("baseline_cold", "push_baseline_cold"), ".2f")
                  + f"; largest layer {m['largest_layer_bytes'] / (1 << 20):.0f} MiB")
        print(f"{'':33s} peak extra disk in the cold package "
              f"{m['package_cold_extra_disk_bytes'] / (1 << 20):.0f} MiB (kept: "
              f"{m['package_cold_kept_disk_bytes'] / (1 << 20):.0f} MiB)")
        if res.get("lean"):
            print(f"{'':33s} lean: RSS package {_v(m, 'package_rss_mib', '.1f')} MiB, push "
                  f"{_v(m, 'push_rss_mib', '.1f')} MiB; peak disk used by the round "
                  f"{m['peak_disk_bytes'] / (1 << 30):.2f} GiB "
                  f"({m['peak_disk_copies']:.2f} copies of the weights), per step: "
                  + ", ".join(f"{step} {m[f'disk_peak_{step}_bytes'] / (1 << 30):.2f}"
                              for step in LEAN_STEPS if f"disk_peak_{step}_bytes" in m))
            print(f"{'':33s} lean: own files' peak (bench dir, builders' tmp; not the engine's "
                  f"image store) {_v(m, 'own_peak_disk_bytes', '.2f', 1 << 30)} GiB, per step: "
                  + ", ".join(f"{step} {m[f'disk_own_peak_{step}_bytes'] / (1 << 30):.2f}"
                              for step in LEAN_STEPS if f"disk_own_peak_{step}_bytes" in m))


LEAN_STEPS = ("model", "baseline_cold", "drop_model", "push_baseline_cold", "drop_baseline",
              "pull_baseline",
              "clean_baseline", "model_again", "package_cold", "push_package_cold",
              "drop_package", "pull_package", "clean_package")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-gib", type=float, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", choices=SHAPES,
                        help=f"default: all ({', '.join(SHAPES)}); single-file in lean rounds")
    parser.add_argument("--no-push", action="store_true", help="skip the registry measurements")
    parser.add_argument("--lean", action="store_true",
                        help="every size in lean rounds: cold build, push, pull-back, RSS and disk "
                             "with one image of the weights at a time, no edits (implied from "
                             f"{LEAN_FROM_GIB} GiB)")
    parser.add_argument("--lean-copies", type=float,
                        help="free space a lean round requires, in copies of the weights "
                             f"(+ {LEAN_MARGIN / 1e9:.0f} GB; default by builder: "
                             + ", ".join(f"{k} {v:g}" for k, v in LEAN_COPIES.items()) + ")")
    parser.add_argument("--json", default="out/bench.json")
    parser.add_argument("--builders", nargs="+", choices=("docker", "buildah"),
                        default=["docker", "buildah"] if shutil.which("buildah") else ["docker"])
    args = parser.parse_args()
    lean_sizes = [g for g in args.sizes_gib if args.lean or g >= LEAN_FROM_GIB]
    if lean_sizes and args.no_push:
        parser.error("a lean round measures the pushes: drop --no-push")
    client = docker.from_env(timeout=1800)
    results: list[dict[str, Any]] = []
    buildah_version = subprocess.run(["buildah", "--version"], capture_output=True, text=True,
                                     timeout=60).stdout.strip() if shutil.which("buildah") else ""
    versions = {"docker": client.version().get("Version", "?"),
                "buildah": buildah_version or "not installed"}
    docker_root = Path(client.info().get("DockerRootDir") or "/var/lib/docker")
    bench_dir = Path(os.environ.get("BENCH_DIR") or tempfile.gettempdir())
    def copies(name: str) -> float:
        return float(args.lean_copies or LEAN_COPIES[name])

    if lean_sizes:  # before anything is written: the largest lean size must fit
        check_lean_disk([bench_dir, docker_root], int(max(lean_sizes) * (1 << 30)),
                        max(copies(name) for name in args.builders))
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR"), prefix="bench-") as t, \
            (contextlib.nullcontext(None) if args.no_push else registry(Path(t))) as reg:
        tmp = Path(t)
        builders = [Builder(name, client, tmp) for name in args.builders]
        if lean_sizes:
            # buildah's temporary copies (containers/image's, /var/tmp by default) and the
            # packager's go into the bench's directory, where other work does not write: its
            # own-files figure is then exact; the Docker engine's temporary copies (build
            # context, load, save, pull) are in its data root's tmp, shared with other builds
            (tmp / "tmp").mkdir()
            os.environ["TMPDIR"] = str(tmp / "tmp")
        own_roots = {"docker": [tmp, docker_root / "tmp"], "buildah": [tmp]}
        for size_gib in args.sizes_gib:
            size = int(size_gib * (1 << 30))
            lean = size_gib in lean_sizes
            for shape in args.shapes or (["single-file"] if lean else list(SHAPES)):
                for builder in builders:
                    rounds = []
                    checks = []
                    for rnd in range(args.rounds):
                        if lean:
                            checks.append(check_lean_disk([tmp, docker_root], size,
                                                          copies(builder.name)))
                            rounds.append(lean_round(builder, tmp, shape, size, rnd, str(reg),
                                                     own_roots[builder.name]))
                        else:
                            rounds.append(one_round(client, builder, tmp, shape, size, rnd, reg))
                        print(f"  {builder.name} {size_gib:g} GiB {shape} round {rnd + 1}"
                              f"{' (lean)' if lean else ''}: "
                              + ", ".join(f"{k}={v:.2f}" for k, v in rounds[-1].items()
                                          if not k.endswith("bytes")), flush=True)
                    med = {k: statistics.median(r[k] for r in rounds if k in r)
                           for k in rounds[0]}
                    res: dict[str, Any] = {"builder": builder.name, "size_gib": size_gib,
                                           "shape": shape}
                    if lean:
                        res |= {"lean": True, "skipped": list(LEAN_SKIPPED),
                                "lean_copies_required": copies(builder.name),
                                "free_bytes_checked": checks}
                    results.append(res | {"rounds": rounds, "median": med})
                    # written after every case: a long run stopped early keeps what it measured
                    write_json(Path(args.json), machine(versions), results)
        for builder in builders:
            if builder.name == "buildah":
                builder.remove([])
    machine_doc = machine(versions)
    print_summary(results, machine_doc, args.rounds)
    write_json(Path(args.json), machine_doc, results)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
