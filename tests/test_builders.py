"""Builders are plug-ins: the registry and the protocol (no engine needed), then the
engine-facing tests that every builder must pass, run once per registered builder from the one
`builder` fixture (conftest.py). A new builder registered in images/registry.py runs them too."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from e2e import (
    authfile,
    image_file_bytes,
    image_files,
    manifest_digest,
    package,
    registry,
    remove_image,
)
from models import PYTHON_CONFIG, backend_files, manifest, write_tree

from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main
from packager.dockerfile import WEIGHTS_TEMPLATE, templates_dir
from packager.errors import InputError
from packager.executor.images import registry as builders
from packager.executor.images.builder import Builder
from packager.executor.push import ENV_PASSWORD, ENV_USERNAME
from packager.imageref import archive_path, split_transport
from packager.plan import Layer

PACKAGE = Path(__file__).resolve().parent.parent / "packager"
IMAGES = PACKAGE / "executor" / "images"

# What a plain-HTTP test registry on 127.0.0.1 needs from each builder's push (the Docker
# engine reaches 127.0.0.0/8 over HTTP by itself).
PLAIN_HTTP_PUSH: dict[str, tuple[str, ...]] = {"buildah": ("--tls-verify", "false")}
SECRET = "s3cr3t-Pa55word-that-must-not-leak"


# --- the registry and the protocol: no engine ----------------------------------------------------

def test_every_registered_builder_is_a_builder_by_its_own_name() -> None:
    assert builders.choices() == (builders.AUTO, *builders.names())
    for name in builders.names():
        b: Builder = builders.get(name)
        assert b.name == name
        assert b.missing and b.setup_hint
    with pytest.raises(InputError) as info:
        builders.get("kaniko")
    assert info.value.exit_code == 2 and "docker" in str(info.value)


def test_transports_are_read_in_one_place() -> None:
    assert split_transport("docker://reg.example.com/a:1") == ("docker", "reg.example.com/a:1")
    assert split_transport("docker:5000/a:1") == ("", "docker:5000/a:1")  # a host named docker
    assert split_transport("docker-daemon:a:1") == ("docker-daemon", "a:1")
    assert split_transport("oci-archive:/w/b.tar:n") == ("oci-archive", "/w/b.tar:n")
    assert archive_path("docker-archive:/w/b.tar") == ("docker-archive", Path("/w/b.tar"))
    assert archive_path("docker-daemon:a:1") == ("", Path())
    assert archive_path("a:1") == ("", Path())


def _compared_names(path: Path) -> list[str]:
    """Builder names a module compares something with (==, !=, in), as string literals."""
    names = set(builders.names())
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Compare):
            continue
        for operand in (node.left, *node.comparators):
            items = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) \
                else [operand]
            found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {item.value}"
                      for item in items if isinstance(item, ast.Constant) and item.value in names]
    return found


def test_nothing_outside_the_builder_modules_compares_builder_names() -> None:
    outside = [p for p in PACKAGE.rglob("*.py") if not p.is_relative_to(IMAGES)]
    assert [hit for p in sorted(outside) for hit in _compared_names(p)] == []


# --- every builder: package, the bytes in the image, push -------------------------------------

@pytest.mark.docker
@pytest.mark.parametrize("key", ["onnx", "pytorch"])
def test_image_holds_exactly_the_planned_repository(key: str, builder: str, tmp_path: Path,
                                                    client, images) -> None:
    files = backend_files(key, f"{key}-model", with_config=True)
    files["odahuflow.model.yaml"] = manifest(f"{key}-model", 2)
    files["labels.txt"] = "a\nb\n"
    model = write_tree(tmp_path / "model", files)
    outcome, rec = package(model, tmp_path / "out", builder=builder)
    assert outcome.result is not None and outcome.analysis is not None
    assert outcome.result.builder == builder
    # where verify runs images: the files are read from there
    builders.get(builder).make_runnable(outcome.result.image, outcome.result.image_id, rec)
    images.append(outcome.result.image)
    plan = outcome.analysis.plan
    found = image_files(client, outcome.result.image, "/models")
    inside = {name.removeprefix("models/") for name in found if name != "models"}
    assert inside == {e.dest for e in plan.entries}
    for name, info in found.items():
        if name != "models":
            assert (info.uid, info.gid) == (1000, 1000), name
            assert info.mode & 0o004, f"{name} must be world-readable"
    config = image_file_bytes(client, outcome.result.image, f"/models/{key}-model/config.pbtxt")
    assert config == (model / "config.pbtxt").read_bytes()
    weight = next(e for e in plan.entries if e.layer is Layer.WEIGHTS)
    assert weight.source is not None
    weights = image_file_bytes(client, outcome.result.image, f"/models/{weight.dest}")
    assert weights == (model / weight.source).read_bytes()


@pytest.mark.docker
def test_push_records_the_digest_and_fails_cleanly_when_registry_is_down(
    builder: str, tmp_path: Path, client, images, capsys, python_model: Path
) -> None:
    model = python_model
    out = tmp_path / "out"
    outcome, _ = package(model, out, builder=builder)
    assert outcome.result is not None
    images.append(outcome.result.image)
    flags = PLAIN_HTTP_PUSH.get(builder, ())
    with registry(tmp_path) as reg:
        host = reg.host
        assert main(["push", "--output", str(out), "--registry", host, *flags]) == 0
        pushed = capsys.readouterr().out.strip()
        images.append(pushed.split("@")[0])
        result = (out / "result.json").read_text()
        assert f'"image": "{host}/' in result
        digest = pushed.split("@")[1]
        assert digest.startswith("sha256:") and f'"pushed_digest": "{digest}"' in result
        # The registry really has it: its manifest digest matches.
        reg = client.images.get_registry_data(pushed.split("@")[0])
        assert reg.id == digest
    # The registry is down now.
    assert main(["push", "--output", str(out), "--registry", host, *flags]) == 5
    err = capsys.readouterr().err
    assert "push of" in err and "failed" in err and "fix:" in err


@pytest.mark.docker
@pytest.mark.serving
def test_verify_phase_passes_and_fails_with_the_server_log(builder: str, tmp_path: Path,
                                                           client, images, capsys,
                                                           python_model: Path) -> None:
    outcome, _ = package(python_model, tmp_path / "out", builder=builder)
    assert outcome.result is not None
    images.append(outcome.result.image)
    assert main(["verify", "--output", str(tmp_path / "out")]) == 0
    assert "answered OUTPUT0, OUTPUT1" in capsys.readouterr().err

    broken = write_tree(tmp_path / "broken", {
        "model.py": "class TritonPythonModel:\n    def initialize(self, args):\n"
                    "        raise RuntimeError('weights are corrupt')\n",
        "config.pbtxt": PYTHON_CONFIG.format(name="model"),
    })
    outcome, _ = package(broken, tmp_path / "out2", builder=builder)
    assert outcome.result is not None
    images.append(outcome.result.image)
    assert main(["verify", "--output", str(tmp_path / "out2")]) == 4
    err = capsys.readouterr().err
    assert "weights are corrupt" in err  # the server's log tail is in the message
    assert not client.containers.list(all=True, filters={"label": "io.triton-packager.role"})


@pytest.mark.docker
def test_push_with_an_auth_file_and_with_environment_credentials(
        builder: str, tmp_path: Path, capsys, python_model: Path, client, images,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    assert main(["package", str(python_model), "-o", str(out), "--builder", builder,
                 "--base-image", LOCAL_CPU_IMAGE]) == 0
    image = json.loads((out / "result.json").read_text())["image"]
    images.append(image)
    # A plain-HTTP registry on 127.0.0.1, no CA to install (PLAIN_HTTP_PUSH: what each builder
    # needs for it).
    with registry(tmp_path / "reg", user="ci", password=SECRET) as reg:
        push = ["push", "-o", str(out), "--registry", reg.host, *PLAIN_HTTP_PUSH.get(builder, ())]
        before = (out / "result.json").read_text()
        bad = authfile(tmp_path / "bad.json", reg.host, "ci", "wrong")
        assert main([*push, "--authfile", str(bad)]) == 5
        assert (out / "result.json").read_text() == before
        good = authfile(tmp_path / "good.json", reg.host, "ci", SECRET)
        assert main([*push, "--authfile", str(good)]) == 0
        pushed = capsys.readouterr().out.strip()
        images.append(pushed.split("@")[0])
        digest = pushed.split("@")[1]
        assert manifest_digest(reg, image.split(":")[0], image.split(":")[1], "ci",
                               SECRET) == digest
        # the same image again, with a username and password from files
        (tmp_path / "u").write_text("ci\n")
        (tmp_path / "p").write_text(SECRET + "\n")
        monkeypatch.setenv(f"{ENV_USERNAME}_FILE", str(tmp_path / "u"))
        monkeypatch.setenv(f"{ENV_PASSWORD}_FILE", str(tmp_path / "p"))
        assert main(push) == 0
        captured = capsys.readouterr()
        assert captured.out.strip().endswith(digest)
        assert SECRET not in captured.out + captured.err


# --- one weights-layer specification: a template that cannot apply is refused -----------------

@pytest.mark.docker
def test_a_weights_template_is_refused_where_the_builder_does_not_build_it(
        builder: str, tmp_path: Path, capsys) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / WEIGHTS_TEMPLATE).write_text(
        (templates_dir() / WEIGHTS_TEMPLATE).read_text() + "LABEL org.example.weights=custom\n")
    model = write_tree(tmp_path / "model", {**backend_files("onnx", "m", with_config=True),
                                            "odahuflow.model.yaml": manifest("m", 1)})
    out = tmp_path / "out"
    # the dockerfile phase writes it: the template applies there whatever the builder
    assert main(["dockerfile", str(model), "-o", str(out), "-q", "--template-dir",
                 str(templates), "--base-image", LOCAL_CPU_IMAGE]) == 0
    assert "org.example.weights=custom" in (out / "context/weights/Dockerfile").read_text()
    if builders.get(builder).weights_from_dockerfile(None):
        return  # this builder builds it: nothing to refuse
    out = tmp_path / "out2"
    code = main(["package", str(model), "-o", str(out), "--builder", builder, "--template-dir",
                 str(templates), "--base-image", LOCAL_CPU_IMAGE])
    err = capsys.readouterr().err
    assert code == 2, err
    assert WEIGHTS_TEMPLATE in err and str(templates) in err and "cannot apply" in err
    assert "fix:" in err and "--platform" in err
    assert not out.exists()  # refused before anything is written


# --- pushes that send each layer once, weights uncompressed, in bounded layers -----------------

def _plan_model(root: Path) -> Path:
    """A TensorRT-plan model with two weights files: 20 MiB (past a 16 MiB bound: a layer of its
    own) and 5 MiB."""
    import os

    root.mkdir(parents=True)
    (root / "config.pbtxt").write_text('name: "big"\nplatform: "tensorrt_plan"\n'
                                       "max_batch_size: 0\n")
    (root / "odahuflow.model.yaml").write_text("name: big\nversion: 1\n")
    (root / "model.plan").write_bytes(os.urandom(20 << 20))
    (root / "extra.bin").write_bytes(os.urandom(5 << 20))
    return root


def _registry_manifest(host: str, repository: str, tag: str) -> dict[str, object]:
    import urllib.request

    req = urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{tag}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        doc: dict[str, object] = json.loads(resp.read())
    return doc


@pytest.mark.docker
def test_layers_push_sends_weights_uncompressed_in_bounded_layers_once_and_pulls_back(
        builder: str, tmp_path: Path, client, images, capsys, storage,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = _plan_model(tmp_path / "model")
    out = tmp_path / "out"
    tag = f"bounded-{builder}:1"
    assert main(["package", str(model), "-o", str(out), "--builder", builder, "--tag", tag,
                 "--base-image", LOCAL_CPU_IMAGE, "--max-layer-size", "16MiB", "-q"]) == 0
    images.append(tag)
    image_id = json.loads((out / "result.json").read_text())["image_id"]
    capsys.readouterr()
    with registry(tmp_path / "reg") as reg:
        assert main(["push", "-o", str(out), "--registry", f"{reg.host}/a"]) == 0
        pushed = capsys.readouterr().out.strip().split("@")[0]
        images.append(pushed)
        doc = _registry_manifest(reg.host, f"a/bounded-{builder}", "1")
        layers_ = doc["layers"]
        assert isinstance(layers_, list)
        raw = [m for m in layers_ if m["mediaType"] == "application/vnd.oci.image.layer.v1.tar"]
        # two weights layers, uncompressed: the 20 MiB file alone (past the bound), the 5 MiB one
        assert sorted(m["size"] // (1 << 20) for m in raw) == [5, 20]
        assert all(m["mediaType"].endswith("+gzip") for m in layers_ if m not in raw)
        # the same image to another repository: every layer is mounted or found, none sent
        other = tmp_path / "out2"
        assert main(["package", str(model), "-o", str(other), "--builder", builder, "--tag",
                     f"bounded-{builder}:2", "--base-image", LOCAL_CPU_IMAGE,
                     "--max-layer-size", "16MiB", "-q"]) == 0
        images.append(f"bounded-{builder}:2")
        capsys.readouterr()
        assert main(["push", "-o", str(other), "--registry", f"{reg.host}/b"]) == 0
        captured = capsys.readouterr()
        images.append(captured.out.strip().split("@")[0])
        err = captured.err
        weights_ids = [m["digest"] for m in raw]
        assert not any(f"weights layer {d[7:19]}" in err for d in weights_ids), err
        # a plain pull of the pushed image gives back the image that was built
        remove_image(client, pushed)  # absent from the engine after a buildah push
        client.images.pull(pushed)
        assert client.images.get(pushed).id == image_id
        proc = subprocess.run(["buildah", *storage.flags(), "pull", "--quiet", "--tls-verify=false",
                               f"docker://{pushed}"], capture_output=True, text=True,
                              timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[-1] == image_id.removeprefix("sha256:")
