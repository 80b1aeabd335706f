"""buildah against the Docker engine on the packager's own build context, side by side in one run.

    python benchmarks/bench_buildah.py MODEL_DIR [--rounds 3] [--json out/bench-buildah.json]

MODEL_DIR is a trained Python-backend model (e.g. trained/python). Two contexts are generated
with `triton-packager dockerfile` on the local CPU base: the model alone (COPY steps only), and
the model with a `requirements.txt` (a builder stage running pip). For each, per round:

- buildah base:  copying the base image from the Docker engine into a fresh buildah storage
                 (`docker-daemon:`), which a cluster step pays once per storage;
- buildah cold:  the build in that fresh storage (no layer cache);
- buildah warm:  the same build again (every step from the layer cache);
- docker cold:   images.docker.build_image with nocache=True;
- docker warm:   the same build again (layer cache).

Also the image sizes as each engine reports them and as archive files. The engines count
differently: the same base image (same ID) reads 415 MB in `buildah images` (rounded, SI) and
392 MB in Docker, so compare each engine's growth over its own base, not the two columns.
Medians over the rounds; nothing is asserted. Results of 2026-11-25: results-buildah-2026-11-25.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main as cli
from packager.executor.images import buildah
from packager.executor.images import docker as engine
from packager.executor.images.buildah import Storage
from packager.executor.report import Reporter

QUIET = Reporter("quiet")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def context(model: Path, work: Path, name: str, requirements: bool) -> Path:
    src = Path(shutil.copytree(model, work / f"model-{name}"))
    extra: list[str] = []
    if requirements:
        (src / "requirements.txt").write_text("mpmath==1.3.0\n")
        extra = ["--pip-index-url", "https://pypi.org/simple",
                 "--ca-bundle", "/etc/ssl/certs/ca-certificates.crt"]
    if cli(["dockerfile", str(src), "-o", str(work / f"out-{name}"), "-q", "--base-image",
            LOCAL_CPU_IMAGE, *extra]) != 0:
        sys.exit(f"dockerfile phase failed for {name}")
    return work / f"out-{name}" / "context"


def buildah_size(tag: str, storage: Storage) -> float:
    """Bytes, from `buildah images`' human-readable size ("415 MB", SI units)."""
    out = subprocess.run(["buildah", *storage.flags(), "images", "--json", tag],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    number, unit = str(json.loads(out)[0]["size"]).split()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]


def package(model: Path, out: Path, builder: str, env: dict[str, str], *extra: str) -> float:
    """`triton-packager package` end to end in a fresh process, as a user (or a Task) runs it."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "packager", "package", str(model), "-o", str(out),
                    "-q", "--builder", builder, "--base-image", LOCAL_CPU_IMAGE,
                    "--tag", f"bench-package-{builder}:1", *extra],
                   check=True, capture_output=True, timeout=3600, env={**os.environ, **env})
    return time.perf_counter() - start


def one_round(ctx: Path, name: str, work: Path, buildargs: dict[str, str]) -> dict[str, float]:
    storage = Storage("overlay", work / f"bh-{name}" / "root", work / f"bh-{name}" / "run")
    tag = f"localhost/bench-buildah/{name}:1"
    row: dict[str, float] = {}
    try:
        row["buildah base"], _ = timed(lambda: buildah.ensure_image(
            f"docker-daemon:{LOCAL_CPU_IMAGE}", storage=storage))
        row["buildah cold"], _ = timed(lambda: buildah.build_image(
            ctx, tag, QUIET, buildargs, storage=storage))
        row["buildah warm"], _ = timed(lambda: buildah.build_image(
            ctx, tag, QUIET, buildargs, storage=storage))
        row["buildah size MB"] = buildah_size(tag, storage) / 1e6
        oci = work / f"{name}.oci.tar"
        row["buildah oci-archive"], _ = timed(lambda: buildah.export_image(
            tag, f"oci-archive:{oci}", storage=storage))
        row["oci-archive MB"] = oci.stat().st_size / 1e6
        oci.unlink()
        # the whole `package` command, in the same storage (the base already in it): cold
        # (--no-cache, as for docker), then again with --force (every phase redone, the layer
        # cache warm)
        model = ctx.parent.parent / f"model-{'python' if name == 'python' else 'req'}"
        env = {buildah.ENV_DRIVER: "overlay", buildah.ENV_ROOT: str(storage.root),
               buildah.ENV_RUNROOT: str(storage.runroot)}
        extra = [] if not buildargs else ["--pip-index-url", buildargs["PIP_INDEX_URL"],
                                          "--ca-bundle", "/etc/ssl/certs/ca-certificates.crt"]
        row["package buildah cold"] = package(model, work / f"pkg-bh-{name}", "buildah", env,
                                              "--no-cache", *extra)
        row["package buildah again"] = package(model, work / f"pkg-bh-{name}", "buildah", env,
                                               "--force", *extra)
        row["package docker cold"] = package(model, work / f"pkg-d-{name}", "docker", {},
                                             "--no-cache", *extra)
        row["package docker again"] = package(model, work / f"pkg-d-{name}", "docker", {},
                                              "--force", *extra)
        engine.client().images.remove("bench-package-docker:1", force=True)
        shutil.rmtree(work / f"pkg-bh-{name}", ignore_errors=True)
        shutil.rmtree(work / f"pkg-d-{name}", ignore_errors=True)
    finally:
        subprocess.run(["buildah", *storage.flags(), "rmi", "--all", "--force"],
                       capture_output=True, timeout=600)
        shutil.rmtree(work / f"bh-{name}", ignore_errors=True)
    dtag = f"bench-docker/{name}:1"
    row["docker cold"], image = timed(lambda: engine.build_image(
        ctx, dtag, QUIET, buildargs, nocache=True))
    row["docker warm"], _ = timed(lambda: engine.build_image(ctx, dtag, QUIET, buildargs))
    row["docker size MB"] = engine.client().images.get(image).attrs["Size"] / 1e6
    engine.client().images.remove(dtag, force=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-buildah-", dir="/var/tmp"))
    results: dict[str, dict[str, float]] = {}
    try:
        cases = {"python": (context(args.model, work, "python", False), {}),
                 "python+requirements": (context(args.model, work, "req", True),
                                         {"PIP_INDEX_URL": "https://pypi.org/simple"})}
        for name, (ctx, buildargs) in cases.items():
            rounds = [one_round(ctx, name.replace("+", "-"), work, buildargs)
                      for _ in range(args.rounds)]
            results[name] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    keys = list(next(iter(results.values())))
    print(f"{'median of ' + str(args.rounds):<22}" + "".join(f"{n:>22}" for n in results))
    for k in keys:
        unit = "" if "MB" in k else " s"
        print(f"{k:<22}" + "".join(f"{results[n][k]:>20.2f}{unit:2}" for n in results))
    doc = {"results": results, "rounds": args.rounds, "cpus": os.cpu_count(),
           "machine": platform.platform(),
           "buildah": subprocess.run(["buildah", "--version"], capture_output=True,
                                     text=True, timeout=30).stdout.strip(),
           "docker": engine.client().version().get("Version")}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
