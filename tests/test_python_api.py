"""The Python API as a user calls it: the README's "Use from Python" snippet is read out of
README.md and run as written, and a bad option given through the API is refused with the CLI's
InputError before anything is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO
from models import PYTHON_CONFIG, PYTHON_MODEL, write_tree

from packager import cli
from packager.errors import InputError
from packager.executor.package import PackageRequest, package
from packager.executor.phases import Outcome


def _readme_snippet() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Use from Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section shows one Python snippet"
    return blocks[0]


def _model(root: Path) -> Path:
    return write_tree(root / "my-model", {"model.py": PYTHON_MODEL,
                                          "config.pbtxt": PYTHON_CONFIG.format(name="model")})


def test_the_readme_snippet_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _model(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(_readme_snippet(), "README.md", "exec"), namespace)
    outcome = namespace["outcome"]
    assert isinstance(outcome, Outcome)
    assert outcome.ran == ["detect", "repository", "dockerfile"] and outcome.result is None
    assert capsys.readouterr().out.splitlines() == ["['detect', 'repository', 'dockerfile']",
                                                    "python model"]
    assert namespace["dockerfile"] == (tmp_path / "out/context/Dockerfile").read_text()
    assert str(namespace["dockerfile"]).startswith("# syntax=") or "FROM " in str(
        namespace["dockerfile"])
    assert (tmp_path / "out/model_repository/model/config.pbtxt").is_file()


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("platform", "linux", ["--platform", "linux"]),
    ("http_proxy", "not a url", ["--http-proxy", "not a url"]),
    ("labels", ("novalue",), ["--label", "novalue"]),
    ("max_layer_size", "1KiB", ["--max-layer-size", "1KiB"]),
])
def test_a_bad_option_is_refused_as_the_cli_refuses_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object,
        flag: list[str]) -> None:
    model = _model(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(InputError) as refused:
        package(PackageRequest(input=str(model), output=str(out), phase="package",
                               **{field: value}))  # type: ignore[arg-type]
    assert refused.value.exit_code == 2
    assert not out.exists()
    assert cli.main(["package", str(model), "-o", str(out), *flag]) == 2
    assert str(refused.value).splitlines()[0] in capsys.readouterr().err
    assert not out.exists()


def test_verify_refuses_a_bad_user_through_the_api(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from packager.executor.report import Reporter
    from packager.executor.verify import verify

    out = tmp_path / "out"
    with pytest.raises(InputError) as refused:
        verify(out, Reporter.create(quiet=True), user="root; rm")
    assert refused.value.exit_code == 2
    assert cli.main(["verify", "-o", str(out), "--user", "root; rm"]) == 2
    assert str(refused.value).splitlines()[0] in capsys.readouterr().err


@pytest.mark.parametrize(("field", "value"), [("serve_with", "x"), ("pull", "sometimes")])
def test_a_choice_the_cli_enforces_is_refused_through_the_api(tmp_path: Path, field: str,
                                                              value: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError, match="has value"):
        package(PackageRequest(input=str(_model(tmp_path)), output=str(out), phase="dockerfile",
                               **{field: value}))  # type: ignore[arg-type]
    assert not out.exists()
