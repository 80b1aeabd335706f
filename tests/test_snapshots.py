"""Generated Dockerfile, tree listing, detection and result documents, pinned per backend and
scenario. Update only with `nox -s snapshots` after reviewing the diff."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from models import backend_files, manifest, write_tree

from packager.analysis import (
    Options,
    analyze,
    dockerfile_for,
    image_name_for,
)
from packager.backends import BACKENDS, BY_KEY
from packager.executor.reader import read_input
from packager.records import detection_document
from packager.result import ModelEntry, ResultDocument

FIXED_UUID = "0f0e0d0c-0b0a-4908-8706-050403020100"


def _scenarios() -> list[tuple[str, str]]:
    out = []
    for b in BACKENDS:
        out.append((b.key, "manifest-and-config"))
        out.append((b.key, "no-manifest"))
        out.append((b.key, "extra-files"))
        if not b.config_required:
            out.append((b.key, "no-config"))
    out.append(("python", "conda"))
    out.append(("python", "requirements"))
    out.append(("python", "autocomplete-no-config"))
    return out


def _make(tmp: Path, key: str, scenario: str) -> Path:
    name = f"{key.replace('_', '-')}-model"
    with_config = scenario != "no-config" and scenario != "autocomplete-no-config"
    files = backend_files(key, name if scenario != "no-manifest" else "model", with_config)
    if scenario != "no-manifest":
        files["odahuflow.model.yaml"] = manifest(name, 3)
    if scenario == "extra-files":
        files["labels.txt"] = "cat\ndog\n"
        files["tokenizer/vocab.txt"] = "a\nb\n"
        files["embeddings.bin"] = b"\0" * (1 << 20)  # large: goes to the weights layer
    if scenario == "conda":
        files["conda.yaml"] = (
            "name: env\nchannels: [conda-forge]\ndependencies:\n  - numpy<2\n  - pip:\n    - mpmath\n"
        )
    if scenario == "requirements":
        files["requirements.txt"] = "numpy<2\n"
    if scenario == "autocomplete-no-config":
        files["model.py"] = str(files["model.py"]) + (
            "\n    @staticmethod\n    def auto_complete_config(config):\n        return config\n"
        )
    return write_tree(tmp / "in", files)


@pytest.mark.parametrize(("key", "scenario"), _scenarios(), ids=lambda v: v)
def test_generated_artifacts(tmp_path: Path, key: str, scenario: str, snapshot) -> None:
    tree = read_input(_make(tmp_path, key, scenario))
    analysis = analyze(tree)
    assert analysis.backend is BY_KEY[key]
    options = Options()
    spec = dockerfile_for(analysis, options)
    image = image_name_for(analysis, options, FIXED_UUID)
    result = ResultDocument(
        image=str(image),
        models=(ModelEntry(analysis.meta.name, analysis.versions, key),),
        base_image=spec.base.ref,
        dockerfile_sha256=spec.sha256,
    )
    assert spec.text == snapshot(name="Dockerfile")
    assert analysis.plan.listing() == snapshot(name="tree")
    assert analysis.plan.config_text == snapshot(name="config.pbtxt")
    assert detection_document(analysis) == snapshot(name="detect.json")
    assert result.to_json() == snapshot(name="result.json")
    for rel, text in spec.context_texts:
        if rel.startswith(("weights/", ".dockerignore")):
            continue  # the same for every model: pinned once, below
        assert text == snapshot(name=rel)


def test_weights_image_context(tmp_path: Path, snapshot) -> None:
    """Models with weights get a content-addressed weights image that the model image starts
    FROM; its context holds only the weights, the model's context never uploads them."""
    analysis = analyze(read_input(_make(tmp_path, "onnx", "manifest-and-config")))
    spec = dockerfile_for(analysis, Options())
    texts = dict(spec.context_texts)
    assert spec.weights_tag is not None
    assert f"FROM {spec.weights_tag}\n" in spec.text
    assert texts[".dockerignore"] == "weights/\n"
    assert texts["weights/Dockerfile"] == snapshot(name="weights/Dockerfile")
    assert texts["weights/.dockerignore"] == "Dockerfile\n.dockerignore\n"
    # Content-addressed: other weight bytes, another tag; a config change, the same tag.
    other = tmp_path / "other"
    shutil.copytree(tmp_path / "in", other)
    (other / "config.pbtxt").write_text((other / "config.pbtxt").read_text() + "\n# edited\n")
    assert dockerfile_for(analyze(read_input(other)), Options()).weights_tag == spec.weights_tag
    import onnx

    graph = onnx.load_from_string((other / "model.onnx").read_bytes())
    graph.doc_string = "retrained"  # other bytes, same signature
    (other / "model.onnx").write_bytes(graph.SerializeToString())
    assert dockerfile_for(analyze(read_input(other)), Options()).weights_tag != spec.weights_tag
