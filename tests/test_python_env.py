"""Python-backend environments: requirements.txt (real build and serve), conda.yaml (generated
stages; built for real only where a conda channel is reachable), Python matching, no leaks."""

from __future__ import annotations

import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from e2e import Recorder, remove_image
from models import PYTHON_CONFIG, python_model_source, write_tree

from packager.analysis import Options
from packager.backends import BY_KEY
from packager.basechoice import LOCAL_CPU_IMAGE, choose_base_image
from packager.cli import main
from packager.errors import InputError
from packager.executor.container import serve
from packager.executor.phases import BuildEnv, Workspace
from packager.modelconfig import parse_config
from packager.pyenv import EnvOptions, conda_for_server, server_python, with_env_path

SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")

MPMATH_MODEL = python_model_source(
    "INPUT0", "y = np.array([float(mpmath.gamma(float(v))) for v in x], dtype=np.float32)",
    'out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", y)]))',
    modules=("mpmath",))


# --- pure rules ------------------------------------------------------------------------------

def test_server_python_per_base_image() -> None:
    py = BY_KEY["python"]
    assert server_python(choose_base_image(py, None)) == "3.12"
    assert server_python(choose_base_image(py, "nvcr.io/nvidia/tritonserver:24.10-py3")) == "3.10"
    assert server_python(choose_base_image(py, "nvcr.io/nvidia/tritonserver:23.04-py3")) == "3.8"
    assert server_python(choose_base_image(py, LOCAL_CPU_IMAGE)) == "3.11"
    assert server_python(choose_base_image(py, "my/base:1")) is None
    assert server_python(choose_base_image(py, "my/base:1"), "3.9") == "3.9"


def test_conda_pin_is_added_or_checked() -> None:
    added = conda_for_server("dependencies:\n  - numpy\n", "3.12")
    assert "- python=3.12\n- numpy" in added
    assert "python=3.12" in conda_for_server("dependencies: [python=3.12, numpy]\n", "3.12")
    assert "python==3.12.*" in conda_for_server("dependencies: ['python==3.12.*']\n", "3.12")
    # python-dateutil is not a Python pin
    assert "- python=3.11" in conda_for_server("dependencies: [python-dateutil]\n", "3.11")


def test_conda_python_mismatch_is_refused_before_any_build(tmp_path: Path, capsys) -> None:
    model = write_tree(tmp_path / "m", {
        "model.py": MPMATH_MODEL, "config.pbtxt": PYTHON_CONFIG.format(name="model"),
        "conda.yaml": "dependencies:\n  - python=3.9\n  - mpmath\n",
    })
    out = tmp_path / "out"
    code = main(["package", str(model), "-o", str(out), "--base-image", LOCAL_CPU_IMAGE])
    err = capsys.readouterr().err
    assert code == 2
    assert "conda.yaml" in err and "python 3.9" in err and "Python 3.11" in err
    assert "pin python=3.11" in err
    assert not (out / "result.json").exists() and not (out / "context").exists()


def test_unknown_base_python_needs_an_option() -> None:
    with pytest.raises(InputError) as err:
        conda_for_server("dependencies: [numpy]\n", None)
    assert "--python-version" in str(err.value)


def test_existing_execution_env_path_is_left_alone() -> None:
    text = 'backend: "python"\nparameters { key: "EXECUTION_ENV_PATH" value { string_value: "/e" } }\n'
    assert with_env_path(text, parse_config(text).parameters) == (text, False)
    added, changed = with_env_path('backend: "python"\n', ())
    assert changed and added.startswith('backend: "python"\n')
    assert added.count("EXECUTION_ENV_PATH") == 1
    # A comment that names the parameter does not set it.
    commented = 'backend: "python"\n# EXECUTION_ENV_PATH is set by the packager\n'
    added, changed = with_env_path(commented, parse_config(commented).parameters)
    assert changed and parse_config(added).parameters == ("EXECUTION_ENV_PATH",)


@pytest.mark.parametrize("bad", [EnvOptions(conda_channels=("a b",)),
                                 EnvOptions(micromamba_url="ftp://x\nRUN id"),
                                 EnvOptions(pip_index_url="https://x/$(id)"),
                                 EnvOptions(python_version="3")])
def test_env_options_are_validated(bad: EnvOptions) -> None:
    with pytest.raises(InputError):
        bad.check()


