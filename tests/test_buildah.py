"""The buildah builder against the real buildah on this machine (no mocks): builds, the layer
cache, --no-cache, .dockerignore, failing steps, archives loaded into Docker, pushes to a real
registry with an auth file, no build secret in any layer or in the history, and the packager's
own generated Dockerfile built by buildah and served by Triton.

Every test uses its own buildah storage under the session's temporary directory, so the system's
/var/lib/containers (and other users of buildah on the machine) are left alone.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e import Recorder, authfile, infer_add_sub, registry

from packager.basechoice import LOCAL_CPU_IMAGE
from packager.dockerfile import base_images
from packager.errors import BuildError, InputError, PushError
from packager.executor.images import buildah as bb
from packager.executor.images.buildah import Storage
from packager.executor.push import check_authfile
from packager.imageref import check_archive_output

SECRET = "s3cret-index-pass-7d1e"
PROXY_SECRET = "s3cret-proxy-pass-9b2c"
TINY = "localhost/triton-packager-test/tiny:1"


# --- pure parts: no buildah needed ------------------------------------------------------------

def test_build_command_never_carries_build_arg_values() -> None:
    args = bb.build_command(Path("/ctx"), "m:1", buildargs={"PIP_INDEX_URL": f"https://u:{SECRET}@x/"},
                            nocache=True, platform="linux/amd64", labels={"a": "b"},
                            storage=Storage("vfs", Path("/r"), Path("/rr")))
    assert not [a for a in args if SECRET in a]
    assert args[:6] == ["--storage-driver", "vfs", "--root", "/r", "--runroot", "/rr"]
    for flag in ("--isolation", "--layers", "--pull=never", "--no-cache", "--platform",
                 "--http-proxy=false", "--force-rm"):
        assert flag in args
    assert args[args.index("--build-arg") + 1] == "PIP_INDEX_URL"
    assert args[args.index("--format") + 1] == "docker"  # OCI would drop HEALTHCHECK
    with pytest.raises(InputError):
        bb.build_command(Path("/ctx"), "m:1", buildargs={"A=B": "x"})


def test_storage_from_environment_and_bad_driver() -> None:
    s = Storage.from_env({bb.ENV_DRIVER: "vfs", bb.ENV_ROOT: "/a", bb.ENV_RUNROOT: "/b"})
    assert s == Storage("vfs", Path("/a"), Path("/b"))
    assert Storage.from_env({}).flags() == []
    with pytest.raises(InputError):
        Storage("overlay --root /etc")


def test_base_images_skip_stages_and_scratch() -> None:
    text = ("FROM a/b:1 AS build\nRUN x\nFROM build AS two\nFROM scratch\n"
            "FROM --platform=linux/amd64 c:2\nfrom a/b:1\n")
    assert base_images(text) == ["a/b:1", "c:2"]


def test_output_must_be_an_archive_transport() -> None:
    assert check_archive_output("oci-archive:/tmp/x.tar") == ("oci-archive", Path("/tmp/x.tar"))
    for bad in ("docker://reg/x:1", "/tmp/x.tar", "oci-archive:", "docker-archive:/a:b",
                "oci-archive:/x\nRUN id"):
        with pytest.raises(InputError):
            check_archive_output(bad)


def test_missing_buildah_names_the_install_and_is_an_environment_fault(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without buildah (the real lookup runs)
    assert bb.available() is False
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(BuildError) as info:
        bb.build_image(tmp_path, "x:1", Recorder())
    assert info.value.exit_code == 3
    assert "apt-get install -y buildah" in str(info.value)
    with pytest.raises(BuildError):
        bb.image_id("anything")
    assert bb.image_exists("anything", "sha256:00") is False


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]"],
                         ids=["not-json", "not-utf8", "not-object"])
def test_bad_auth_file_is_refused_without_echoing_it(tmp_path: Path, content: bytes) -> None:
    auth = tmp_path / "auth.json"
    auth.write_bytes(content + SECRET.encode())
    with pytest.raises(InputError) as info:
        check_authfile(auth)
    assert info.value.exit_code == 2
    assert SECRET not in str(info.value)
    with pytest.raises(InputError):
        check_authfile(tmp_path / "absent.json")


# --- real buildah ----------------------------------------------------------------------------

def _tiny_rootfs(dest: Path) -> Path:
    """/bin/sh, cat and ls from this machine with the libraries they load: a shell image."""
    for tool in ("sh", "cat", "ls"):
        exe = Path(shutil.which(tool) or f"/bin/{tool}").resolve()
        libs = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=True,
                              timeout=30).stdout
        paths = [Path(w) for w in libs.split() if w.startswith("/")]
        for src, rel in [(exe, f"bin/{tool}"), *((p, str(p).lstrip("/")) for p in paths)]:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src.resolve(), dest / rel)
    (dest / "tmp").mkdir(exist_ok=True)
    return dest


@pytest.fixture(scope="session")
def tiny(storage: Storage, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small base made with `buildah from scratch` + `copy` + `commit` (no registry)."""
    rootfs = _tiny_rootfs(tmp_path_factory.mktemp("rootfs"))
    b = ["buildah", *storage.flags()]
    ctr = subprocess.run([*b, "from", "scratch"], capture_output=True, text=True, check=True,
                         timeout=120).stdout.strip()
    try:
        subprocess.run([*b, "copy", ctr, f"{rootfs}/", "/"], check=True, capture_output=True,
                       timeout=300)
        subprocess.run([*b, "config", "--cmd", "/bin/sh", ctr], check=True, capture_output=True,
                       timeout=60)
        subprocess.run([*b, "commit", "--quiet", ctr, TINY], check=True, capture_output=True,
                       timeout=300)
    finally:
        subprocess.run([*b, "rm", ctr], capture_output=True, timeout=60)
    return TINY


