"""The README's performance tables from a bench_package.py JSON file.

    python benchmarks/table.py benchmarks/results-2026-12-02.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SHAPES = {"single-file": "one file", "onnx-external-50": "ONNX + 50 files"}


def main() -> None:
    doc = json.loads(Path(sys.argv[1]).read_text())
    print("| builder | model | hand-written cold | `package` cold | ratio | after a config.pbtxt "
          "edit | of cold | after a small-file edit | nothing changed | push after config edit "
          "| hand-written push after config edit | packager peak RSS |")
    print("|---" * 12 + "|")
    for res in doc["results"]:
        m = res["median"]
        size = res["size_gib"] * (1 << 30)
        push = m.get("push_ours_config_bytes")
        base_push = m.get("push_baseline_config_bytes")
        print(f"| {res.get('builder', 'docker')} | {res['size_gib']:g} GiB, "
              f"{SHAPES.get(res['shape'], res['shape'])} | {m['baseline_cold']:.1f} s | "
              f"{m['package_cold']:.1f} s | {m['package_cold'] / m['baseline_cold']:.2f} | "
              f"{m['package_config']:.2f} s | {m['package_config'] / m['package_cold']:.1%} | "
              f"{m['package_small']:.2f} s | {m['package_nochange']:.2f} s | "
              + (f"{push / size:.3%} of the model | {base_push / size:.0%} | "
                 if push is not None and base_push else "- | - | ")
              + f"{m['peak_rss_mib']:.0f} MiB |")
    pushed = [r for r in doc["results"] if "push_package_cold" in r["median"]]
    if pushed:
        print("\n| builder | model | hand-written push (builder's own) | `push` | ratio | "
              "build + push ratio | hand-written pull-back | pull-back of ours | ratio | "
              "largest layer | peak extra disk, cold package |")
        print("|---" * 11 + "|")
        for res in pushed:
            m = res["median"]
            both = ((m["package_cold"] + m["push_package_cold"])
                    / (m["baseline_cold"] + m["push_baseline_cold"]))
            print(f"| {res['builder']} | {res['size_gib']:g} GiB, "
                  f"{SHAPES.get(res['shape'], res['shape'])} | {m['push_baseline_cold']:.1f} s | "
                  f"{m['push_package_cold']:.1f} s | "
                  f"{m['push_package_cold'] / m['push_baseline_cold']:.2f} | {both:.2f} | "
                  f"{m['pull_baseline']:.1f} s | {m['pull_package']:.1f} s | "
                  f"{m['pull_package'] / m['pull_baseline']:.2f} | "
                  f"{m['largest_layer_bytes'] / (1 << 20):.0f} MiB | "
                  f"{m['package_cold_extra_disk_bytes'] / (1 << 20):.0f} MiB |")
    machine = doc["machine"]
    print(f"\nmachine: {machine['cores']} cores, {machine['memory_gib']} GiB, "
          f"Docker {machine['builders']['docker']}, {machine['builders']['buildah']}")


if __name__ == "__main__":
    main()