def test_conda_on_non_python_backend_warns(tmp_path: Path, capsys) -> None:
    from models import backend_files

    files = backend_files("onnx", "model", with_config=False)
    files["conda.yaml"] = "dependencies: [numpy]\n"
    model = write_tree(tmp_path / "m", files)
    assert main(["dockerfile", str(model), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "conda.yaml" in err and "ignored" in err
    assert "conda" not in (tmp_path / "out/context/Dockerfile").read_text()


# --- real builds -----------------------------------------------------------------------------

def _leak_marker_bundle(tmp: Path) -> tuple[Path, bytes]:
    marker = b"# triton-packager-leak-marker-5f3c9a\n"
    bundle = tmp / "corp-ca.pem"
    bundle.write_bytes(marker + SYSTEM_CA.read_bytes())
    return bundle, marker


@pytest.mark.docker
@pytest.mark.serving
def test_requirements_txt_package_is_installed_served_and_nothing_leaks(
    tmp_path: Path, client
) -> None:
    model = write_tree(tmp_path / "m", {
        "model.py": MPMATH_MODEL, "config.pbtxt": PYTHON_CONFIG.format(name="gamma"),
        "odahuflow.model.yaml": "name: gamma\nversion: 1\n", "requirements.txt": "mpmath==1.3.0\n",
    })
    bundle, marker = _leak_marker_bundle(tmp_path)
    index = "https://pypi.org/simple"
    proxy = "http://user:s3cret-proxy-pass@127.0.0.1:9/"  # never used: no_proxy covers all hosts
    options = Options(base_image=LOCAL_CPU_IMAGE, env=EnvOptions(pip_index_url=index))
    build_env = BuildEnv(bundle, (("HTTP_PROXY", proxy), ("NO_PROXY", "*")))
    rec = Recorder()
    outcome = Workspace(model, tmp_path / "out", options, rec, build_env=build_env).run("package")
    assert outcome.result is not None
    image = outcome.result.image
    try:
        x = np.array([1.0, 2.0, 3.5, 5.0], dtype=np.float32)
        with serve(image) as running:
            c = httpclient.InferenceServerClient(running.http_url)
            inp = httpclient.InferInput("INPUT0", [4], "FP32")
            inp.set_data_from_numpy(x)
            got = c.infer("gamma", [inp]).as_numpy("OUTPUT0")
        np.testing.assert_allclose(got, [1.0, 1.0, 3.3233509, 24.0], rtol=1e-6)

        history = " ".join(str(h.get("CreatedBy", "")) for h in client.api.history(image))
        for secret in ("s3cret-proxy-pass", "triton-packager-ca", "PIP_INDEX_URL", "pypi.org"):
            assert secret not in history, secret
        assert "triton-packager.pth" in history
        # Every byte of the final filesystem: no CA marker, no proxy password, no index URL.
        container = client.containers.create(image, command=["true"])
        try:
            data = b"".join(container.export())
        finally:
            container.remove(force=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = tar.getnames()
            assert not [n for n in names if "triton-packager-ca" in n or "build-secrets" in n]
        assert marker.strip() not in data
        assert b"s3cret-proxy-pass" not in data
        assert any(n.startswith("opt/triton-packager/envs/1/mpmath/") for n in names)
    finally:
        remove_image(client, image)


def _conda_channel_reachable() -> bool:
    try:
        urllib.request.urlopen("https://conda.anaconda.org/conda-forge/noarch/repodata.json",
                               timeout=5)
        return True
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.docker
@pytest.mark.serving
def test_conda_yaml_environment_is_built_and_served(tmp_path: Path, client) -> None:
    if not _conda_channel_reachable():
        pytest.skip("no conda channel is reachable from this machine (only PyPI, Debian and npm "
                    "are), so the conda builder stage cannot run; its Dockerfile is pinned by "
                    "snapshot and its rules by the unit tests above")
    model = write_tree(tmp_path / "m", {
        "model.py": MPMATH_MODEL, "config.pbtxt": PYTHON_CONFIG.format(name="gamma"),
        "conda.yaml": "channels: [conda-forge]\ndependencies:\n  - numpy<2\n  - mpmath\n",
    })
    options = Options(base_image=LOCAL_CPU_IMAGE)
    outcome = Workspace(model, tmp_path / "out", options, Recorder(),
                        build_env=BuildEnv(SYSTEM_CA)).run("package")
    assert outcome.result is not None
    try:
        with serve(outcome.result.image) as running:
            c = httpclient.InferenceServerClient(running.http_url)
            inp = httpclient.InferInput("INPUT0", [4], "FP32")
            inp.set_data_from_numpy(np.array([1, 2, 3, 4], dtype=np.float32))
            got = c.infer("gamma", [inp]).as_numpy("OUTPUT0")
        np.testing.assert_allclose(got, [1, 1, 2, 6], rtol=1e-6)
    finally:
        remove_image(client, outcome.result.image)