def _context(root: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _containers(storage: Storage) -> set[str]:
    out = subprocess.run(["buildah", *storage.flags(), "containers", "--quiet"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return set(out.split())


def _history(reference: str, storage: Storage) -> list[str]:
    """Each history entry's `created_by` (the step that made it), oldest first."""
    doc = json.loads(subprocess.run(
        ["buildah", *storage.flags(), "inspect", "--type", "image", "--", reference],
        capture_output=True, text=True, check=True, timeout=60).stdout)
    return [str(h.get("created_by", "")) for h in doc.get("History") or []]


def _build_to(context: Path, tag: str, rec: Recorder, buildargs: dict[str, str] | None = None,
              *, output: str, storage: Storage, **options: Any) -> str:
    """Build, then write the image to the file `output` (`oci-archive:` / `docker-archive:`),
    named `tag` inside."""
    built = bb.build_image(context, tag, rec, buildargs, storage=storage, **options)
    bb.export_image(built, output, name=tag, storage=storage)
    return built


def _logs(rec: Recorder) -> list[str]:
    return [ln[5:] for ln in rec.lines if ln.startswith("log: ")]


def _oci_archive_contents(path: Path) -> tuple[dict[str, bytes], list[str]]:
    """Every file in every layer of an OCI archive (path -> bytes, later layers win), and the
    config's history (`created_by` of each entry)."""
    with tarfile.open(path) as outer:
        def blob(digest: str) -> bytes:
            fh = outer.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}")
            assert fh is not None
            return fh.read()

        index = json.loads(outer.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        files: dict[str, bytes] = {}
        for layer in manifest["layers"]:
            data = blob(layer["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for m in tar.getmembers():
                    fh = tar.extractfile(m) if m.isreg() else None
                    files[m.name.removeprefix("./")] = fh.read() if fh is not None else b""
    return files, [str(h.get("created_by", "")) for h in config.get("history", [])]


@pytest.mark.docker
def test_layer_cache_is_reused_and_no_cache_rebuilds(tmp_path: Path, storage: Storage,
                                                     tiny: str) -> None:
    ctx = _context(tmp_path / "ctx", f"FROM {tiny}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n",
                   {"a.txt": "hello\n"})
    first = bb.build_image(ctx, "cache-test:1", Recorder(), storage=storage)
    assert first.startswith("sha256:") and len(first) == 71
    assert bb.image_id("cache-test:1", storage=storage) == first
    assert bb.image_exists("cache-test:1", first, storage=storage)
    again = Recorder()
    assert bb.build_image(ctx, "cache-test:1", again, storage=storage) == first
    assert sum("Using cache" in ln for ln in _logs(again)) == 2  # COPY and RUN
    fresh = Recorder()
    rebuilt = bb.build_image(ctx, "cache-test:1", fresh, nocache=True, storage=storage)
    assert not [ln for ln in _logs(fresh) if "Using cache" in ln]
    assert rebuilt != first  # new layers, new timestamps: a new image
    (ctx / "a.txt").write_text("changed\n")
    changed = Recorder()
    assert bb.build_image(ctx, "cache-test:1", changed, storage=storage) not in (first, rebuilt)
    assert not [ln for ln in _logs(changed) if "Using cache" in ln]


@pytest.mark.docker
def test_failing_run_is_a_build_error_with_the_log_tail(tmp_path: Path, storage: Storage,
                                                       tiny: str) -> None:
    ctx = _context(tmp_path / "ctx", f"FROM {tiny}\nRUN echo step-output-4f2a; exit 7\n")
    rec = Recorder()
    before = _containers(storage)
    with pytest.raises(BuildError) as info:
        bb.build_image(ctx, "fails:1", rec, storage=storage)
    assert _containers(storage) <= before  # the failed step's working container is gone
    err = info.value
    assert err.exit_code == 3
    assert any("step-output-4f2a" in ln for ln in err.log_tail)
    assert "exit status 7" in str(err)
    assert "step-output-4f2a" in "\n".join(_logs(rec))  # streamed while it ran
    assert bb.image_id("fails:1", storage=storage) is None


@pytest.mark.docker
def test_missing_base_image_is_a_build_error_naming_the_ways_in(tmp_path: Path,
                                                               storage: Storage) -> None:
    ctx = _context(tmp_path / "ctx", "FROM localhost/triton-packager-test/absent:1\n")
    with pytest.raises(BuildError) as info:
        bb.build_image(ctx, "x:1", Recorder(), storage=storage)
    assert "docker-daemon:" in str(info.value) and "oci-archive:" in str(info.value)


@pytest.mark.docker
def test_deadline_kills_the_build(tmp_path: Path, storage: Storage, tiny: str) -> None:
    # `sh -c 'while :; do :; done'`: a step that never ends, with no sleep binary in the base.
    ctx = _context(tmp_path / "ctx", f"FROM {tiny}\nRUN while :; do :; done\n")
    with pytest.raises(BuildError, match="deadline of 5s"):
        bb.build_image(ctx, "slow:1", Recorder(), storage=storage, timeout=5)


@pytest.mark.docker
def test_platform_is_honoured_and_a_mismatched_base_is_named(tmp_path: Path, storage: Storage,
                                                            tiny: str) -> None:
    ctx = _context(tmp_path / "ctx", f"FROM {tiny}\nRUN echo ok > /ok\n")
    host = bb.image_platform(tiny, storage=storage)  # the tiny base holds this machine's binaries
    assert host is not None and host.startswith("linux/")
    other = "linux/arm64" if host != "linux/arm64" else "linux/amd64"
    bb.build_image(ctx, "localhost/triton-packager-test/plat:1", Recorder(), platform=host,
                   storage=storage)
    assert bb.image_platform("localhost/triton-packager-test/plat:1", storage=storage) == host
    with pytest.raises(BuildError) as info:
        bb.build_image(ctx, "localhost/triton-packager-test/plat:2", Recorder(), platform=other,
                       storage=storage)
    assert host in str(info.value) and other in str(info.value)
    assert bb.image_id("localhost/triton-packager-test/plat:2", storage=storage) is None


@pytest.mark.docker
def test_dockerignore_labels_and_oci_archive(tmp_path: Path, storage: Storage,
                                             tiny: str) -> None:
    ctx = _context(tmp_path / "ctx", f"FROM {tiny}\nCOPY . /ctx/\n",
                   {"keep.txt": "kept\n", "drop.txt": "dropped\n", "sub/x.bin": "x",
                    ".dockerignore": "drop.txt\nsub\n"})
    archive = tmp_path / "out" / "image.tar"
    built = _build_to(ctx, "ignore-test:1", Recorder(), labels={"io.example.k": "v 1"},
                      output=f"oci-archive:{archive}", storage=storage)
    files, _ = _oci_archive_contents(archive)
    assert files["ctx/keep.txt"] == b"kept\n"
    assert "ctx/drop.txt" not in files and "ctx/sub/x.bin" not in files
    assert (bb.image_labels("ignore-test:1", storage=storage) or {})["io.example.k"] == "v 1"
    assert bb.image_labels("localhost/not-there:1", storage=storage) is None
    # The archive is a base other builds can start from, under a name of our choosing. Its ID
    # is its OCI config's digest: the OCI transport rewrites the Docker-format config, so it is
    # not `built` (docker-archive keeps it: see the leak test).
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile(  # type: ignore[union-attr]
            "blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]).read())
    again = bb.ensure_image(f"oci-archive:{archive}", storage=storage, name="from-archive:1")
    assert again == manifest["config"]["digest"] != built
    assert bb.image_id("from-archive:1", storage=storage) == again
    assert (bb.image_labels("from-archive:1", storage=storage) or {})["io.example.k"] == "v 1"


def _leaky_context(root: Path, base: str) -> Path:
    """A builder stage that uses an index URL and a proxy; the final stage copies its result."""
    return _context(root, (
        f"FROM {base} AS builder\n"
        "ARG PIP_INDEX_URL\n"
        "RUN echo \"index=$PIP_INDEX_URL proxy=$HTTP_PROXY\" > /tmp/seen && "
        "test -n \"$PIP_INDEX_URL\" && test -n \"$HTTP_PROXY\" && echo built-ok > /tmp/result\n"
        f"FROM {base}\n"
        "COPY --from=builder /tmp/result /result\n"
        "RUN cat /result > /result.copy\n"
    ))


@pytest.mark.docker
def test_build_args_stay_in_the_builder_stage_and_docker_loads_the_archive(
        tmp_path: Path, storage: Storage, tiny: str) -> None:
    ctx = _leaky_context(tmp_path / "ctx", tiny)
    index = f"https://user:{SECRET}@pypi.example/simple"
    proxy = f"http://user:{PROXY_SECRET}@127.0.0.1:9/"
    oci, dock = tmp_path / "image.oci.tar", tmp_path / "image.docker.tar"
    tag = "localhost/triton-packager-test/leak:1"
    rec = Recorder()
    built = _build_to(ctx, tag, rec, {"PIP_INDEX_URL": index, "HTTP_PROXY": proxy},
                      output=f"oci-archive:{oci}", storage=storage)
    bb.export_image(built, f"docker-archive:{dock}", name=tag, storage=storage)
    files, archived_history = _oci_archive_contents(oci)
    # The builder stage saw both values: /result exists only when they arrived.
    assert files["result"] == b"built-ok\n"
    history = _history(tag, storage)
    for secret in (SECRET, PROXY_SECRET, "PIP_INDEX_URL", "pypi.example"):
        assert not [h for h in history + archived_history if secret in h], secret
        for raw in (oci.read_bytes(), dock.read_bytes()):
            assert secret.encode() not in raw  # compressed layers: checked unpacked below
    for name, data in files.items():
        assert SECRET.encode() not in data and PROXY_SECRET.encode() not in data, name
    assert "tmp/seen" not in files
    # docker-archive: a valid image for the Docker engine, same ID, runs.
    docker = shutil.which("docker")
    assert docker is not None
    loaded = subprocess.run([docker, "load", "-i", str(dock)], capture_output=True, text=True,
                            timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    try:
        got = subprocess.run([docker, "image", "inspect", "--format", "{{.Id}}", tag],
                             capture_output=True, text=True, timeout=60)
        assert got.stdout.strip() == built
        out = subprocess.run([docker, "run", "--rm", tag, "/bin/cat", "/result.copy"],
                             capture_output=True, text=True, timeout=120)
        assert out.stdout == "built-ok\n", out.stderr
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)


@pytest.mark.docker
def test_the_leak_check_sees_an_argument_the_final_stage_uses(tmp_path: Path, storage: Storage,
                                                             tiny: str) -> None:
    """Control for the test above: the same history check catches a value that does leak."""
    ctx = _context(tmp_path / "ctx", f"FROM {tiny}\nARG PIP_INDEX_URL\nRUN test -n \"$PIP_INDEX_URL\"\n")
    tag = "localhost/triton-packager-test/leaks:1"
    bb.build_image(ctx, tag, Recorder(), {"PIP_INDEX_URL": f"https://u:{SECRET}@x/"},
                   storage=storage)
    assert [h for h in _history(tag, storage) if SECRET in h]


@pytest.mark.docker
def test_only_given_proxies_reach_the_build(tmp_path: Path, storage: Storage, tiny: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The packager's own environment is not the build's: a proxy set there and not given as a
    build argument reaches no RUN step (buildah passes them through by default)."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://u:{PROXY_SECRET}@127.0.0.1:9/")
    monkeypatch.setenv("https_proxy", f"http://u:{PROXY_SECRET}@127.0.0.1:9/")
    ctx = _context(tmp_path / "ctx", f"FROM {tiny}\n"
                   "RUN test -z \"$HTTPS_PROXY$https_proxy\" && test -n \"$HTTP_PROXY\"\n")
    bb.build_image(ctx, "localhost/triton-packager-test/proxy:1", Recorder(),
                   {"HTTP_PROXY": "http://given:1/"}, storage=storage, nocache=True)


# --- a real registry with htpasswd authentication ---------------------------------------------

@pytest.mark.docker
def test_push_with_an_auth_file_records_the_registry_digest(tmp_path: Path, storage: Storage,
                                                           tiny: str) -> None:
    password = "pw-" + SECRET
    with registry(tmp_path / "registry", user="ci", password=password) as r:
        reg = r.host
        ctx = _context(tmp_path / "ctx", f"FROM {tiny}\nCOPY a.txt /a.txt\n", {"a.txt": "p\n"})
        bb.build_image(ctx, "push-test:1", Recorder(), storage=storage)
        good = authfile(tmp_path / "good.json", reg, "ci", password)
        bad = authfile(tmp_path / "bad.json", reg, "ci", "wrong")
        with pytest.raises(PushError) as info:
            bb.push("push-test:1", f"{reg}/team/m:1", authfile=bad, tls_verify=False,
                    storage=storage)
        assert info.value.exit_code == 5
        assert "wrong" not in info.value.message and password not in str(info.value)
        digest = bb.push("push-test:1", f"{reg}/team/m:1", authfile=good, tls_verify=False,
                         storage=storage)
        assert digest.startswith("sha256:") and len(digest) == 71
        req = urllib.request.Request(f"http://{reg}/v2/team/m/manifests/1", method="HEAD", headers={
            "Authorization": "Basic " + base64.b64encode(f"ci:{password}".encode()).decode(),
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                      "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Docker-Content-Digest"] == digest
    with pytest.raises(PushError):  # the registry is down now
        bb.push("push-test:1", f"{reg}/team/m:2", authfile=good, tls_verify=False,
                storage=storage, timeout=60)


# --- the packager's own Dockerfile, built by buildah, served by Triton ------------------------

@pytest.fixture(scope="session")
def cpu_base(storage: Storage) -> str:
    """The local CPU Triton base, copied from the Docker engine into the test storage."""
    docker = shutil.which("docker")
    have = docker is not None and subprocess.run(
        [docker, "image", "inspect", LOCAL_CPU_IMAGE], capture_output=True, timeout=60
    ).returncode == 0
    assert have, "run `triton-packager base-image` (or `make package`) first"
    image = bb.ensure_image(f"docker-daemon:{LOCAL_CPU_IMAGE}", storage=storage)
    got = subprocess.run([str(docker), "image", "inspect", "--format", "{{.Id}}", LOCAL_CPU_IMAGE],
                         capture_output=True, text=True, timeout=60).stdout.strip()
    assert image == got  # the same image: its ID is its config's digest in both stores
    return LOCAL_CPU_IMAGE


def _dockerfile_phase(model: Path, out: Path, *extra: str) -> Path:
    from packager.cli import main

    code = main(["dockerfile", str(model), "-o", str(out), "-q", "--base-image", LOCAL_CPU_IMAGE,
                 *extra])
    assert code == 0
    return out / "context"


@pytest.mark.docker
@pytest.mark.serving
def test_generated_python_example_builds_with_buildah_and_serves(
        tmp_path: Path, storage: Storage, cpu_base: str, python_model: Path) -> None:

    from packager.executor.container import serve

    (python_model / "scale.json").write_text('{"scale": 3.0}')
    ctx = _dockerfile_phase(python_model, tmp_path / "out")
    tag = "localhost/triton-packager-test/add-sub:buildah"
    archive = tmp_path / "image.tar"
    built = _build_to(ctx, tag, Recorder(), output=f"docker-archive:{archive}",
                      storage=storage)
    labels = bb.image_labels(tag, storage=storage) or {}
    assert labels["io.triton-packager.model.name"] == "add-sub"
    history = " ".join(_history(tag, storage))
    assert "HEALTHCHECK" in history  # kept: the image is in Docker's format
    docker = str(shutil.which("docker"))
    loaded = subprocess.run([docker, "load", "-i", str(archive)], capture_output=True,
                            text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr
    try:
        health = subprocess.run([docker, "image", "inspect", "--format",
                                 "{{.Id}} {{json .Config.Healthcheck.Test}}", tag],
                                capture_output=True, text=True, timeout=60).stdout
        assert health.split()[0] == built and "health/ready" in health
        a = np.array([1.0, 2.0, 3.0, 4.5], dtype=np.float32)
        b = np.array([0.5, -1.0, 2.0, 4.0], dtype=np.float32)
        with serve(tag) as running:
            out0, out1 = infer_add_sub(running.http_url, a, b)
        np.testing.assert_allclose(out0, (a + b) * 3.0)
        np.testing.assert_allclose(out1, (a - b) * 3.0)
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)


@pytest.mark.docker
def test_generated_requirements_build_leaks_no_index_proxy_or_ca(
        tmp_path: Path, storage: Storage, cpu_base: str, python_model: Path) -> None:
    """The packager's builder stage (pip with --pip-index-url, --ca-bundle, proxies) built by
    buildah: the package is installed, nothing of the secrets reaches a layer or the history."""
    (python_model / "requirements.txt").write_text("mpmath==1.3.0\n")
    marker = b"# triton-packager-buildah-leak-marker-31c7\n"
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_bytes(marker + Path("/etc/ssl/certs/ca-certificates.crt").read_bytes())
    proxy = f"http://user:{PROXY_SECRET}@127.0.0.1:9/"  # never used: NO_PROXY covers all hosts
    index = "https://pypi.org/simple"
    ctx = _dockerfile_phase(python_model, tmp_path / "out", "--pip-index-url", index,
                            "--ca-bundle", str(bundle), "--http-proxy", proxy, "--no-proxy", "*")
    archive = tmp_path / "image.tar"
    tag = "localhost/triton-packager-test/req:1"
    _build_to(ctx, tag, Recorder(), {"PIP_INDEX_URL": index, "HTTP_PROXY": proxy, "NO_PROXY": "*"},
              output=f"oci-archive:{archive}", storage=storage)
    files, history = _oci_archive_contents(archive)
    # one environment per distinct requirements.txt (envs/N), as the docker path builds it
    assert any(n.startswith("opt/triton-packager/envs/") and "/mpmath/" in n for n in files)
    joined = " ".join(history + _history(tag, storage))
    for secret in (PROXY_SECRET, "triton-packager-ca", "PIP_INDEX_URL", "pypi.org"):
        assert secret not in joined, secret
    assert not [n for n in files if "triton-packager-ca" in n or "build-secrets" in n]
    for name, data in files.items():
        assert marker.strip() not in data and PROXY_SECRET.encode() not in data, name


@pytest.mark.docker
def test_import_rootfs_makes_an_image_without_an_engine(tmp_path: Path, storage: Storage) -> None:
    """What `base-image --builder buildah` does with its debootstrap tree (here a tiny one)."""
    rootfs = _tiny_rootfs(tmp_path / "rootfs")
    tar_path = tmp_path / "rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        for child in sorted(rootfs.iterdir()):
            tar.add(child, arcname=child.name)
    ref = "localhost/triton-packager-test/imported:1"
    got = bb.import_rootfs(tar_path, ref, env=("GREETING=hi there",), workdir="/tmp",
                           labels={"io.example.recipe": "abc"}, cmd=("/bin/sh", "-c", "echo"),
                           storage=storage)
    assert got == bb.image_id(ref, storage=storage)
    assert (bb.image_labels(ref, storage=storage) or {})["io.example.recipe"] == "abc"
    inspected = json.loads(subprocess.run(
        ["buildah", *storage.flags(), "inspect", "--type", "image", ref], capture_output=True,
        text=True, check=True, timeout=60).stdout)["Docker"]["config"]
    assert "GREETING=hi there" in inspected["Env"]
    assert inspected["Cmd"] == ["/bin/sh", "-c", "echo"] and inspected["WorkingDir"] == "/tmp"
    archive = tmp_path / "imported.tar"
    bb.export_image(ref, f"oci-archive:{archive}", name=ref, storage=storage)
    files, _ = _oci_archive_contents(archive)
    assert "bin/sh" in files
    # no working container is left behind
    left = subprocess.run(["buildah", *storage.flags(), "containers", "--quiet"],
                          capture_output=True, text=True, timeout=60).stdout
    assert left.strip() == ""
