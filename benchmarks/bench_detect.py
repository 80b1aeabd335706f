"""How detection scales: a Triton model repository of N models read and analysed, and N model
directories given at once to `triton-packager detect`, timed for 2 000 and 10 000 models.
Linear work gives a 10k/2k ratio near 5; the quadratic detection of issue 21 gave over 12.
A phase to run by hand, not a test:

    python benchmarks/bench_detect.py [--small 2000] [--large 10000] [--dirs-small 1000]
                                      [--dirs-large 4000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from models import GENERIC_CONFIG, placeholder

from packager.analysis import analyze_package
from packager.cli import main as cli
from packager.configgen import ConfigOptions
from packager.executor.reader import read_input


def _repository(root: Path, n: int) -> Path:
    """n ONNX-free models (TensorRT plans with a given config: nothing to parse)."""
    for i in range(n):
        model = root / f"m{i:05d}"
        (model / "1").mkdir(parents=True)
        (model / "1" / "model.plan").write_bytes(placeholder(f"m{i}"))
        (model / "config.pbtxt").write_text(GENERIC_CONFIG.format(name=f"m{i:05d}", platform="tensorrt_plan"))
    return root


def timed(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = _repository(Path(tmp) / "repo", n)
        t0 = time.perf_counter()
        tree = read_input(root)
        t1 = time.perf_counter()
        package = analyze_package([tree], ConfigOptions())
        t2 = time.perf_counter()
        assert len(package.models) == n, len(package.models)
        return t1 - t0, t2 - t1


def timed_dirs(n: int) -> float:
    """`detect` on n model directories (a Python model, its config and a manifest naming it)
    given at once."""
    from models import PYTHON_CONFIG, PYTHON_MODEL, manifest

    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for i in range(n):
            d = Path(tmp) / "in" / f"m{i:05d}"
            d.mkdir(parents=True)
            (d / "model.py").write_text(PYTHON_MODEL)
            (d / "config.pbtxt").write_text(PYTHON_CONFIG.format(name=f"m{i:05d}"))
            (d / "odahuflow.model.yaml").write_text(manifest(f"m{i:05d}", 1))
            dirs.append(str(d))
        t0 = time.perf_counter()
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli(["detect", *dirs, "-o", str(Path(tmp) / "out")])
        assert code == 0, err.getvalue()[-2000:]
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=10000)
    ap.add_argument("--dirs-small", type=int, default=1000)
    ap.add_argument("--dirs-large", type=int, default=4000)
    args = ap.parse_args()
    rows = []
    for n in (args.small, args.large):
        read, analyse = timed(n)
        rows.append((n, read, analyse))
        print(f"{n:6d} models: read {read:6.2f} s, analyse {analyse:6.2f} s, "
              f"total {read + analyse:6.2f} s", flush=True)
    (n1, r1, a1), (n2, r2, a2) = rows
    print(f"ratio {n2}/{n1} models: {(r2 + a2) / (r1 + a1):.2f} (linear: {n2 / n1:.2f})")
    times = []
    for n in (args.dirs_small, args.dirs_large):
        times.append(timed_dirs(n))
        print(f"{n:6d} model directories: detect {times[-1]:6.2f} s", flush=True)
    print(f"ratio {args.dirs_large}/{args.dirs_small} model directories: "
          f"{times[1] / times[0]:.2f} (linear: {args.dirs_large / args.dirs_small:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
