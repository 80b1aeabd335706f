"""The README's performance tables from a bench_package.py JSON file.

    python benchmarks/table.py benchmarks/results-2026-12-02.json

A figure the run did not measure (a lean round's edits, a run with --no-push) is "--".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SHAPES = {"single-file": "one file", "onnx-external-50": "ONNX + 50 files"}
NA = "--"


def v(m: dict[str, float], key: str, spec: str, unit: str = "", scale: float = 1) -> str:
    """m[key] / scale with its unit, or "--" where it was not measured."""
    return f"{m[key] / scale:{spec}}{unit}" if key in m else NA


def ratio(m: dict[str, float], num: tuple[str, ...], den: tuple[str, ...], spec: str) -> str:
    if not all(k in m for k in (*num, *den)) or not sum(m[k] for k in den):
        return NA
    return f"{sum(m[k] for k in num) / sum(m[k] for k in den):{spec}}"


def model(res: dict[str, Any]) -> str:
    return (f"{res['size_gib']:g} GiB, {SHAPES.get(res['shape'], res['shape'])}"
            + (" (lean)" if res.get("lean") else ""))


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
        print(f"| {res.get('builder', 'docker')} | {model(res)} | "
              f"{v(m, 'baseline_cold', '.1f', ' s')} | {v(m, 'package_cold', '.1f', ' s')} | "
              f"{ratio(m, ('package_cold',), ('baseline_cold',), '.2f')} | "
              f"{v(m, 'package_config', '.2f', ' s')} | "
              f"{ratio(m, ('package_config',), ('package_cold',), '.1%')} | "
              f"{v(m, 'package_small', '.2f', ' s')} | {v(m, 'package_nochange', '.2f', ' s')} | "
              + (f"{push / size:.3%} of the model | {base_push / size:.0%} | "
                 if push is not None and base_push else f"{NA} | {NA} | ")
              + f"{v(m, 'peak_rss_mib', '.0f', ' MiB')} |")
    pushed = [r for r in doc["results"] if "push_package_cold" in r["median"]]
    if pushed:
        print("\n| builder | model | hand-written push (builder's own) | `push` | ratio | "
              "build + push ratio | hand-written pull-back | pull-back of ours | ratio | "
              "largest layer | peak extra disk, cold package |")
        print("|---" * 11 + "|")
        for res in pushed:
            m = res["median"]
            print(f"| {res['builder']} | {model(res)} | {v(m, 'push_baseline_cold', '.1f', ' s')} | "
                  f"{v(m, 'push_package_cold', '.1f', ' s')} | "
                  f"{ratio(m, ('push_package_cold',), ('push_baseline_cold',), '.2f')} | "
                  + ratio(m, ("package_cold", "push_package_cold"),
                          ("baseline_cold", "push_baseline_cold"), ".2f")
                  + f" | {v(m, 'pull_baseline', '.1f', ' s')} | {v(m, 'pull_package', '.1f', ' s')} | "
                  f"{ratio(m, ('pull_package',), ('pull_baseline',), '.2f')} | "
                  f"{v(m, 'largest_layer_bytes', '.0f', ' MiB', 1 << 20)} | "
                  f"{v(m, 'package_cold_extra_disk_bytes', '.0f', ' MiB', 1 << 20)} |")
    lean = [r for r in doc["results"] if r.get("lean")]
    if lean:
        # a lean round: one image of the weights at a time; disk used above the round's start
        print("\n| builder | model | `package` peak RSS | `push` peak RSS | peak disk used by the "
              "round | in copies of the weights | own files' peak | free at the start | "
              "hand-written build | hand-written push | hand-written pull | `package` | `push` | "
              "pull of ours |")
        print("|---" * 14 + "|")
        for res in lean:
            m = res["median"]
            steps = " | ".join(v(m, f"disk_peak_{step}_bytes", ".1f", "", 1 << 30) + " / "
                               + v(m, f"disk_own_peak_{step}_bytes", ".1f", " GiB", 1 << 30)
                               for step in ("baseline_cold", "push_baseline_cold",
                                            "pull_baseline", "package_cold",
                                            "push_package_cold", "pull_package"))
            print(f"| {res['builder']} | {model(res)} | {v(m, 'package_rss_mib', '.0f', ' MiB')} | "
                  f"{v(m, 'push_rss_mib', '.0f', ' MiB')} | "
                  f"{v(m, 'peak_disk_bytes', '.1f', ' GiB', 1 << 30)} | "
                  f"{v(m, 'peak_disk_copies', '.2f')} | "
                  f"{v(m, 'own_peak_disk_bytes', '.1f', ' GiB', 1 << 30)} | "
                  f"{v(m, 'disk_free_start_bytes', '.1f', ' GB', 1e9)} | {steps} |")
        print("\n(lean: used space above the round's start, the filesystem's (other work on it "
              "included) / the bench's own files and the builders' temporary ones (not the Docker "
              "engine's image store); the last six columns are each step's peaks; not measured: "
              + ", ".join(lean[0].get("skipped", [])) + ")")
    machine = doc["machine"]
    print(f"\nmachine: {machine['cores']} cores, {machine['memory_gib']} GiB, "
          f"Docker {machine['builders']['docker']}, {machine['builders']['buildah']}")


if __name__ == "__main__":
    main()
