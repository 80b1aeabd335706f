"""Issue 21, the config-level half: nothing wrong accepted, the mutants that survived the fast
tier, the "also noticed" items and the two newcomer paths. Every test here is a unit test (no
engine); each refusal is checked for exit 2, the file and field named, a fix, no traceback and
nothing written, and each rule has an accepted neighbour one step away, so a check that refuses
everything fails too.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from models import PYTHON_CONFIG, PYTHON_MODEL, onnx_add_model, write_tree
from test_push_credentials import _result
from test_repository import IDENTITY_CONFIG, _repo

from packager.baseimage import LOCAL_CPU_IMAGE
from packager.cli import main
from packager.dockerfile import _dq, check_labels
from packager.errors import BuildError, InputError, bounded, redact
from packager.executor import artifact, buildah_build, builders, digestcache
from packager.executor.builders import FALLBACK_NOTE, BuildahBuilder
from packager.executor.digestcache import DigestCache
from packager.executor.phases import Workspace
from packager.executor.reader import read_input
from packager.executor.report import Reporter
from packager.manifest import VERSION_MAX
from packager.modelconfig import parse_config
from packager.pipeline import Options, analyze_package
from packager.secretfiles import check_input_files, secret_reason

PY_CONFIG = PYTHON_CONFIG.format(name="model")
SECRET = "Pw-s3cr3t-123"


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], out: Path,
             *fragments: str, code: int = 2) -> str:
    got = main([*args, "--output", str(out)])
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err and "fix:" in err, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} missing from:\n{err}"
    assert not out.exists(), "a refused run must write nothing"
    return err


def _model(tmp: Path, extra: dict[str, str | bytes | None] | None = None,
           config: str = PY_CONFIG) -> Path:
    return write_tree(tmp / "model", {"model.py": PYTHON_MODEL, "config.pbtxt": config,
                                      **(extra or {})})


# --- A. version policies that serve nothing, versions beyond int64 --------------------------

@pytest.mark.parametrize(("policy", "says"), [
    ("version_policy: { specific: { } }", "'specific' with no versions"),
    ("version_policy: { specific: { versions: [ ] } }", "'specific' with no versions"),
    ("version_policy: { latest: { num_versions: 0 } }", "num_versions' is 0"),
    ("version_policy: { latest: { } }", "num_versions' is 0"),  # the field's default is 0
])
def test_a_version_policy_that_serves_nothing_is_refused(
        policy: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError) as refused:
        parse_config(PY_CONFIG + policy + "\n")
    assert says in str(refused.value) and "config.pbtxt" in str(refused.value)
    assert "version_policy" in (refused.value.fix or "")
    root = _model(tmp_path, config=PY_CONFIG + policy + "\n")
    _refused(capsys, ["dockerfile", str(root)], tmp_path / "out", says, "serves no version")


@pytest.mark.parametrize("policy", [
    "version_policy: { specific: { versions: [ 1 ] } }",
    "version_policy: { latest: { num_versions: 1 } }",
    "version_policy: { latest: { num_versions: 2 } }",
    "version_policy: { all: { } }",
    "",
])
def test_a_version_policy_that_serves_a_version_is_accepted(policy: str) -> None:
    config = parse_config(PY_CONFIG + policy + "\n")
    assert config.served((1,)) == (1,)


@pytest.mark.parametrize(("change", "says"), [
    (("dims: [ 4 ]", "dims: [ 0 ]"), "not 0"),
    (("dims: [ 4 ]", "dims: [ 4, -3 ]"), "not -3"),
    (("OUTPUT0", "OUTPUT0\" data_type: TYPE_FP32 dims: [ 4 ] }, { name: \"OUTPUT0"),
     "output 'OUTPUT0' is declared twice"),
])
def test_dims_and_names_triton_refuses_are_refused(change: tuple[str, str], says: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_config(PY_CONFIG.replace(*change, 1))
    assert says in str(refused.value) and "config.pbtxt" in str(refused.value), refused.value
    assert parse_config(PY_CONFIG.replace("dims: [ 4 ]", "dims: [ -1, 1 ]")).inputs[0][2] == (-1, 1)


def test_a_version_directory_beyond_int64_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    too_big = str(VERSION_MAX + 1)  # 19 digits: VERSION_RE's length admits it
    files = _repo(**{"post/1/model.py": None})
    files[f"post/{too_big}/model.py"] = "x = 1\n"
    root = write_tree(tmp_path / "repo", files)
    _refused(capsys, ["dockerfile", str(root)], tmp_path / "out",
             f"'{too_big}'", "64-bit", str(VERSION_MAX))


def test_a_version_directory_at_int64_max_is_accepted(tmp_path: Path) -> None:
    files = {**_repo()}
    body = files.pop("pre/1/model.py")  # the ensemble asks for pre's latest, post's 1
    files[f"pre/{VERSION_MAX}/model.py"] = body
    package = analyze_package([read_input(write_tree(tmp_path / "repo", files))])
    assert {m.meta.name: m.versions for m in package.models}["pre"] == (VERSION_MAX,)


# --- B. mutants: dq, cross-ensemble cycles, the racy rule, bounded(), --json ----------------

@pytest.mark.parametrize("value", ['a"b', '"', "x$y", "a\\b", "`id`", "a\nb", "a\x1bb"])
def test_dq_refuses_what_ends_or_expands_a_value(value: str) -> None:
    with pytest.raises(InputError) as refused:
        _dq(value)
    assert "not allowed in a Dockerfile" in str(refused.value)


def test_dq_quotes_what_is_safe() -> None:
    assert _dq("org.example/v1 'x' #1") == "\"org.example/v1 'x' #1\""


def test_a_label_value_with_a_quote_and_no_newline_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The pinned example the issue asked for: a quote alone, nothing else unsafe."""
    root = _model(tmp_path)
    _refused(capsys, ["dockerfile", str(root), "--label", 'org.example.v=a"b',
                      "--base-image", LOCAL_CPU_IMAGE], tmp_path / "out", "not allowed")


