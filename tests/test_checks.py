"""Issue 21, the config-level half: nothing wrong accepted, the mutants that survived the fast
tier, the "also noticed" items and the two newcomer paths. Every test here is a unit test (no
engine); each refusal is checked for exit 2, the file and field named, a fix, no traceback and
nothing written, and each rule has an accepted neighbour one step away, so a check that refuses
everything fails too.
"""

from __future__ import annotations

import errno
import json
import math
import os
import zipfile
from pathlib import Path

import pytest
from models import PYTHON_CONFIG, PYTHON_MODEL, onnx_add_model, write_tree
from test_push_credentials import _result
from test_repository import IDENTITY_CONFIG, _repo

from packager import safeyaml
from packager.analysis import Options, analyze_package
from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main
from packager.dockerfile import _dq, check_labels
from packager.ensemble import EnsembleModel, _find_cycle, check_ensembles
from packager.errors import BuildError, EnvironmentFault, InputError, bounded, printable, redact
from packager.executor.images import buildah as buildah_build
from packager.executor.images import registry
from packager.executor.images.buildah import BuildahBuilder
from packager.executor.images.docker import DockerBuilder
from packager.executor.phases import Workspace
from packager.executor.reader import read_input
from packager.executor.report import Reporter
from packager.executor.runs import artifact
from packager.executor.state import digestcache
from packager.executor.state.digestcache import DigestCache
from packager.imageref import TEMPLATE_MAX, ImageRef, render_image_name
from packager.manifest import VERSION_MAX, check_version
from packager.modelconfig import parse_config
from packager.secretfiles import check_input_files, secret_reason

