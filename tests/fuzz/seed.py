"""Write the seed corpus (valid files of each kind, from tests/hostile.py) into
tests/fuzz/corpus/<target>/seed-*. Run once; the fuzzers grow the corpus from there."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hostile import (  # noqa: E402
    TORCH_CODE,
    onnx_valid,
    ov_valid,
    savedmodel_valid,
    torch_pickle,
    torch_zip,
)


def main() -> None:
    seeds = {
        "onnx": [onnx_valid()],
        "savedmodel": [savedmodel_valid()],
        "openvino": [ov_valid(), ov_valid(shape="1..8,4", dims=[])],
        "pickle": [torch_pickle(), torch_pickle(strings=3)],
        "torchscript": [TORCH_CODE.encode()],
        "zip": [torch_zip(), torch_zip(compression=8)],
    }
    for target, items in seeds.items():
        d = HERE / "corpus" / target
        d.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(items):
            (d / f"seed-{i}").write_bytes(data)


if __name__ == "__main__":
    main()
