"""Reduce Tekton's published CRD schemas to their structure: the test data of test_tekton_resources.

    python tests/data/tekton/reduce.py --repo PATH [--rev REV]

PATH is a clone of https://github.com/tektoncd/pipeline (bare or not); REV defaults to HEAD. For each
of Task, Pipeline and PipelineRun the `openAPIV3Schema` of the CRD's `v1` version is read from
`config/300-crds/`, stripped of everything but its structure (KEEP below: no descriptions, defaults,
formats or list-type hints) and written beside this file as `<kind>.v1.json`, with the repository,
path and resolved commit in its `source` field. Re-running on the same commit rewrites the same bytes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPOSITORY = "https://github.com/tektoncd/pipeline"
VERSION = "v1"
CRDS = {
    "task": "config/300-crds/300-task.yaml",
    "pipeline": "config/300-crds/300-pipeline.yaml",
    "pipelinerun": "config/300-crds/300-pipelinerun.yaml",
}
# The keywords that decide whether a document is valid. `pattern` stays (resource quantities);
# `x-kubernetes-int-or-string` stays with the `anyOf` it always comes with.
KEEP = frozenset({
    "type", "properties", "items", "required", "enum", "additionalProperties", "pattern",
    "anyOf", "oneOf", "allOf", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
})
# Keywords whose value is one schema, or a list of schemas.
_ONE_SCHEMA = frozenset({"items", "additionalProperties"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf"})


def reduce_schema(node: dict[str, Any]) -> dict[str, Any]:
    """Return `node` with only the KEEP keywords, recursively (property names are kept as they are)."""
    out: dict[str, Any] = {}
    for key in sorted(node):
        if key not in KEEP:
            continue
        value = node[key]
        if key == "properties":
            out[key] = {name: reduce_schema(sub) for name, sub in sorted(value.items())}
        elif key in _ONE_SCHEMA and isinstance(value, dict):
            out[key] = reduce_schema(value)
        elif key in _SCHEMA_LISTS:
            out[key] = [reduce_schema(sub) for sub in value]
        else:
            out[key] = value
    return out


def version_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The `openAPIV3Schema` of one served version of a CustomResourceDefinition."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    msg = f"{crd['metadata']['name']}: no version {version!r}"
    raise LookupError(msg)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


def render(kind: str, repo: Path, commit: str) -> str:
    """The JSON text stored for one kind: its source and its reduced v1 schema."""
    path = CRDS[kind]
    crd = yaml.safe_load(_git(repo, "show", f"{commit}:{path}"))
    doc = {
        "source": {"repository": REPOSITORY, "commit": commit, "path": path, "version": VERSION,
                   "reduced_by": "tests/data/tekton/reduce.py", "kept": sorted(KEEP)},
        "schema": reduce_schema(version_schema(crd, VERSION)),
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="a clone of tektoncd/pipeline")
    parser.add_argument("--rev", default="HEAD", help="commit, tag or branch (default: HEAD)")
    parser.add_argument("--out", type=Path, default=HERE, help="where the JSON files go")
    args = parser.parse_args(argv)
    commit = _git(args.repo, "rev-parse", "--verify", f"{args.rev}^{{commit}}").strip()
    for kind in CRDS:
        target = args.out / f"{kind}.{VERSION}.json"
        target.write_text(render(kind, args.repo, commit), encoding="utf-8")
        print(f"{target} <- {REPOSITORY}@{commit} {CRDS[kind]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