FALLBACK_NOTE = "no Docker engine answers, so --builder auto chose buildah"
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
    root = _model(tmp_path, {".cache/state": "1", ".vscode/settings.json": "{}",
                             "sub/.hidden": "", "a/b/.gitkeep": ""})
    assert main(["dockerfile", str(root), "--base-image", LOCAL_CPU_IMAGE,
                 "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and ".cache/state" in err and ".vscode/settings.json" in err
    assert "sub/.hidden" in err and ".gitkeep" not in err
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
    monkeypatch.setattr(DockerBuilder, "available", lambda self: False)
    monkeypatch.setattr(buildah_build, "available", lambda: True)
    chosen = registry.select("auto")
    assert chosen.name == "buildah" and registry.fallback_note(chosen) == FALLBACK_NOTE
    # An image archive as the base: buildah is the first choice, not a fallback.
    assert registry.fallback_note(registry.select("auto", source="oci-archive:/x.tar")) is None

    def pull_fails(reference: str, name: str | None = None, **_: object) -> str:
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
    monkeypatch.setattr(DockerBuilder, "available", lambda self: False)
    monkeypatch.setattr(buildah_build, "available", lambda: True)

    def pull_fails(reference: str, name: str | None = None, **_: object) -> str:
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


def test_after_own_links_keeps_only_link_count_changes(tmp_path: Path) -> None:
    """The entries of a run, after the packager hardlinked its inputs: a vanished file is
    dropped (and the ones after it still looked at), a ctime-only change is followed, and a
    content change keeps the old stamp, so the next lookup misses."""
    gone, relinked, rewritten = tmp_path / "a-gone", tmp_path / "b-relinked", tmp_path / "c-rewritten"
    for p in (relinked, rewritten):
        p.write_bytes(b"12345")
    cache = DigestCache()
    st_re, st_rw = os.stat(relinked), os.stat(rewritten)
    old_ctime = digestcache.Stamp(st_re.st_dev, st_re.st_ino, st_re.st_size, st_re.st_mtime_ns,
                                  st_re.st_ctime_ns - 5)
    other_size = digestcache.Stamp(st_rw.st_dev, st_rw.st_ino, 4, st_rw.st_mtime_ns,
                                   st_rw.st_ctime_ns - 5)
    cache.used = {str(gone): (old_ctime, "0" * 64), str(relinked): (old_ctime, "1" * 64),
                  str(rewritten): (other_size, "2" * 64)}
    cache.after_own_links()
    assert str(gone) not in cache.used
    assert cache.used[str(relinked)] == (digestcache.Stamp.of(os.stat(relinked)), "1" * 64)
    assert cache.used[str(rewritten)] == (other_size, "2" * 64)
    doc = json.loads(cache.document())
    assert sorted(doc["entries"]) == [str(relinked), str(rewritten)] and doc["version"] == 1
    again = DigestCache.load(_write(tmp_path / "cache.json", cache.document()))
    assert again.lookup(relinked, os.stat(relinked)) == "1" * 64
    assert again.lookup(rewritten, os.stat(rewritten)) is None
    assert (again.hits, again.misses) == (1, 1)
    again.lookup(relinked, os.stat(relinked))
    again.lookup(rewritten, os.stat(rewritten))
    assert (again.hits, again.misses) == (2, 2)  # counted, not set
    assert list(again.used) == [str(relinked)]  # a hit is kept for the next run's cache


@pytest.mark.parametrize("entry", [
    ["x", [1, 2, 3, 4, 5], "0" * 63],  # a digest one character short
    ["x", [1, 2, 3, 4], "0" * 64],  # four stamp fields
    ["x", [1, 2, 3, 4, "5"], "0" * 64],  # a stamp field that is no int
    ["x", (1, 2, 3, 4, 5), 7],  # a digest that is no string
    ["x", "12345", "0" * 64],  # a stamp that is no list
])
def test_a_cache_with_one_bad_entry_is_not_trusted_at_all(entry: list[object],
                                                          tmp_path: Path) -> None:
    good = [[1, 2, 3, 4, 5], "1" * 64]
    doc = {"version": 1, "entries": {"/good": good, f"/{entry[0]}": entry[1:]}}
    assert DigestCache.load(_write(tmp_path / "c.json", json.dumps(doc))).entries == {}
    doc["entries"] = {"/good": good}
    assert DigestCache.load(_write(tmp_path / "c.json", json.dumps(doc))).entries == {
        "/good": (digestcache.Stamp(1, 2, 3, 4, 5), "1" * 64)}
    doc["version"] = 2
    assert DigestCache.load(_write(tmp_path / "c.json", json.dumps(doc))).entries == {}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("code", "fix"), [
    (errno.ENOSPC, "free space on that filesystem, or choose another --output"),
    (errno.EDQUOT, "free space within your quota, or choose another --output"),
    (errno.EROFS, "choose an --output on a writable filesystem"),
    (errno.EACCES, "check the permissions of that path (and of the directories above it)"),
    (errno.EPERM, "check the permissions of that path (and of the directories above it)"),
    (errno.ENAMETOOLONG, "use shorter file and directory names"),
    (errno.EIO, "check the path and the machine, then retry"),
])
def test_os_errors_are_environment_faults_with_the_fix_for_each(code: int, fix: str) -> None:
    err = EnvironmentFault.from_oserror(OSError(code, "ignored", b"/x/y"), "writing out")
    assert err.exit_code == 3 and err.file == "/x/y" and err.fix == fix
    assert err.message == f"writing out: {os.strerror(code)} ({errno.errorcode[code]})"
    assert str(err) == f"/x/y: {err.message}\n  fix: {fix}"


def test_an_os_error_without_errno_or_path_is_still_one_message() -> None:
    err = EnvironmentFault.from_oserror(OSError("the disk went away"))
    assert (err.message, err.file) == ("the disk went away", None)
    assert err.fix == "check the path and the machine, then retry"
    assert EnvironmentFault.from_oserror(OSError(errno.EIO, "x")).file is None
    assert EnvironmentFault.from_oserror(OSError(12345, "x")).message == os.strerror(12345)


# --- ensembles: every refusal of ensemble.py, message pinned whole --------------------------

def _io_config(name: str, inputs: tuple[str, ...], outputs: tuple[str, ...], *,
               dims: str = "[ 4 ]", dtype: str = "TYPE_FP32", mbs: int = 0) -> str:
    ins = "".join(f'input [ {{ name: "{n}" data_type: {dtype} dims: {dims} }} ]\n' for n in inputs)
    outs = "".join(f'output [ {{ name: "{n}" data_type: TYPE_FP32 dims: [ 4 ] }} ]\n'
                   for n in outputs)
    return f'name: "{name}"\nbackend: "python"\nmax_batch_size: {mbs}\n{ins}{outs}'


def _step(model: str, ins: tuple[tuple[str, str], ...], outs: tuple[tuple[str, str], ...],
          version: int = -1) -> str:
    im = " ".join(f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in ins)
    om = " ".join(f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in outs)
    return f'{{ model_name: "{model}" model_version: {version} {im} {om} }}'


def _ensemble(*steps: str, inputs: tuple[str, ...] = ("X",), outputs: tuple[str, ...] = ("Y",),
              mbs: int = 0, out_dims: str = "[ 4 ]") -> str:
    ins = "".join(f'input [ {{ name: "{n}" data_type: TYPE_FP32 dims: [ 4 ] }} ]\n' for n in inputs)
    outs = "".join(f'output [ {{ name: "{n}" data_type: TYPE_FP32 dims: {out_dims} }} ]\n'
                   for n in outputs)
    return (f'name: "ens"\nplatform: "ensemble"\nmax_batch_size: {mbs}\n{ins}{outs}'
            f'ensemble_scheduling {{ step [ {", ".join(steps)} ] }}\n')


PRE = _step("pre", (("IN", "X"),), (("MID", "t"),))
POST = _step("post", (("MID", "t"),), (("OUT", "Y"),))


def _members(ens_text: str, **configs: str) -> list[EnsembleModel]:
    texts = {"pre": _io_config("pre", ("IN",), ("MID",)),
             "post": _io_config("post", ("MID",), ("OUT",)),
             "bare": 'name: "bare"\nbackend: "python"\n', **configs}
    versions = {"pre": ((1, 2, 3), (2, 3)), "post": ((1,), (1,)), "bare": ((1,), (1,))}
    models = [EnsembleModel(n, f"repo/{n}", parse_config(t), *versions.get(n, ((1,), (1,))))
              for n, t in sorted(texts.items())]
    return [*models, EnsembleModel("ens", "repo/ens", parse_config(ens_text), (1,), (1,))]


# Each message whole: a mutant that changes a word of one is caught (issue 21, point 5).
MESSAGES = {
    "output-dims-differ": (
        "repo/ens: config.pbtxt: output 'Y': post output 'OUT' has dims [4] but ensemble output "
        "'Y' has [5]\n  fix: make the two configs declare the same dims (-1 for any)"),
    "input-dtype-differs": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 1 ('pre') input_map 'IN' <- 'X': "
        "ensemble input 'X' is FP32 but pre input 'IN' is INT32\n"
        "  fix: make the two configs declare the same data_type"),
    "six-names": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 2 ('nope') names model 'nope', which "
        "is not in the package (models: 'bare', 'ens', 'm0', 'm1', 'post', 'pre')\n  fix: "
        "package that model too (another MODEL_DIR, or a directory of the repository), or "
        "correct model_name"),
    "no-such-model": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 2 ('nope') names model 'nope', which "
        "is not in the package (models: 'bare', 'ens', 'post', 'pre')\n  fix: package that "
        'model too (another MODEL_DIR, or a directory of the repository), or correct model_name'
    ),
    "version-not-packaged": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 1 ('pre') asks for version 7, but "
        'model pre has version(s) 1, 2, 3\n  fix: use model_version: -1 (the latest served) or a '
        'packaged version'
    ),
    "version-not-served": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 1 ('pre') asks for version 1 of pre, "
        "which its version_policy does not serve (served: 2, 3)\n  fix: serve version 1 in pre's "
        'version_policy, or use model_version: -1'
    ),
    "input-map-unknown": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 1 ('pre') input_map maps 'NOPE', "
        "which model pre does not declare (its inputs: 'IN')\n  fix: use the tensor names of "
        "pre's config.pbtxt as input_map keys"
    ),
    "output-map-unknown": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 2 ('post') output_map maps 'NOPE', "
        "which model post does not declare (its outputs: 'OUT')\n  fix: use the tensor names of "
        "post's config.pbtxt as output_map keys"
    ),
    "reads-nothing": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 2 ('post') reads tensor 'u', which "
        'is neither an ensemble input nor produced by a step\n  fix: map it from an ensemble '
        "input or from a step's output_map"
    ),
    "two-producers": (
        "repo/ens: config.pbtxt: tensor 't' is produced by steps 1, 3; each tensor of an "
        'ensemble has exactly one producer\n  fix: give each output_map value its own name'
    ),
    "produces-an-input": (
        "repo/ens: config.pbtxt: tensor 'Z' is an ensemble input and also produced by step 3\n  "
        "fix: give the step's output its own name"
    ),
    "input-unused": (
        "repo/ens: config.pbtxt: ensemble input(s) 'Z' are consumed by no step\n  fix: map them "
        "in a step's input_map, or remove them from the ensemble's input"
    ),
    "output-not-produced": (
        "repo/ens: config.pbtxt: ensemble output 'W' is produced by no step\n  fix: map a "
        "step's output to it in that step's output_map"
    ),
    "dtype-differs": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 2 ('post') input_map 'MID' <- 't': "
        "pre output 'MID' is FP32 but post input 'MID' is INT32\n  fix: make the two configs "
        'declare the same data_type'
    ),
    "dims-differ": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 2 ('post') input_map 'MID' <- 't': "
        "pre output 'MID' has dims [4] but post input 'MID' has [5]\n  fix: make the two "
        'configs declare the same dims (-1 for any)'
    ),
    "dims-rank-differs": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 2 ('post') input_map 'MID' <- 't': "
        "pre output 'MID' has dims [4] but post input 'MID' has [4, 1]\n  fix: make the two "
        'configs declare the same dims (-1 for any)'
    ),
    "step-cycle": (
        'repo/ens: config.pbtxt: ensemble_scheduling steps form a cycle: step 1 -> step 2 -> '
        'step 1\n  fix: break the cycle: no step may need, through other steps, its own output'
    ),
    "many-names": (
        "repo/ens: config.pbtxt: ensemble_scheduling step 2 ('nope') names model 'nope', which "
        "is not in the package (models: 'bare', 'ens', 'm0', 'm1', 'm2', 'm3' and 5 more)\n  "
        'fix: package that model too (another MODEL_DIR, or a directory of the repository), or '
        'correct model_name'
    ),
}
_POST_AS = {"dtype-differs": {"dtype": "TYPE_INT32"}, "dims-differ": {"dims": "[ 5 ]"},
            "dims-rank-differs": {"dims": "[ 4, 1 ]"}}
