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


# --- the other commands' requests: each refuses what the CLI refuses, with the same message ------


def _zip(path: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/model.py", PYTHON_MODEL)
    return path


def test_setup_through_the_api_unpacks_as_the_cli_does(tmp_path: Path) -> None:
    from packager.executor.runs.artifact import SetupRequest, setup

    out = tmp_path / "unpacked"
    assert setup(SetupRequest(artifact=str(_zip(tmp_path / "a.zip")), output=out)) == out
    assert (out / "model/model.py").read_text() == PYTHON_MODEL


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("max_size", -1, ["--max-size", "-1"]),
    ("max_ratio", -1, ["--max-ratio", "-1"]),
    ("output", "", ["-o", ""]),
])
def test_setup_refuses_through_the_api_as_the_cli_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object,
        flag: list[str]) -> None:
    from packager.executor.runs.artifact import SetupRequest, setup

    archive, out = str(_zip(tmp_path / "a.zip")), tmp_path / "out"
    fields: dict[str, object] = {"output": out, field: value}
    with pytest.raises(InputError) as refused:
        setup(SetupRequest(artifact=archive, **fields))  # type: ignore[arg-type]
    assert refused.value.exit_code == 2 and not out.exists()
    assert cli.main(["setup", archive, "-o", str(out), *flag]) == 2
    assert str(refused.value).splitlines()[0] in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), 1e12])
def test_setup_refuses_a_timeout_the_cli_cannot_parse(tmp_path: Path, timeout: float) -> None:
    from packager.executor.runs.artifact import SetupRequest, setup

    out = tmp_path / "out"
    with pytest.raises(InputError, match="--timeout"):
        setup(SetupRequest(artifact=str(_zip(tmp_path / "a.zip")), output=out, timeout=timeout))
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--authfile", "--ca-bundle", "--image-url-file",
                                  "--image-digest-file"])
def test_push_refuses_an_empty_file_option_through_the_api(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    from packager.executor.push import PushRequest, push
    from packager.executor.report import Reporter

    out = tmp_path / "out"  # no result.json: the empty option is refused before it is read
    field = flag[2:].replace("-", "_")
    with pytest.raises(InputError, match=f"{flag} is empty") as refused:
        push(PushRequest(out=out, **{field: ""}), Reporter.create(quiet=True))  # type: ignore[arg-type]
    assert cli.main(["push", "-o", str(out), flag, ""]) == 2
    assert str(refused.value).splitlines()[0] in capsys.readouterr().err


def test_push_refuses_an_unknown_pusher_through_the_api(tmp_path: Path) -> None:
    from packager.executor.push import PushRequest, push
    from packager.executor.report import Reporter

    with pytest.raises(InputError, match="--pusher 'ftp'"):
        push(PushRequest(out=tmp_path / "out", pusher="ftp"), Reporter.create(quiet=True))


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("mirror", "ftp://deb.example.com/debian", ["--mirror", "ftp://deb.example.com/debian"]),
    ("mirror", "", ["--mirror", ""]),
    ("output", "", ["--output", ""]),
    ("output", "tar:/tmp/x.tar", ["--output", "tar:/tmp/x.tar"]),
])
def test_base_image_refuses_through_the_api_as_the_cli_does(
        capsys: pytest.CaptureFixture[str], field: str, value: str, flag: list[str]) -> None:
    from packager.executor.cpu_base import BaseImageRequest, ensure_base_image

    # Refused before any engine is asked: these run on a machine with none.
    with pytest.raises(InputError) as refused:
        ensure_base_image(BaseImageRequest(**{field: value}))  # type: ignore[arg-type]
    assert refused.value.exit_code == 2
    assert cli.main(["base-image", *flag]) == 2
    assert str(refused.value).splitlines()[0] in capsys.readouterr().err


def test_base_image_refuses_an_unknown_builder_through_the_api() -> None:
    from packager.executor.cpu_base import BaseImageRequest, ensure_base_image

    with pytest.raises(InputError, match="--builder 'podman' is not a builder"):
        ensure_base_image(BaseImageRequest(builder="podman"))


@pytest.mark.parametrize(("field", "value"), [("rtol", -1.0), ("atol", float("nan")),
                                              ("rtol", 1e7), ("output", "")])
def test_verify_request_refuses_what_the_cli_refuses(field: str, value: object) -> None:
    from packager.executor.verify import VerifyRequest, verify

    with pytest.raises(InputError, match=f"--{field}"):
        verify(VerifyRequest(**{field: value}))  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("params", ("novalue",), ["-P", "novalue"]),
    ("params", (("bad key", "1"),), ["-P", "bad key=1"]),
    ("params", ("a=1", ("a", "2")), ["-P", "a=1", "-P", "a=2"]),
    ("version", "0", ["--version", "0"]),
    ("target", "", ["--target", ""]),
])
def test_train_refuses_through_the_api_as_the_cli_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object,
        flag: list[str]) -> None:
    from packager.executor.report import Reporter
    from packager.executor.runs.trainer import TrainRequest, train

    project, target = tmp_path / "no-project", tmp_path / "trained"
    fields: dict[str, object] = {"project": str(project), "target": str(target), field: value}
    with pytest.raises(InputError) as refused:
        train(TrainRequest(**fields), Reporter.create(quiet=True))  # type: ignore[arg-type]
    assert refused.value.exit_code == 2 and not target.exists()
    cli_flags = [] if field == "target" else ["--target", str(target)]
    assert cli.main(["train", str(project), *cli_flags, *flag]) == 2
    assert str(refused.value).splitlines()[0] in capsys.readouterr().err
    assert not target.exists()
