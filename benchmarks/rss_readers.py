"""Peak memory of the model readers, per model kind, for large valid files and hostile ones:
each case runs `triton-packager config` in a fresh interpreter and reports its peak RSS
(VmHWM, reset at start, MiB) at start (packager and protobuf imported), at the end, and the
difference. A phase to run by hand, not a test
(tests/test_readers_hostile.py asserts a bound on a smaller set):

    python benchmarks/rss_readers.py [--only NAME ...] [--packager-root DIR]

--packager-root runs another checkout's packager (e.g. the commit before issue 21's fix).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from hostile import (  # noqa: E402
    TORCH_CODE,
    onnx_bytes,
    onnx_initializer,
    ov_xml,
    peak_rss,
    pytorch_config,
    savedmodel_entries,
    torch_pickle,
    torch_zip,
)
from models import _field, write_tree  # noqa: E402

MiB = 1 << 20
Files = dict[str, "bytes | str | None"]

def _onnx_weights(size: int) -> Files:
    # one initializer holding `size` bytes of raw_data (TensorProto.raw_data = 9), inline
    init = _field(8, b"W") + _field(1, 1) + _field(2, size // 4) + _field(9, b"\0" * size)
    return {"model.onnx": onnx_bytes([(b"A", ["b", 4])], [(b"O", ["b", 4])],
                                     (init,))}


def _ov_layers(n: int) -> Files:
    # n Parameters (MAX_TENSORS is 10 000): megabytes of XML, as a big IR
    return {"model.xml": ov_xml([(f"I{i}", "?,4", None) for i in range(n)]), "model.bin": b""}


def _zip_entries(n: int) -> Files:
    members = {f"archive/data/{i}": b"x" for i in range(n)}
    members["archive/data.pkl"] = torch_pickle()
    members["archive/code/__torch__.py"] = TORCH_CODE.encode()
    return {"model.pt": torch_zip(members), "config.pbtxt": pytorch_config()}


CASES: dict[str, tuple[str, Callable[[], Files]]] = {
    # valid, large
    "onnx-valid-256MiB-weights": ("valid", lambda: _onnx_weights(256 * MiB)),
    "openvino-valid-9k-parameters": ("valid", lambda: _ov_layers(9_000)),
    "savedmodel-valid-256MiB-graph": ("valid", lambda: {
        "model.savedmodel/saved_model.pb": savedmodel_entries(
            [(b"x", (-1, 4))], [(b"y", (-1, 4))], graph_def=b"\1" * (256 * MiB))}),
    "torchscript-valid-256MiB-tensor": ("valid", lambda: {
        "model.pt": torch_zip({"archive/data.pkl": torch_pickle(),
                               "archive/code/__torch__.py": TORCH_CODE.encode(),
                               "archive/data/0": b"\0" * (256 * MiB)}),
        "config.pbtxt": pytorch_config()}),
    # hostile
    "onnx-unknown-field-256MiB": ("hostile", lambda: {"model.onnx": onnx_bytes(
        [(b"A", ["b", 4])], [(b"O", ["b", 4])], extra_model=_field(99, b"\1" * (256 * MiB)))}),
    "onnx-1M-initializers": ("hostile", lambda: {"model.onnx": onnx_bytes(
        [(b"A", ["b", 4])], [(b"O", ["b", 4])],
        tuple(onnx_initializer(b"w%d" % i) for i in range(1_000_000)))}),
    "onnx-100k-dims-each-input": ("hostile", lambda: {"model.onnx": onnx_bytes(
        [(b"A", [1] * 100_000)], [(b"O", [1])])}),
    "openvino-1M-elements": ("hostile", lambda: {
        "model.xml": b'<?xml version="1.0"?><net><layers>' + b"<x/>" * 1_000_000
        + b"</layers></net>", "model.bin": b""}),
    "savedmodel-1.5GiB-graph": ("hostile", lambda: {
        "model.savedmodel/saved_model.pb": savedmodel_entries(
            [(b"x", (-1, 4))], [(b"y", (-1, 4))], graph_def=b"\1" * (1536 * MiB))}),
    "torchscript-pickle-3M-strings": ("hostile", lambda: {
        "model.pt": torch_zip({"archive/data.pkl": torch_pickle(strings=3_000_000),
                               "archive/code/__torch__.py": TORCH_CODE.encode()}),
        "config.pbtxt": pytorch_config()}),
    "torchscript-150k-entries": ("hostile", lambda: _zip_entries(150_000)),
    "torchscript-code-8MiB-statements": ("hostile", lambda: {
        "model.pt": torch_zip({"archive/data.pkl": torch_pickle(),
                               "archive/code/__torch__.py": (TORCH_CODE + "    x = 1\n"
                                                             * 800_000).encode()}),
        "config.pbtxt": pytorch_config()}),
    "torchscript-zip-bomb-1GiB": ("hostile", lambda: {
        "model.pt": torch_zip({"archive/data.pkl": torch_pickle(),
                               "archive/data/0": b"\0" * (1024 * MiB)}, zipfile.ZIP_DEFLATED),
        "config.pbtxt": pytorch_config()}),
}


def measure(files: Files, packager_root: Path) -> tuple[int, int, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_tree(Path(tmp) / "m", files)
        del files
        code, start, peak, secs = peak_rss(root, packager_root)
    return code, start >> 10, peak >> 10, secs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--packager-root", type=Path, default=TESTS.parent)
    args = ap.parse_args()
    print(f"{'case':36} {'kind':8} {'exit':>4} {'start':>8} {'peak':>8} {'over':>8} {'time':>7}")
    for name, (kind, build) in CASES.items():
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        files = build()
        code, start, peak, secs = measure(files, args.packager_root)
        del files
        print(f"{name:36} {kind:8} {code:4d} {start:4d} MiB {peak:4d} MiB {peak - start:4d} MiB "
              f"{secs:6.2f}s (built in {time.perf_counter() - t:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