ENSEMBLE_REFUSALS: dict[str, list[EnsembleModel]] = {
    "no-such-model": _members(_ensemble(PRE, POST.replace('"post"', '"nope"'))),
    "version-not-packaged": _members(_ensemble(PRE.replace("-1", "7"), POST)),
    "version-not-served": _members(_ensemble(PRE.replace("-1", "1"), POST)),
    "input-map-unknown": _members(_ensemble(PRE.replace('"IN"', '"NOPE"'), POST)),
    "output-map-unknown": _members(_ensemble(PRE, POST.replace('"OUT"', '"NOPE"'))),
    "reads-nothing": _members(_ensemble(PRE, POST.replace('value: "t"', 'value: "u"'))),
    "two-producers": _members(_ensemble(PRE, POST, PRE)),
    "produces-an-input": _members(_ensemble(PRE, POST, _step("bare", (("a", "t"),), (("b", "Z"),)),
                                            inputs=("X", "Z"))),
    "input-unused": _members(_ensemble(PRE, POST, inputs=("X", "Z"))),
    "output-not-produced": _members(_ensemble(PRE, POST, outputs=("Y", "W"))),
    "output-dims-differ": _members(_ensemble(PRE, POST, out_dims="[ 5 ]")),
    "input-dtype-differs": _members(_ensemble(PRE, POST),
                                    pre=_io_config("pre", ("IN",), ("MID",), dtype="TYPE_INT32")),
    **{case: _members(_ensemble(PRE, POST), post=_io_config("post", ("MID",), ("OUT",), **kw))
       for case, kw in _POST_AS.items()},
    "step-cycle": _members(_ensemble(_step("pre", (("IN", "u"),), (("MID", "t"),)),
                                     _step("post", (("MID", "t"),), (("OUT", "u"),)),
                                     _step("post", (("MID", "X"),), (("OUT", "Y"),)))),
    "six-names": _members(_ensemble(PRE, POST.replace('"post"', '"nope"')),
                          **{f"m{i}": _io_config(f"m{i}", ("A",), ("B",)) for i in range(2)}),
    "many-names": _members(_ensemble(PRE, POST.replace('"post"', '"nope"')),
                           **{f"m{i}": _io_config(f"m{i}", ("A",), ("B",)) for i in range(7)}),
}


