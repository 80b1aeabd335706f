"""Facts once: a default that must also be spelled outside `packager/` (Tekton YAML, which
cannot import Python) is checked here against the one the packager defines."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import REPO

from packager.backends import BY_KEY
from packager.basechoice import choose_base_image
from packager.imageref import DEFAULT_NAME_TEMPLATE

TEKTON = REPO / "deploy" / "tekton"


def _param_defaults(name: str) -> dict[str, object]:
    found: dict[str, object] = {}
    for path in sorted(TEKTON.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for param in (doc or {}).get("spec", {}).get("params", []) or []:
                if param.get("name") == name and "default" in param:
                    found[str(Path(path).relative_to(REPO))] = param["default"]
    return found


def test_tekton_base_image_default_is_the_packagers() -> None:
    # The CLI's default for a backend the NGC image still ships (onnx): what package uses.
    expected = choose_base_image(BY_KEY["onnx"], None).ref
    found = _param_defaults("baseImage")
    assert found, "no Task or Pipeline declares a baseImage default any more"
    assert set(found.values()) == {expected}, found


def test_tekton_image_name_default_is_the_packagers() -> None:
    found = _param_defaults("imageName")
    assert found
    assert set(found.values()) == {DEFAULT_NAME_TEMPLATE}, found
