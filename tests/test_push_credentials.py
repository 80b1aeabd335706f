"""Builders and pushes with credentials: `package --builder`, `push` with an auth file or a
username and password from the environment or files, a registry with its own CA, and the
results Tekton reads (IMAGE_URL, IMAGE_DIGEST).

The real-registry tests run Debian's docker-registry on 127.0.0.1 with htpasswd authentication
and, for buildah, TLS from a CA the test makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e import authfile, manifest_digest, registry
from hypothesis import given, settings
from hypothesis import strategies as st

from packager.basechoice import LOCAL_CPU_IMAGE, split_base_source
from packager.cli import main
from packager.errors import InputError
from packager.executor.images.builder import Credentials, registry_host
from packager.executor.push import (
    ENV_PASSWORD,
    ENV_USERNAME,
    check_registry,
    resolve_credentials,
)
from packager.result import ModelEntry, ResultDocument

SECRET = "s3cr3t-Pa55word-that-must-not-leak"


def _result(out: Path, image: str = "add-sub-1:abc", builder: str = "docker",
            pushed_image: str | None = None) -> str:
    out.mkdir(parents=True, exist_ok=True)
    text = ResultDocument(image=image, models=(ModelEntry("add-sub", (1,), "python"),),
                          base_image=LOCAL_CPU_IMAGE, dockerfile_sha256="0" * 64,
                          builder=builder, pushed_image=pushed_image).to_json()
    (out / "result.json").write_text(text)
    return text


# --- credentials: where they come from, and that they never show -------------------------------

def test_credentials_come_from_the_first_source_found(tmp_path: Path) -> None:
    auth = authfile(tmp_path / "auth.json", "r.example.com", "u", SECRET)
    given_file = resolve_credentials(auth, {ENV_USERNAME: "x", ENV_PASSWORD: "y"})
    assert given_file.authfile == auth and given_file.username is None
    env = resolve_credentials(None, {ENV_USERNAME: "ci", ENV_PASSWORD: SECRET,
                                     "REGISTRY_AUTH_FILE": str(auth)})
    assert (env.username, env.password) == ("ci", SECRET)
    assert SECRET not in repr(env) and SECRET not in env.source
    (tmp_path / "pw").write_text(SECRET + "\n")  # a mounted Secret ends in a newline
    (tmp_path / "user").write_text("ci")
    files = resolve_credentials(None, {f"{ENV_USERNAME}_FILE": str(tmp_path / "user"),
                                       f"{ENV_PASSWORD}_FILE": str(tmp_path / "pw")})
    assert (files.username, files.password) == ("ci", SECRET)
    assert resolve_credentials(None, {"REGISTRY_AUTH_FILE": str(auth)}).authfile == auth
    (tmp_path / "cfg").mkdir()
    authfile(tmp_path / "cfg" / "config.json", "r.example.com", "u", "p")
    assert resolve_credentials(None, {"DOCKER_CONFIG": str(tmp_path / "cfg")}).authfile == \
        tmp_path / "cfg" / "config.json"
    assert resolve_credentials(None, {}) == Credentials()


@pytest.mark.parametrize("environ", [
    {ENV_USERNAME: "ci"},
    {ENV_PASSWORD: SECRET},
    {ENV_USERNAME: "ci", ENV_PASSWORD: SECRET, f"{ENV_PASSWORD}_FILE": "/x"},
    {ENV_USERNAME: "c:i", ENV_PASSWORD: SECRET},
    {ENV_USERNAME: "ci", ENV_PASSWORD: SECRET + "\nmore"},
    {ENV_USERNAME: "ci", f"{ENV_PASSWORD}_FILE": "/nonexistent/pw"},
], ids=["no-password", "no-username", "both-value-and-file", "colon-in-user", "newline",
        "unreadable-file"])
def test_bad_credentials_are_refused_without_showing_them(environ: dict[str, str]) -> None:
    with pytest.raises(InputError) as info:
        resolve_credentials(None, environ)
    assert info.value.exit_code == 2
    assert SECRET not in str(info.value) and "fix:" in str(info.value)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"auths": 3}'],
                         ids=["not-json", "not-utf8", "not-object", "auths-not-object"])
def test_a_bad_auth_file_is_refused_without_echoing_it(tmp_path: Path, content: bytes) -> None:
    auth = tmp_path / "auth.json"
    auth.write_bytes(content + SECRET.encode())
    with pytest.raises(InputError) as info:
        resolve_credentials(auth, {})
    assert info.value.exit_code == 2 and SECRET not in str(info.value)
    assert str(auth) in str(info.value)


# A password that is part of the repr's own words ("authfile", "source", the variable names)
# would be "found" without being shown: such strings say nothing about a leak.
_REPR_WORDS = repr(Credentials(None, "ci", None, f"${ENV_USERNAME} and ${ENV_PASSWORD}"))


@given(st.text(min_size=6, max_size=60).filter(lambda s: s.strip() == s and s not in _REPR_WORDS))
def test_a_password_never_appears_in_a_message_or_repr(password: str) -> None:
    environ = {ENV_USERNAME: "ci", ENV_PASSWORD: password}
    try:
        creds = resolve_credentials(None, environ)
    except InputError as err:
        assert password not in str(err)
        return
    assert password not in repr(creds) and password not in creds.source


# --- the registry reference -------------------------------------------------------------------

@pytest.mark.parametrize("registry_ref", [
    "https://registry.example.com", "registry.example.com/team name", "Registry.Example.com",
    "registry.example.com/Team", "registry.example.com\n", "myregistry", "reg.example.com:99999",
    "127.0.0.1:5000/$(params.x)", "reg.example.com/'quoted'",
])
def test_bad_registry_references_are_refused(registry_ref: str) -> None:
    with pytest.raises(InputError) as info:
        check_registry(registry_ref)
    assert info.value.exit_code == 2 and "fix:" in str(info.value)


# No deadline: the check takes microseconds, but a first call on a loaded machine (two cores
# shared with a mutation run) took 320 ms and failed Hypothesis' default 200 ms deadline.
@settings(deadline=None)
@given(st.text(max_size=40), st.sampled_from(["://", " ", "\n", "A", "$(", "'", '"', "\t"]),
       st.text(max_size=10))
def test_registry_with_a_scheme_space_capital_or_shell_mark_is_refused(
        head: str, mark: str, tail: str) -> None:
    with pytest.raises(InputError):
        check_registry(head + mark + tail)


def test_good_registry_references_pass() -> None:
    for ref in ("registry.example.com", "127.0.0.1:5000", "localhost:5000/team/sub",
                "[::1]:5000", "reg.example.com/team/"):
        check_registry(ref)


def test_registry_host_names_the_auth_file_key() -> None:
    assert registry_host("127.0.0.1:5000/team/m:1") == "127.0.0.1:5000"
    assert registry_host("reg.example.com/m") == "reg.example.com"
    assert registry_host("team/m:1") == "docker.io"


# --- --base-image sources ---------------------------------------------------------------------

def test_base_image_sources_name_what_from_uses() -> None:
    assert split_base_source(LOCAL_CPU_IMAGE) == (LOCAL_CPU_IMAGE, None)
    assert split_base_source(f"docker-daemon:{LOCAL_CPU_IMAGE}")[0] == LOCAL_CPU_IMAGE
    name, source = split_base_source(f"oci-archive:/ws/base.tar:{LOCAL_CPU_IMAGE}")
    assert (name, source) == (LOCAL_CPU_IMAGE, f"oci-archive:/ws/base.tar:{LOCAL_CPU_IMAGE}")
    derived, _ = split_base_source("oci-archive:/ws/base.tar")
    assert derived.startswith("localhost/triton-packager/base-archive:")
    assert derived != split_base_source("oci-archive:/ws/other.tar")[0]
    for bad in ("oci-archive:", "oci-archive:/x.tar:Bad Name", "docker-daemon:UPPER"):
        with pytest.raises(InputError):
            split_base_source(bad)


# --- bad input to push and package: exit 2/3, nothing pushed, nothing written ----------------

def _push_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str,
                  builder: str = "docker", code: int = 2) -> str:
    out = tmp_path / "out"
    before = _result(out, builder=builder)
    url = tmp_path / "url"
    assert main(["push", "-o", str(out), "--image-url-file", str(url), *args]) == code
    err = capsys.readouterr().err
    assert (out / "result.json").read_text() == before
    assert not url.exists()
    assert "Traceback" not in err and "fix:" in err
    return err


def test_a_pushed_result_is_not_prefixed_with_another_registry(tmp_path: Path,
                                                               capsys) -> None:
    """After a push, result.json's image is the pushed reference: --registry for another
    registry would push host-b/team/host-a/team/name (a repository nobody asked for)."""
    out = tmp_path / "out"
    pushed = "127.0.0.1:5000/team/add-sub-1:abc"
    before = _result(out, image=pushed, pushed_image=f"127.0.0.1:5000/team/add-sub-1@sha256:{'a' * 64}")
    assert main(["push", "-o", str(out), "--registry", "127.0.0.1:6000/other"]) == 2
    err = capsys.readouterr().err
    assert "was pushed already" in err and "127.0.0.1:6000/other/127.0.0.1:5000" in err
    assert "Traceback" not in err and "fix:" in err
    assert (out / "result.json").read_text() == before


def test_push_refuses_an_unreadable_or_not_json_auth_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "auth.json").write_text("{" + SECRET)
    err = _push_refused(tmp_path, capsys, "--registry", "127.0.0.1:1",
                        "--authfile", str(tmp_path / "auth.json"))
    assert "not JSON" in err and SECRET not in err
    err = _push_refused(tmp_path, capsys, "--registry", "127.0.0.1:1", "--authfile",
                        str(tmp_path))
    assert "cannot be read" in err


def test_push_refuses_a_registry_with_a_scheme(tmp_path: Path, capsys) -> None:
    err = _push_refused(tmp_path, capsys, "--registry", "https://127.0.0.1:5000")
    assert "scheme" in err


def test_push_refuses_what_the_docker_engine_cannot_honour(tmp_path: Path, capsys) -> None:
    # only the engine's own push (--pusher builder): the layers pusher talks to the registry
    # itself, with the CA given
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    err = _push_refused(tmp_path, capsys, "--registry", "127.0.0.1:1", "--ca-bundle", str(ca),
                        "--pusher", "builder")
    assert "/etc/docker/certs.d/" in err and "--builder buildah" in err
    err = _push_refused(tmp_path, capsys, "--registry", "127.0.0.1:1", "--tls-verify", "false",
                        "--pusher", "builder")
    assert "insecure-registries" in err


def test_push_refuses_a_ca_bundle_that_is_not_pem(tmp_path: Path, capsys) -> None:
    (tmp_path / "ca.crt").write_text("not a certificate")
    err = _push_refused(tmp_path, capsys, "--registry", "127.0.0.1:1", "--ca-bundle",
                        str(tmp_path / "ca.crt"), builder="buildah")
    assert "PEM" in err


def test_push_refuses_a_result_file_it_cannot_write(tmp_path: Path, capsys) -> None:
    err = _push_refused(tmp_path, capsys, "--registry", "127.0.0.1:1", "--image-digest-file",
                        str(tmp_path / "missing-dir" / "digest"))
    assert "missing-dir" in err


def test_unknown_builder_is_refused(tmp_path: Path, capsys, python_model: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["package", str(python_model), "-o", str(out), "--builder", "kaniko"])
    assert info.value.code == 2
    assert "invalid choice: 'kaniko'" in capsys.readouterr().err
    assert not out.exists()


def test_missing_buildah_names_how_to_install_it_and_writes_nothing(
        tmp_path: Path, capsys, python_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = tmp_path / "out"
    code = main(["package", str(python_model), "-o", str(out), "--builder", "buildah",
                 "--base-image", LOCAL_CPU_IMAGE])
    err = capsys.readouterr().err
    assert code == 3 and "apt-get install -y buildah" in err and "Traceback" not in err
    assert not out.exists()


def test_auto_without_any_builder_says_so_and_writes_nothing(
        tmp_path: Path, capsys, python_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    out = tmp_path / "out"
    code = main(["package", str(python_model), "-o", str(out), "--base-image", LOCAL_CPU_IMAGE])
    err = capsys.readouterr().err
    assert code == 3 and "no image builder here" in err and "dockerd" in err
    assert not out.exists()


def test_image_archives_need_buildah(tmp_path: Path, capsys, python_model: Path) -> None:
    out = tmp_path / "out"
    code = main(["package", str(python_model), "-o", str(out), "--builder", "docker",
                 "--base-image", f"oci-archive:{tmp_path}/base.tar:{LOCAL_CPU_IMAGE}"])
    err = capsys.readouterr().err
    if "cannot reach the Docker engine" in err:  # the unit tier runs without an engine
        assert code == 3
    else:
        assert code == 2 and "--builder buildah" in err
    assert not out.exists()


# --- real registries --------------------------------------------------------------------------

@pytest.mark.docker
def test_buildah_package_and_push_to_a_tls_registry_with_credentials(
        tmp_path: Path, capsys, python_model: Path, buildah_env,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    assert main(["package", str(python_model), "-o", str(out), "--builder", "buildah",
                 "--base-image", f"docker-daemon:{LOCAL_CPU_IMAGE}", "--tag", "push-me:1"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["builder"] == "buildah" and result["image"] == "push-me:1"
    capsys.readouterr()
    # nothing changed: the package phase is not redone, the image is still in storage
    assert main(["package", str(python_model), "-o", str(out), "--builder", "buildah",
                 "--base-image", f"docker-daemon:{LOCAL_CPU_IMAGE}", "--tag", "push-me:1"]) == 0
    assert "package: up to date" in capsys.readouterr().err
    with registry(tmp_path / "reg", user="ci", password=SECRET, tls=True) as reg:
        assert reg.ca is not None
        url, digest_file = tmp_path / "IMAGE_URL", tmp_path / "IMAGE_DIGEST"
        push = ["push", "-o", str(out), "--registry", f"{reg.host}/team",
                "--image-url-file", str(url), "--image-digest-file", str(digest_file)]
        before = (out / "result.json").read_text()

        monkeypatch.setenv(ENV_USERNAME, "ci")
        monkeypatch.setenv(ENV_PASSWORD, "wrong-password")
        assert main([*push, "--ca-bundle", str(reg.ca)]) == 5  # wrong credentials
        err = capsys.readouterr().err
        assert "wrong-password" not in err and "Traceback" not in err
        monkeypatch.setenv(ENV_PASSWORD, SECRET)
        assert main(push) == 5  # the registry's CA is unknown without --ca-bundle
        assert "certificate" in capsys.readouterr().err
        assert (out / "result.json").read_text() == before
        assert not url.exists() and not digest_file.exists()

        assert main([*push, "--ca-bundle", str(reg.ca)]) == 0
        captured = capsys.readouterr()
        digest = digest_file.read_text()
        assert url.read_text() == f"{reg.host}/team/push-me:1"
        assert digest.startswith("sha256:") and len(digest) == 71
        assert manifest_digest(reg, "team/push-me", "1", "ci", SECRET) == digest
        doc = json.loads((out / "result.json").read_text())
        assert doc["image"] == f"{reg.host}/team/push-me:1"
        assert doc["pushed_image"] == f"{reg.host}/team/push-me@{digest}"
        assert all(isinstance(v, str) for v in doc.values())
        for text in (captured.out, captured.err, (out / "result.json").read_text()):
            assert SECRET not in text
        # pushed again (a retried Task on a kept volume): result.json names the pushed
        # reference now, which the push tagged in buildah's storage
        assert main([*push, "--ca-bundle", str(reg.ca)]) == 0
        assert digest_file.read_text() == digest
        monkeypatch.delenv(ENV_PASSWORD)  # verify needs no credentials: it runs the local image
        assert main(["verify", "-o", str(out)]) == 0
        monkeypatch.setenv(ENV_PASSWORD, SECRET)
    monkeypatch.delenv(ENV_USERNAME)
    monkeypatch.delenv(ENV_PASSWORD)
    auth = authfile(tmp_path / "auth.json", reg.host, "ci", SECRET)
    assert main([*push, "--ca-bundle", str(reg.ca), "--authfile", str(auth)]) == 5  # down
    assert url.read_text() == f"{reg.host}/team/push-me:1"  # the earlier push's, unchanged


def test_push_refuses_empty_file_options(tmp_path: Path, capsys) -> None:
    for flag in ("--authfile", "--ca-bundle", "--image-url-file", "--image-digest-file"):
        err = _push_refused(tmp_path, capsys, "--registry", "127.0.0.1:1", flag, "")
        assert f"{flag} is empty" in err


def test_push_with_buildah_missing_is_an_environment_fault_before_the_lock(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    err = _push_refused(tmp_path, capsys, "--registry", "127.0.0.1:1", builder="buildah", code=3)
    assert "apt-get install -y buildah" in err
    assert not list((tmp_path).glob(".out.lock*")) and not list((tmp_path / "out").glob("*lock*"))


def test_base_image_output_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    existing = tmp_path / "base.tar"
    existing.write_bytes(b"someone's file")
    assert main(["base-image", "--output", f"oci-archive:{existing}"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert existing.read_bytes() == b"someone's file"


@pytest.mark.docker
def test_an_oci_archive_base_without_a_name_inside_is_read_once(
        tmp_path: Path, capsys, python_model: Path, buildah_env, storage) -> None:
    from packager.executor.images import buildah as bb

    bb.ensure_image(f"docker-daemon:{LOCAL_CPU_IMAGE}", storage=storage)
    archive = tmp_path / "base.tar"  # as `buildah push IMAGE oci-archive:PATH` writes it: no name
    bb.export_image(LOCAL_CPU_IMAGE, f"oci-archive:{archive}", storage=storage)
    out = tmp_path / "out"
    args = ["package", str(python_model), "-o", str(out), "--base-image",
            f"oci-archive:{archive}:{LOCAL_CPU_IMAGE}", "--tag", "from-archive:1"]
    assert main(args) == 0  # auto picks buildah: only it reads an image file
    assert json.loads((out / "result.json").read_text())["builder"] == "buildah"
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "up to date with" in err and "package: up to date" in err
    # a damaged archive: exit 3 before anything is written
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not an archive" * 100)
    out2 = tmp_path / "out2"
    assert main(["package", str(python_model), "-o", str(out2), "--base-image",
                 f"oci-archive:{bad}:{LOCAL_CPU_IMAGE}"]) == 3
    assert "Traceback" not in capsys.readouterr().err
    assert not out2.exists()


@pytest.mark.docker
def test_a_failed_docker_push_leaves_a_tag_that_was_there(
        tmp_path: Path, python_model: Path, client, images) -> None:
    out = tmp_path / "out"
    assert main(["package", str(python_model), "-o", str(out), "--builder", "docker",
                 "--base-image", LOCAL_CPU_IMAGE, "--tag", "keep-me:1"]) == 0
    images.append("keep-me:1")
    # the tag the push would add already names someone's image
    theirs = client.images.get(LOCAL_CPU_IMAGE)
    theirs.tag("127.0.0.1:1/keep-me", "1")
    images.append("127.0.0.1:1/keep-me:1")
    assert main(["push", "-o", str(out), "--registry", "127.0.0.1:1"]) == 5  # nothing listens
    assert client.images.get("127.0.0.1:1/keep-me:1").id == theirs.id  # theirs again


def test_push_names_a_tampered_builder_in_result_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    text = _result(out).replace('"builder": "docker"', '"builder": "kaniko"')
    (out / "result.json").write_text(text)
    assert main(["push", "-o", str(out), "--registry", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "result.json" in err and "field 'builder'" in err and "kaniko" in err
    assert (out / "result.json").read_text() == text