@pytest.mark.parametrize("case", sorted(ENSEMBLE_REFUSALS))
def test_each_ensemble_refusal_says_exactly_what_and_where(case: str) -> None:
    with pytest.raises(InputError) as refused:
        check_ensembles(ENSEMBLE_REFUSALS[case])
    assert str(refused.value) == "".join(MESSAGES[case])
    assert refused.value.file == "repo/ens" and refused.value.exit_code == 2


def test_ensembles_that_agree_are_accepted_with_notes_for_what_cannot_be_checked() -> None:
    bare_step = _step("bare", (("a", "t"),), (("b", "v"),))
    models = _members(_ensemble(PRE, POST, bare_step, outputs=("Y", "v")),
                      # -1 matches any size; batching post compares no dims at all
                      pre=_io_config("pre", ("IN",), ("MID",), dims="[ -1 ]"),
                      post=_io_config("post", ("MID",), ("OUT",), dims="[ 9 ]", mbs=8))
    assert check_ensembles(models) == (
        "ensemble ens: step 3's input_map not checked: bare's config declares no inputs",
        "ensemble ens: step 3's output_map not checked: bare's config declares no outputs")
    # version 2 of pre is served (latest 2 of (1, 2, 3)), so asking for it is fine
    assert check_ensembles(_members(_ensemble(PRE.replace("-1", "2"), POST))) == ()
    # dims are compared only when both sides batch alike: max_batch_size 1 batches
    for pre_mbs, post_mbs in ((1, 0), (0, 1)):
        assert check_ensembles(_members(
            _ensemble(PRE, POST, out_dims="[ -1 ]"),
            pre=_io_config("pre", ("IN",), ("MID",), dims="[ 4 ]", mbs=pre_mbs),
            post=_io_config("post", ("MID",), ("OUT",), dims="[ 7 ]", mbs=post_mbs))) == ()


