"""A store kept between runs must not decide what a build starts FROM (the Tekton build cache).

- `package --pull always` pulls a registry base even when the builder holds an image of its
  name (another run may have built or tagged one under it), and builds FROM the pulled ID;
- `package` and `push` refuse an image name or push target in the base image's repository
  (or in the packager's own weights repository), so no run can put an image there;
- the build Task's last step removes the pushed image from the store.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from models import PYTHON_CONFIG, PYTHON_MODEL, write_tree

from packager.cli import main
from packager.errors import BuildError, InputError
from packager.executor.images import buildah as bb
from packager.executor.images.buildah import Storage
from packager.imageref import canonical_repository, refuse_base_repository
from packager.result import ModelEntry, ResultDocument

BASE = "registry.internal/mirror/tritonserver:26.07-py3"


# --- buildah and docker: pull a registry base again when asked --------------------------------

def test_buildah_pull_always_pulls_a_held_registry_base(monkeypatch: pytest.MonkeyPatch) -> None:
    pulled: list[str] = []
    monkeypatch.setattr(bb, "image_id", lambda ref, storage=None: "sha256:" + "1" * 64)
    monkeypatch.setattr(bb, "_docker_engine_id", lambda ref: None)

    def pull(source: str, storage: object, timeout: float) -> str:
        pulled.append(source)
        return "sha256:" + "2" * 64

    monkeypatch.setattr(bb, "_pull", pull)
    # Held, not asked to pull: the held image (what a poisoned cache would serve).
    assert bb.ensure_image(BASE) == "sha256:" + "1" * 64 and pulled == []
    # Asked to pull: from the registry, whatever storage holds under the name.
    assert bb.ensure_image(BASE, pull=True) == "sha256:" + "2" * 64
    assert bb.ensure_image(f"docker://{BASE}", pull=True) == "sha256:" + "2" * 64
    assert pulled == [f"docker://{BASE}", f"docker://{BASE}"]


def test_buildah_pull_always_leaves_image_files_and_the_engine_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "base.tar"
    archive.write_bytes(b"x")
    pulled: list[str] = []
    monkeypatch.setattr(bb, "_pull", lambda source, storage, timeout: pulled.append(source) or
                        "sha256:" + "3" * 64)
    assert bb.ensure_image(f"oci-archive:{archive}", pull=True) == "sha256:" + "3" * 64
    assert pulled == [f"oci-archive:{archive}"]


def test_docker_pull_always_pulls_a_held_base(monkeypatch: pytest.MonkeyPatch) -> None:
    from packager.executor.images import docker as engine

    calls: list[str] = []

    class Image:
        def __init__(self, id_: str) -> None:
            self.id = id_

    class Images:
        def get(self, ref: str) -> Image:
            calls.append(f"get {ref}")
            return Image("sha256:held")

        def pull(self, ref: str) -> Image:
            calls.append(f"pull {ref}")
            return Image("sha256:pulled")

    class Client:
        images = Images()

    monkeypatch.setattr(engine, "client", lambda: Client())
    assert engine.ensure_image(BASE) == "sha256:held" and calls == [f"get {BASE}", f"get {BASE}"]
    calls.clear()
    assert engine.DockerBuilder().ensure_image(BASE, pull=True) == "sha256:pulled"
    assert calls == [f"pull {BASE}"]


# --- package: --pull always reaches the builder; names in the base's repository refused -------

class _Stop(BuildError):
    pass


class _Recording:
    """Just enough of a Builder to see what package asks of it before the build."""

    name = "buildah"
    missing = "nothing"
    setup_hint = ""
    reads_archives = True
    writes_archives = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, bool]] = []

    def check_base_source(self, source: str | None) -> None:
        return None

    def weights_from_dockerfile(self, platform: str | None) -> bool:
        return True

    def ensure_image(self, reference: str, name: str | None = None, *, pull: bool = False) -> str:
        self.calls.append((reference, name, pull))
        raise _Stop("stopped before the build")


def _model(tmp: Path) -> Path:
    return write_tree(tmp / "model", {"model.py": PYTHON_MODEL,
                                      "config.pbtxt": PYTHON_CONFIG.format(name="model")})


@pytest.mark.parametrize(("flags", "pull"), [([], False), (["--pull", "missing"], False),
                                             (["--pull", "always"], True)])
def test_package_pull_always_reaches_the_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 flags: list[str], pull: bool) -> None:
    from packager.executor import phases

    builder = _Recording()
    monkeypatch.setattr(phases.registry, "select", lambda choice, source=None: builder)
    code = main(["package", str(_model(tmp_path)), "-o", str(tmp_path / "out"), "--base-image",
                 BASE, "--python-version", "3.12", *flags])
    assert code == 3
    assert builder.calls == [(BASE, BASE, pull)]


@pytest.mark.parametrize(("flags", "words"), [
    (["--tag", "registry.internal/mirror/tritonserver:26.07-py3"], "--tag"),
    (["--tag", "registry.internal/mirror/tritonserver:other"], "base image's repository"),
    (["--image-name", "triton-packager/weights:{{ RandomUUID }}"], "weights images"),
])
def test_package_refuses_a_name_in_the_base_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        flags: list[str], words: str) -> None:
    from packager.executor import phases

    builder = _Recording()
    monkeypatch.setattr(phases.registry, "select", lambda choice, source=None: builder)
    code = main(["package", str(_model(tmp_path)), "-o", str(tmp_path / "out"), "--base-image",
                 BASE, "--python-version", "3.12", "--pull", "always", *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and "fix:" in err
    assert builder.calls == []  # refused before the base was brought in, nothing written
    assert not (tmp_path / "out").exists()


def _result(out: Path, image: str, base: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    text = ResultDocument(image=image, models=(ModelEntry("add-sub", (1,), "python"),),
                          base_image=base, dockerfile_sha256="0" * 64, builder="buildah",
                          image_id="sha256:" + "a" * 64).to_json()
    (out / "result.json").write_text(text)
    return text


@pytest.mark.parametrize(("image", "registry", "base"), [
    ("tritonserver:26.07-py3", "registry.internal/mirror", BASE),  # the base's own tag
    ("tritonserver:model-1", "registry.internal/mirror", BASE),  # its repository
    ("ubuntu:x", "docker.io", "ubuntu:24.04"),  # Docker Hub's short names spelled out
    ("registry.internal/mirror/tritonserver:x", None, BASE),
])
def test_push_refuses_a_target_in_the_base_repository(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], image: str, registry: str | None,
        base: str) -> None:
    out = tmp_path / "out"
    before = _result(out, image, base)
    url = tmp_path / "url"
    args = ["push", "-o", str(out), "--image-url-file", str(url)]
    assert main([*args, *(["--registry", registry] if registry else [])]) == 2
    err = capsys.readouterr().err
    assert "the push target" in err and "base image's repository" in err and "fix:" in err
    assert (out / "result.json").read_text() == before and not url.exists()


def test_repositories_compare_as_registries_name_them() -> None:
    assert canonical_repository("ubuntu:24.04") == "docker.io/library/ubuntu"
    assert canonical_repository("docker.io/ubuntu") == "docker.io/library/ubuntu"
    assert canonical_repository("index.docker.io/library/ubuntu:1") == "docker.io/library/ubuntu"
    assert canonical_repository("team/model:1") == "docker.io/team/model"
    assert canonical_repository("127.0.0.1:5000/m/base:1") == "127.0.0.1:5000/m/base"
    refuse_base_repository("registry.internal/models/tritonserver:1", BASE, what="x")
    refuse_base_repository("registry.internal/mirror/tritonserver-model:1", BASE, what="x")
    with pytest.raises(InputError):
        refuse_base_repository("registry.internal/mirror/tritonserver@sha256:" + "0" * 64, BASE,
                               what="x")
    with pytest.raises(InputError, match="weights"):
        refuse_base_repository("localhost/triton-packager/weights:1", BASE, what="x")


# --- tekton-results --remove-image -------------------------------------------------------------

def test_the_results_step_removes_the_pushed_image(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    doc = ResultDocument("registry.example.com/ml/add-sub:1",
                         (ModelEntry("add-sub", (1,), "python"),), BASE, "a" * 64,
                         image_id="sha256:" + "b" * 64, pushed_digest="sha256:" + "c" * 64,
                         pushed_image="registry.example.com/ml/add-sub@sha256:" + "c" * 64,
                         builder="buildah")
    out.mkdir()
    (out / "result.json").write_text(doc.to_json())
    removed: list[str] = []
    monkeypatch.setattr(bb, "_inspect", lambda ref, storage: {"FromImageDigest": "sha256:" + "e" * 64})
    monkeypatch.setattr(bb.BuildahBuilder, "remove_image_id",
                        lambda self, image: removed.append(image))
    args = ["tekton-results", "-o", str(out), "--result-file", str(tmp_path / "R"),
            "--base-digest-file", str(tmp_path / "B")]
    assert main(args) == 0 and removed == []
    assert main([*args, "--remove-image"]) == 0 and removed == ["sha256:" + "b" * 64]
    assert json.loads((tmp_path / "R").read_text())["image_id"] == "sha256:" + "b" * 64


@pytest.mark.docker
def test_remove_image_takes_every_name_and_keeps_the_base(storage: Storage) -> None:
    b = ["buildah", *storage.flags()]

    def run(*args: str) -> str:
        return subprocess.run([*b, *args], capture_output=True, text=True, check=True,
                              timeout=300).stdout.strip()

    ctr = run("from", "scratch")
    try:
        run("commit", "--quiet", ctr, "localhost/base-for-remove:1")
    finally:
        subprocess.run([*b, "rm", ctr], capture_output=True, timeout=60)
    ctr = run("from", "localhost/base-for-remove:1")
    try:
        run("config", "--label", "x=y", ctr)
        image = bb._sha(run("commit", "--quiet", ctr, "localhost/model-for-remove:1"))
    finally:
        subprocess.run([*b, "rm", ctr], capture_output=True, timeout=60)
    run("tag", image.removeprefix("sha256:"), "registry.example.com/ml/model-for-remove:1")
    bb.remove_image(image, storage=storage)
    assert bb.image_id("localhost/model-for-remove:1", storage=storage) is None
    assert bb.image_id("registry.example.com/ml/model-for-remove:1", storage=storage) is None
    assert bb.image_id("localhost/base-for-remove:1", storage=storage) is not None
    bb.remove_image(image, storage=storage)  # gone already: no error