def _cycle_repo() -> dict[str, str | bytes]:
    ens = ('name: "{name}"\nplatform: "ensemble"\nmax_batch_size: 0\n'
           'input [ {{ name: "X" data_type: TYPE_FP32 dims: [ 4 ] }} ]\n'
           'output [ {{ name: "Y" data_type: TYPE_FP32 dims: [ 4 ] }} ]\n'
           'ensemble_scheduling {{ step [ {{ model_name: "{other}" model_version: -1 '
           'input_map {{ key: "X" value: "X" }} output_map {{ key: "Y" value: "Y" }} }} ] }}\n')
    return {"ens-a/config.pbtxt": ens.format(name="ens-a", other="ens-b"),
            "ens-b/config.pbtxt": ens.format(name="ens-b", other="leaf"),
            "leaf/config.pbtxt": IDENTITY_CONFIG.format(name="leaf", i="X", o="Y", extra=""),
            "leaf/1/model.py": "x = 1\n"}


def test_two_ensembles_that_call_each_other_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _cycle_repo()
    files["ens-b/config.pbtxt"] = str(files["ens-b/config.pbtxt"]).replace('"leaf"', '"ens-a"')
    root = write_tree(tmp_path / "repo", files)
    _refused(capsys, ["dockerfile", str(root)], tmp_path / "out",
             "ensembles contain each other", "ens-a -> ens-b -> ens-a")


def test_an_ensemble_calling_an_ensemble_without_a_cycle_is_accepted(tmp_path: Path) -> None:
    package = analyze_package([read_input(write_tree(tmp_path / "repo", _cycle_repo()))])
    assert sorted(m.meta.name for m in package.models) == ["ens-a", "ens-b", "leaf"]


def _stat(mtime_ns: int, ctime_ns: int) -> os.stat_result:
    # (mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime) + the *_ns fields
    return os.stat_result((0o100644, 1, 2, 1, 0, 0, 10, 0, mtime_ns // 10**9, ctime_ns // 10**9,
                           0.0, 0.0, 0.0, 0, mtime_ns, ctime_ns))