def test_find_cycle_is_linear_on_a_dag_of_diamonds() -> None:
    """Done nodes are not walked again: 2**40 paths through 40 diamonds, 121 nodes."""
    needs: dict[int, set[int]] = {}
    for layer in range(40):
        top = 3 * layer
        needs[top] = {top + 1, top + 2}
        needs[top + 1] = needs[top + 2] = {top + 3}
    assert _find_cycle(needs) == []
    needs[120] = {0}
    assert _find_cycle(needs)[:3] == [0, 1, 3] and _find_cycle(needs)[-1] == 0


# --- image names: imageref.py ---------------------------------------------------------------

def test_a_rendered_name_is_checked_as_a_reference_without_digest() -> None:
    with pytest.raises(InputError) as refused:
        render_image_name("{{ Name }}:bad tag", name="wine", version=1, random_uuid="u")
    assert refused.value.message == ("--image-name '{{ Name }}:bad tag': the name 'wine:bad tag' "
                                     "is not a valid Docker image reference")
    with pytest.raises(InputError, match="names a digest"):
        render_image_name("x@sha256:" + "a" * 64, name="n", version=1, random_uuid="u")


IMAGE_FIX = ("use only {{ Name }}, {{ Version }} and {{ RandomUUID }}, e.g. "
             "'{{ Name }}-{{ Version }}:{{ RandomUUID }}'")


