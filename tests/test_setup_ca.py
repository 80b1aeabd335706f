"""`setup --ca-bundle`: an https artifact on an internal server signed by a private CA, trusted
from a PEM file or from the `ca` workspace as Kubernetes mounts a ConfigMap (the setup Task
binds it). Python's TLS would not read that directory by itself: OpenSSL's SSL_CERT_DIR wants
hashed file names (`<hash>.0`), and SSL_CERT_FILE would replace the system's roots."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e import make_ca
from fileserver import serve_directory
from tekton_steps import kubernetes_volume, resolve_steps

from packager.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(URL of model.zip on an https server signed by a private CA, that CA's certificate)."""
    ca, crt, key = make_ca(tmp_path / "pki")
    www = tmp_path / "www"
    www.mkdir()
    with zipfile.ZipFile(www / "model.zip", "w") as z:
        z.writestr("model.py", "print('model')\n")
    with serve_directory(www, tls=(crt, key)) as url:
        yield f"{url}/model.zip", ca


def test_without_the_ca_the_download_fails(tmp_path: Path, served: tuple[str, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = served
    assert main(["setup", url, "-o", str(tmp_path / "m")]) == 3
    err = capsys.readouterr().err
    assert "CERTIFICATE_VERIFY_FAILED" in err and "--ca-bundle" in err
    # "" is an unbound optional workspace: the system's roots only.
    assert main(["setup", url, "-o", str(tmp_path / "m"), "--ca-bundle", ""]) == 3
    assert not (tmp_path / "m").exists()


def test_a_ca_file_or_a_mounted_configmap_is_trusted(tmp_path: Path,
                                                    served: tuple[str, Path]) -> None:
    url, ca = served
    assert main(["setup", url, "-o", str(tmp_path / "a"), "--ca-bundle", str(ca)]) == 0
    assert (tmp_path / "a" / "model.py").is_file()
    mounted = kubernetes_volume(tmp_path / "ca", {"ca.crt": ca.read_bytes()})
    assert main(["setup", url, "-o", str(tmp_path / "b"), "--ca-bundle", str(mounted)]) == 0
    assert (tmp_path / "b" / "model.py").is_file()


def test_a_ca_bundle_without_a_certificate_is_refused(tmp_path: Path, served: tuple[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = served
    bad = kubernetes_volume(tmp_path / "bad", {"ca.crt": b"not a certificate\n"})
    assert main(["setup", url, "-o", str(tmp_path / "m"), "--ca-bundle", str(bad)]) == 2
    assert "no PEM certificate" in capsys.readouterr().err
    assert main(["setup", url, "-o", str(tmp_path / "m"), "--ca-bundle",
                 str(tmp_path / "absent")]) == 2
    assert not (tmp_path / "m").exists()


def test_the_setup_task_hands_the_ca_workspace_to_setup(tmp_path: Path,
                                                       served: tuple[str, Path]) -> None:
    """The setup step as the Task declares it: with the `ca` workspace bound (a ConfigMap's
    layout) the internal server's artifact is unpacked; unbound, it is not."""
    url, ca = served
    task = yaml.safe_load((REPO / "deploy/tekton/task-setup.yaml").read_text())
    mounted = kubernetes_volume(tmp_path / "ca", {"ca.crt": ca.read_bytes()})
    params = {"packagerImage": "r.example.com/p@sha256:" + "0" * 64, "artifact": url,
              "modelDir": str(tmp_path / "bound")}
    (step,) = resolve_steps(task, params, workspaces={"shared": str(tmp_path),
                                                      "ca": str(mounted)})
    assert main(list(step.args)) == 0
    assert (tmp_path / "bound" / "model.py").is_file()
    (unbound,) = resolve_steps(task, {**params, "modelDir": str(tmp_path / "unbound")},
                               workspaces={"shared": str(tmp_path)})
    assert main(list(unbound.args)) == 3