@pytest.mark.parametrize(("m_age", "c_age", "cached"), [
    (10, 10, True),  # both older than the racy window: safe to reuse
    (10, 0, False),  # a backdated mtime (touch -d, os.utime): ctime still says "just now"
    (0, 10, False),  # written just now
    (digestcache.RACY_NS // 10**9, 10, False),  # exactly at the window's edge: not yet safe
])
def test_the_racy_rule_reads_mtime_and_ctime(m_age: int, c_age: int, cached: bool) -> None:
    started = 1_000 * 10**9
    cache = DigestCache(started_ns=started)
    st = _stat(started - m_age * 10**9, started - c_age * 10**9)
    cache.record(Path("/m/w.bin"), st, "a" * 64)
    assert ("/m/w.bin" in cache.used) is cached


def test_a_backdated_file_is_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end with the real racy window: a file rewritten and then backdated by hours
    (its ctime is now) is not cached, so the next run reads it again."""
    root = _model(tmp_path, {"weights.bin": b"w" * 4096})
    old = 1_600_000_000
    os.utime(root / "weights.bin", (old, old))
    seen: list[str] = []
    real = digestcache.DigestCache.record

    def spy(self: DigestCache, path: Path, st: os.stat_result, digest: str) -> None:
        real(self, path, st, digest)
        if str(path) in self.used:
            seen.append(path.name)

    monkeypatch.setattr(digestcache.DigestCache, "record", spy)
    Workspace(root, tmp_path / "out", Options(), Reporter("quiet")).run("detect")
    assert "weights.bin" not in seen


def test_bounded_masks_credentials_itself() -> None:
    for value in (f"https://user:{SECRET}@r.example.com/x", f"https://{SECRET}@r.example.com",
                  f"user:{SECRET}@r.example.com/img"):
        for quote in (True, False):
            shown = bounded(value, quote=quote)
            assert SECRET not in shown and "***@" in shown, shown
    assert bounded("https://r.example.com/x") == "'https://r.example.com/x'"  # nothing to mask
    assert bounded("x" * 500).endswith("(500 characters)")


def test_json_mode_prints_the_redacted_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def leak(self: Workspace, target: str) -> None:
        raise InputError(f"cannot use https://ci:{SECRET}@r.example.com/\x1b[31m", fix="x")

    monkeypatch.setattr(Workspace, "run", leak)
    assert main(["detect", str(_model(tmp_path)), "--json", "-o", str(tmp_path / "o")]) == 2
    out, err = capsys.readouterr()
    assert SECRET not in out + err and "***@" in err and "***@" in out
    assert "\x1b" not in out + err
    assert json.loads(out.strip().splitlines()[-1])["event"] == "error"
    assert redact(f"https://ci:{SECRET}@h") == "https://***@h"


# --- D. also noticed ------------------------------------------------------------------------

@pytest.mark.parametrize("path", [".env", ".env.production", ".ssh/id_rsa", "sub/.ssh/config",
                                  "id_ed25519", "tls/server.pem", "key.p12", ".aws/credentials",
                                  ".config/gcloud/adc.json", ".netrc", "sub/.git-credentials"])
def test_secret_files_are_refused(path: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert secret_reason(path) is not None
    root = _model(tmp_path, {path: "TOKEN=" + SECRET + "\n"})
    err = _refused(capsys, ["dockerfile", str(root), "--base-image", LOCAL_CPU_IMAGE],
                   tmp_path / "out", repr(path), "looks like a secret", "--allow-secret-files")
    assert SECRET not in err


@pytest.mark.parametrize("path", ["model.py", "env.txt", "ssh/notes", "keys.json", "my.env.bak",
                                  "pem", "tokenizer.model", "sub/.gitkeep", "monkey.keyring"])
def test_ordinary_names_are_not_secrets(path: str) -> None:
    assert secret_reason(path) is None


def test_secret_files_pass_with_the_flag_and_are_named_in_a_warning(tmp_path: Path) -> None:
    root = _model(tmp_path, {".env": "A=1\n", "tls/server.pem": "cert\n", ".cache/x": "1",
                             "sub/.gitkeep": ""})
    code = main(["dockerfile", str(root), "--allow-secret-files", "--base-image",
                 LOCAL_CPU_IMAGE, "-o", str(tmp_path / "out"), "-q"])
    assert code == 0
    assert (tmp_path / "out/model_repository/model/1/.env").read_text() == "A=1\n"
    warnings = check_input_files(read_input(root).entries, "model", allow_secrets=True)
    assert len(warnings) == 1
    assert all(n in warnings[0] for n in (".env", "tls/server.pem", ".cache/x"))
    assert ".gitkeep" not in warnings[0]


def test_other_dot_files_are_copied_with_a_warning(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = _model(tmp_path, {".cache/state": "1", ".vscode/settings.json": "{}"})
    assert main(["dockerfile", str(root), "--base-image", LOCAL_CPU_IMAGE,
                 "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and ".cache/state" in err and ".vscode/settings.json" in err
    root2 = _model(tmp_path / "clean")
    assert check_input_files(read_input(root2).entries, "m") == ()


def test_a_hardlink_to_a_file_outside_is_packaged_as_the_file_it_is(tmp_path: Path) -> None:
    """Documented, not refused: a hard link is not a reference but the file itself, placed in
    the input by someone allowed to read it; its other names cannot be found cheaply, and the
    packager's own output hardlinks every input, so a link count says nothing."""
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"outside bytes")
    root = _model(tmp_path)
    os.link(outside, root / "linked.bin")
    assert main(["repository", str(root), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out/model_repository/model/1/linked.bin").read_bytes() == b"outside bytes"


def test_a_sparse_file_is_packaged_at_its_full_size(tmp_path: Path) -> None:
    """Documented: image layers are tar streams, which Docker and buildah write densely, so a
    sparse file costs its apparent size in the image; the plan counts that size."""
    root = _model(tmp_path)
    with (root / "sparse.bin").open("wb") as fh:
        fh.truncate(8 << 20)
        fh.write(b"head")
    package = analyze_package([read_input(root)])
    entry = next(e for e in package.plan.models[0].entries if e.dest.endswith("/sparse.bin"))
    assert entry.size == 8 << 20


@pytest.mark.parametrize(("label", "says"), [
    ("org.opencontainers.image.title=evil", "the packager sets itself"),
    ("io.triton-packager.model.name=evil", "the packager sets itself"),
    ("io.triton-packager.weights.base-id=x", "the packager sets itself"),
    ("org.opencontainers.image.base.name=x", "the packager sets itself"),
])
def test_a_label_cannot_override_the_packagers_own(
        label: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(capsys, ["dockerfile", str(_model(tmp_path)), "--label", label,
                      "--base-image", LOCAL_CPU_IMAGE], tmp_path / "out", says,
             repr(label.split("=")[0]))


def test_a_label_key_given_twice_is_refused_and_own_keys_pass() -> None:
    with pytest.raises(InputError, match="given twice"):
        check_labels((("org.example.a", "1"), ("org.example.a", "2")))
    check_labels((("org.example.a", "1"), ("org.opencontainers.image.authors", "me"),
                  ("io.triton-packager-fan.x", "1")))


def _bomb(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model/weights.bin", b"\0" * size)
    return path


def test_a_zip_that_expands_past_the_ratio_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(artifact, "RATIO_FLOOR", 1 << 20)  # the rule, without 256 MiB of zeros
    archive = _bomb(tmp_path / "bomb.zip", 8 << 20)  # ~8 KiB that expand ~1000x
    assert archive.stat().st_size * 100 < 8 << 20
    out = tmp_path / "out"
    code = main(["setup", str(archive), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "100 times its own size" in err and "--max-ratio" in err, err
    assert "Traceback" not in err and not out.exists()
    assert main(["setup", str(archive), "-o", str(out), "--max-ratio", "0", "-q"]) == 0
    assert (out / "model/weights.bin").stat().st_size == 8 << 20


def test_an_archive_under_the_ratio_or_the_floor_is_accepted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Under the floor: 8 MiB of zeros in a tiny zip is accepted at the default floor.
    out = tmp_path / "small"
    assert artifact.unpack(str(_bomb(tmp_path / "z.zip", 8 << 20)), out, Reporter("quiet")) == out
    monkeypatch.setattr(artifact, "RATIO_FLOOR", 1 << 20)
    with zipfile.ZipFile(tmp_path / "real.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.bin", os.urandom(2 << 20))  # weights barely compress
    artifact.unpack(str(tmp_path / "real.zip"), tmp_path / "real", Reporter("quiet"))
    assert (tmp_path / "real/w.bin").stat().st_size == 2 << 20


def test_a_negative_max_ratio_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = _bomb(tmp_path / "a.zip", 10)
    assert main(["setup", str(archive), "-o", str(tmp_path / "o"), "--max-ratio", "-1"]) == 2
    assert "--max-ratio -1 is negative" in capsys.readouterr().err


def test_push_with_the_docker_engine_down_is_an_environment_fault(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 3, by design: the input (result.json, options) is fine; the machine is not."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    out = tmp_path / "out"
    before = _result(out, builder="docker")
    code = main(["push", "-o", str(out), "--registry", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "cannot reach the Docker engine" in err and "start dockerd" in err, err
    assert "Traceback" not in err
    assert (out / "result.json").read_text() == before


# --- E. newcomer paths ----------------------------------------------------------------------

def test_a_single_triton_model_folder_is_packaged_as_a_one_model_repository(
        tmp_path: Path) -> None:
    config = ('name: "mymodel"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
              'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },'
              ' { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
              'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')
    root = write_tree(tmp_path / "mymodel", {"config.pbtxt": config,
                                             "1/model.onnx": onnx_add_model()})
    out = tmp_path / "out"
    assert main(["repository", str(root), "-o", str(out), "-q"]) == 0
    repo = out / "model_repository"
    assert (repo / "mymodel/config.pbtxt").read_text() == config
    assert (repo / "mymodel/1/model.onnx").read_bytes() == onnx_add_model()
    assert sorted(p.name for p in repo.iterdir() if not p.name.startswith(".")) == ["mymodel"]


def test_a_model_folder_without_a_name_is_named_by_its_directory(tmp_path: Path) -> None:
    config = "\n".join(ln for ln in PY_CONFIG.splitlines() if not ln.startswith("name:")) + "\n"
    root = write_tree(tmp_path / "add-two", {"config.pbtxt": config, "1/model.py": PYTHON_MODEL,
                                             "2/model.py": PYTHON_MODEL})
    package = analyze_package([read_input(root)])
    assert [(m.meta.name, m.versions) for m in package.models] == [("add-two", (1, 2))]


def test_a_model_folder_whose_config_names_another_model_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "mymodel", {"config.pbtxt": PYTHON_CONFIG.format(name="Bad Name"),
                                             "1/model.py": PYTHON_MODEL})
    _refused(capsys, ["repository", str(root)], tmp_path / "out", "'Bad Name'")


def test_a_plain_model_directory_is_still_one(tmp_path: Path) -> None:
    """A model file at the top keeps the old reading, version-like subdirectories and all."""
    root = _model(tmp_path, {"1/data.txt": "x"})
    package = analyze_package([read_input(root)])
    assert package.models[0].meta.name == "model"


def test_auto_builder_falling_back_to_buildah_says_so_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builders, "docker_answers", lambda: False)
    monkeypatch.setattr(buildah_build, "available", lambda: True)
    chosen = builders.select("auto")
    assert isinstance(chosen, BuildahBuilder) and chosen.fallback
    assert not builders.select("auto", prefer_buildah=True).fallback  # an image archive: buildah

    def pull_fails(reference: str, name: str | None = None) -> str:
        raise BuildError("pulling docker.io/library/x: connection refused", file="base image",
                         fix="check the network")

    monkeypatch.setattr(buildah_build, "ensure_image", pull_fails)
    with pytest.raises(BuildError) as failed:
        chosen.ensure_image("x")
    first = str(failed.value).splitlines()[0]
    assert first.startswith(FALLBACK_NOTE) and "docker.io" in first, first
    assert "--builder buildah" in (failed.value.fix or "") and failed.value.exit_code == 3
    with pytest.raises(BuildError) as plain:  # chosen on purpose: buildah's message as it is
        BuildahBuilder().ensure_image("x")
    assert FALLBACK_NOTE not in str(plain.value)


def test_auto_builder_fallback_is_announced_in_a_package_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(builders, "docker_answers", lambda: False)
    monkeypatch.setattr(buildah_build, "available", lambda: True)

    def pull_fails(reference: str, name: str | None = None) -> str:
        raise BuildError("cannot pull docker.io/library/base: no route", fix="check the network")

    monkeypatch.setattr(buildah_build, "ensure_image", pull_fails)
    monkeypatch.setattr(buildah_build, "image_id", lambda ref: None)
    out = tmp_path / "out"
    code = main(["package", str(_model(tmp_path)), "-o", str(out),
                 "--base-image", "docker.io/library/base:1"])
    err = capsys.readouterr().err
    assert code == 3, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert lines and lines[0].startswith(f"error: {FALLBACK_NOTE}"), err
    assert "warning: " + FALLBACK_NOTE in err
    assert not out.exists()