def test_image_names_render_every_placeholder() -> None:
    ref = render_image_name("reg.example:5000/Team/{{Name}}-v{{ Version }}:{{ RandomUUID }}",
                            name="wine", version=42, random_uuid="U-1")
    assert (ref.repository, ref.tag, ref.digest) == ("reg.example:5000/team/wine-v42", "u-1", None)
    assert str(ref) == "reg.example:5000/team/wine-v42:u-1"
    assert str(ImageRef("r/x", None, "sha256:" + "a" * 64)) == "r/x@sha256:" + "a" * 64
    assert str(ImageRef("r/x", "1", "sha256:" + "b" * 64)) == "r/x:1@sha256:" + "b" * 64
    assert str(ImageRef("r/x", None, None)) == "r/x"
    # TEMPLATE_MAX characters are accepted by the length rule (the reference rule then
    # refuses a 512-character name: a different message)
    with pytest.raises(InputError, match="not a valid Docker image reference"):
        render_image_name("a" * TEMPLATE_MAX, name="n", version=1, random_uuid="u")


@pytest.mark.parametrize(("template", "message"), [
    ("a" * (TEMPLATE_MAX + 1), f"--image-name is {TEMPLATE_MAX + 1} characters long; at most "
                               f"{TEMPLATE_MAX} are accepted"),
    ("{{ Nmae }}", "--image-name '{{ Nmae }}' uses {{ Nmae }}, which is not a known name"),
    *((f"x{m}y", f"--image-name 'x{m}y' has template syntax other than plain placeholders")
      for m in ("{{", "}}", "{%", "%}", "{#")),
])
def test_bad_image_name_templates_say_what_and_how(template: str, message: str) -> None:
    with pytest.raises(InputError) as refused:
        render_image_name(template, name="n", version=1, random_uuid="u")
    assert (refused.value.message, refused.value.fix) == (message, IMAGE_FIX)


@pytest.mark.parametrize(("needs", "cycle"), [
    ({}, []),
    ({0: {0}}, [0, 0]),
    ({0: {1}, 1: {2}, 2: {0}}, [0, 1, 2, 0]),
    ({0: {1}, 1: {2}, 2: {1}}, [1, 2, 1]),  # a cycle that does not pass through the start
    ({0: {1}, 1: set(), 2: {3}, 3: {2}}, [2, 3, 2]),  # after a start that was already done
    ({0: {1, 2}, 1: set(), 2: {0}}, [0, 2, 0]),  # after a finished branch
    ({0: {1}, 1: set(), 2: {1}}, []),  # a node reached twice is no cycle
    ({0: {5}}, []),  # a node with no entry of its own
])
def test_find_cycle(needs: dict[int, set[int]], cycle: list[int]) -> None:
    assert _find_cycle(needs) == cycle


def test_a_cross_ensemble_cycle_is_reported_on_its_first_ensemble() -> None:
    texts = _cycle_repo()
    texts["ens-b/config.pbtxt"] = str(texts["ens-b/config.pbtxt"]).replace('"leaf"', '"ens-a"')
    models = [EnsembleModel(n, f"repo/{n}", parse_config(str(texts[f"{n}/config.pbtxt"])),
                            (1,), (1,)) for n in ("ens-a", "ens-b", "leaf")]
    with pytest.raises(InputError) as refused:
        check_ensembles(models)
    assert refused.value.file == "repo/ens-a"
    assert str(refused.value) == (
        "repo/ens-a: config.pbtxt: ensembles contain each other: ens-a -> ens-b -> ens-a\n"
        "  fix: break the cycle: an ensemble cannot run itself through another")


# --- manifest versions: manifest.check_version, every branch and its message ----------------

@pytest.mark.parametrize(("value", "got"), [
    (5, 5), ("7", 7), (VERSION_MAX, VERSION_MAX), (str(VERSION_MAX), VERSION_MAX), (1, 1)])
def test_versions_accepted_as_written(value: object, got: int) -> None:
    assert check_version(value, file="m.yaml") == got


@pytest.mark.parametrize(("value", "message", "fix"), [
    (2.0, "has value 2.0; a Triton model version is a positive integer",
     "set version: 2 (Triton versions are whole numbers)"),
    (1.0, "has value 1.0; a Triton model version is a positive integer",
     "set version: 1 (Triton versions are whole numbers)"),
    (0.0, "has value 0.0; a Triton model version is a positive integer", "set version: 1"),
    (2.5, "has value 2.5; a Triton model version is a positive integer", "set version: 1"),
    (True, "has value True; a Triton model version is a positive integer", "set version: 1"),
    (None, "has value None; a Triton model version is a positive integer", "set version: 1"),
    ("0012", "has value '0012'; a Triton model version is a positive integer without prefix, "
     f"suffix or leading zeros, at most {VERSION_MAX}", "set version: 12"),
    ("v3", "has value 'v3'; a Triton model version is a positive integer without prefix, "
     f"suffix or leading zeros, at most {VERSION_MAX}", "set version: 3"),
    ("x" * 40 + "5", None, "set version: 1"),  # only the first 40 characters are looked at
    ("1" + "0" * 19, None, "set version: 1000000000000000000"),  # 19 digits of 20 kept
    ("9" * 19, None, "set version: 1"),  # beyond int64: no such suggestion
    (f"v{VERSION_MAX}", None, f"set version: {VERSION_MAX}"),  # int64's largest: suggested
    (VERSION_MAX + 1, f"has value {VERSION_MAX + 1}; Triton model versions are 64-bit, at most "
     f"{VERSION_MAX}", "set version: 1"),
    (0, "has value 0; Triton model versions start at 1", "set version: 1"),
    (-4, "has value -4; Triton model versions start at 1", "set version: 1"),
])
def test_bad_versions_name_the_value_and_the_fix(value: object, message: str | None,
                                                 fix: str) -> None:
    with pytest.raises(InputError) as refused:
        check_version(value, file="m.yaml")
    err = refused.value
    assert (err.file, err.fix) == ("m.yaml", fix)
    if message is not None:
        assert err.message == f"field 'version' {message}"


# --- errors.py: bounded, redact, printable, render ------------------------------------------

def test_bounded_cuts_at_the_limit_and_counts_what_it_cut() -> None:
    assert bounded("a" * 78) == "'" + "a" * 78 + "'"  # 80 characters with the quotes: kept
    assert bounded("a" * 79) == "'" + "a" * 59 + "... (81 characters)"
    assert bounded("x" * 321, 80) == "'" + "x" * 59 + "... (321 characters)"  # > 4 x limit
    assert bounded("x" * 320, 80) == "'" + "x" * 59 + "... (322 characters)"  # scanned whole
    assert bounded("a\x1bb\nc", quote=False) == "a\\x1bb\\nc"
    assert bounded(10**39, 30) == "1000000000... (40 characters)"  # any value, by its repr
    assert bounded(b"\xff") == "b'\\xff'"


def test_redact_and_printable() -> None:
    assert redact("git+ssh://u:p@h/r and s3://tok@b/k") == "git+ssh://***@h/r and s3://***@b/k"
    assert redact("user:pw@host:5000/img") == "***@host:5000/img"
    assert redact("img:1.0@sha256:" + "a" * 64) == "img:1.0@sha256:" + "a" * 64  # a digest
    assert redact("mail me at a@b.c") == "mail me at a@b.c"
    assert printable("a\x00\x9b\u2028\nb") == "a\\x00\\x9b\\u2028\nb"


def test_render_puts_file_fix_and_log_tail_in_their_places() -> None:
    err = BuildError("build failed", file="ctx/Dockerfile", fix="read the log",
                     log_tail=("step 1", "step 2"))
    assert str(err) == ("ctx/Dockerfile: build failed\n  fix: read the log\n"
                        "  last lines of the build log:\n    step 1\n    step 2")
    assert str(InputError("bare")) == "bare"
    assert InputError("x").exit_code == 2 and BuildError("x").exit_code == 3


def test_the_dot_file_warning_names_five_and_counts_the_rest(tmp_path: Path) -> None:
    root = _model(tmp_path, {f".d{i}": "" for i in range(7)})
    (warning,) = check_input_files(read_input(root).entries, "in")
    assert warning == ("in: hidden or secret-looking file(s) .d0, .d1, .d2, .d3, .d4 and 2 more "
                       "are copied into the image; Triton does not read them -- remove them if "
                       "they are there by accident")
    (five,) = check_input_files(read_input(_model(tmp_path / "b", {f".e{i}": "" for i in range(5)})
                                           ).entries, "in")
    assert ".e4 are copied" in five


def test_the_secret_refusal_names_file_reason_and_flag(tmp_path: Path) -> None:
    root = _model(tmp_path, {"keys/.ssh/id_rsa": "k"})
    with pytest.raises(InputError) as refused:
        check_input_files(read_input(root).entries, "in")
    assert refused.value.file == "in"
    assert refused.value.message == (
        "'keys/.ssh/id_rsa' looks like a secret (it is inside a .ssh/ directory, which holds "
        "credentials); everything in the input is copied into the image, and an image is "
        "readable by whoever can pull it")
    assert refused.value.fix == ("remove it from the model directory, or pass "
                                 "--allow-secret-files if the model really needs it in the image")
    assert secret_reason("a/.netrc") == "its name is that of a credentials file"
    assert secret_reason("a/b.key") == "its name is that of a private key or a dotenv file"


def test_config_reads_a_model_folder_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "mymodel", {"config.pbtxt": PY_CONFIG, "1/model.py": PYTHON_MODEL})
    assert main(["config", str(root)]) == 0
    assert capsys.readouterr().out == PY_CONFIG


# --- safeyaml: the YAML 1.2 core resolvers (registered at import) ---------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("12", 12), ("-7", -7), ("0", 0), ("1.5", 1.5), ("-.5", -0.5), ("1e3", 1000.0),
    ("2.0", 2.0), ("true", True), ("False", False), ("~", None), ("null", None), ("", None),
    ("010", "010"), ("0x1F", "0x1F"), ("1:30", "1:30"), ("+5", "+5"), ("yes", "yes"),
    ("on", "on"), ("9" * 19, "9" * 19), ("1_000", "1_000"),
])
def test_yaml_scalars_resolve_by_the_yaml_1_2_core_schema(text: str, value: object) -> None:
    got = safeyaml.load(f"a: {text}\n", file="m.yaml", fix="-")
    assert got == {"a": value} and type(got["a"]) is type(value), got  # type: ignore[index]
    assert math.isinf(safeyaml.load("a: .inf", file="m", fix="-")["a"])  # type: ignore[index]
    assert math.isnan(safeyaml.load("a: .NaN", file="m", fix="-")["a"])  # type: ignore[index]


def test_a_float_version_gets_the_whole_number_hint(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = _model(tmp_path, {"odahuflow.model.yaml": "name: model\nversion: 2.0\n"})
    _refused(capsys, ["detect", str(root)], tmp_path / "out",
             "set version: 2 (Triton versions are whole numbers)")
