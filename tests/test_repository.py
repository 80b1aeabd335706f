"""Several models in one image (issue 10): model repositories and several model directories,
ensembles, BLS, versions, label and warmup files, one environment per model.

The pure checks run without an engine; one real image of a repository that holds every
feature is built and served once, and each feature is proven by a request."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from e2e import Recorder, remove_image
from models import python_model_source, write_tree

from packager.analysis import Options, analyze_package, dockerfile_for
from packager.basechoice import LOCAL_CPU_IMAGE
from packager.cli import main
from packager.executor.phases import BuildEnv, Workspace
from packager.executor.reader import read_input

Files = dict[str, str | bytes]

IDENTITY_CONFIG = '''\
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "{i}" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "{o}" data_type: TYPE_FP32 dims: [ 4 ] }} ]
{extra}'''

AFFINE_MODEL = python_model_source(
    "{i}", "out.append(pb_utils.InferenceResponse(",
    '    [pb_utils.Tensor("{o}", (x * {mul} + {add}).astype(np.float32))]))')

BLS_MODEL = python_model_source(
    "X", "call = pb_utils.InferenceRequest(",
    '    model_name="post", requested_output_names=["OUT"],',
    '    inputs=[pb_utils.Tensor("MID", (x * 10).astype(np.float32))])',
    "reply = call.exec()",
    "if reply.has_error():",
    "    raise pb_utils.TritonModelException(reply.error().message())",
    'y = pb_utils.get_output_tensor_by_name(reply, "OUT").as_numpy()',
    'out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", y)]))')

SIX_MODEL = '''\
import numpy as np
import six
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "VERSION", np.array([six.__version__.encode()], dtype=np.object_))])
            for _ in requests]
'''
SIX_CONFIG = '''\
name: "{name}"
backend: "python"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "VERSION" data_type: TYPE_STRING dims: [ 1 ] } ]
'''

# Warmup runs before the server is READY: the model remembers what it saw then, and its first
# answer is that (the warmup file's values), so a request proves the warmup ran with the file.
WARM_MODEL = python_model_source(
    "X", "if self.first is None:", "    self.first = x.copy()",
    'out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", self.first)]))',
    initialize=("self.first = None",))
WARM_VALUES = (7.0, 8.0, 9.0, 10.0)


def repository_files() -> Files:
    """A repository with every feature: ensemble (pre -> post), BLS (calls post), two
    versions, a classification output with labels, warmup from a file, two pinned envs."""
    files: Files = {}
    for name, mul, add, i, o in (("pre", 2, 0, "IN", "MID"), ("post", 1, 1, "MID", "OUT")):
        files[f"{name}/config.pbtxt"] = IDENTITY_CONFIG.format(name=name, i=i, o=o, extra="")
        files[f"{name}/1/model.py"] = AFFINE_MODEL.format(i=i, o=o, mul=mul, add=add)
    files["ens/config.pbtxt"] = '''\
name: "ens"
platform: "ensemble"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]
ensemble_scheduling { step [
  { model_name: "pre" model_version: -1 input_map { key: "IN" value: "X" }
    output_map { key: "MID" value: "t" } },
  { model_name: "post" model_version: 1 input_map { key: "MID" value: "t" }
    output_map { key: "OUT" value: "Y" } } ] }
'''
    files["bls/config.pbtxt"] = IDENTITY_CONFIG.format(name="bls", i="X", o="Y", extra="")
    files["bls/1/model.py"] = BLS_MODEL
    files["versioned/config.pbtxt"] = IDENTITY_CONFIG.format(
        name="versioned", i="X", o="Y", extra="version_policy: { all: {} }\n")
    for v in (1, 2):
        files[f"versioned/{v}/model.py"] = AFFINE_MODEL.format(i="X", o="Y", mul=0, add=v)
    files["classify/config.pbtxt"] = IDENTITY_CONFIG.format(name="classify", i="X", o="Y",
                                                            extra="").replace(
        'dims: [ 4 ] } ]\n', 'dims: [ 4 ] label_filename: "labels.txt" } ]\n', 2).replace(
        'name: "X" data_type: TYPE_FP32 dims: [ 4 ] label_filename: "labels.txt"',
        'name: "X" data_type: TYPE_FP32 dims: [ 4 ]')
    files["classify/labels.txt"] = "cat\ndog\nbird\nfish\n"
    files["classify/1/model.py"] = AFFINE_MODEL.format(i="X", o="Y", mul=1, add=0)
    files["warm/config.pbtxt"] = IDENTITY_CONFIG.format(name="warm", i="X", o="Y", extra='''\
model_warmup [ { name: "from-file" batch_size: 1 inputs { key: "X" value: {
  data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "x.raw" } } } ]
''')
    files["warm/warmup/x.raw"] = struct.pack("<4f", *WARM_VALUES)
    files["warm/1/model.py"] = WARM_MODEL
    for name, pin in (("six-new", "six==1.16.0"), ("six-old", "six==1.15.0")):
        files[f"{name}/config.pbtxt"] = SIX_CONFIG.replace("{name}", name)
        files[f"{name}/requirements.txt"] = pin + "\n"
        files[f"{name}/1/model.py"] = SIX_MODEL
    return files


def test_repository_is_analysed_whole(tmp_path: Path) -> None:
    package = analyze_package([read_input(write_tree(tmp_path / "repo", repository_files()))])
    names = [m.meta.name for m in package.models]
    assert names == sorted(["pre", "post", "ens", "bls", "versioned", "classify", "warm",
                            "six-new", "six-old"])
    by = {m.meta.name: m for m in package.models}
    assert by["versioned"].versions == (1, 2)
    dests = {e.dest for e in package.plan.entries}
    # Files config.pbtxt names are where Triton reads them; the ensemble gets its version dir.
    assert {"classify/labels.txt", "warm/warmup/x.raw", "ens/1"} <= dests
    assert "six-new/requirements.txt" not in dests
    assert not [w for w in package.warnings if "not served" in w]
    spec = dockerfile_for(package, Options(base_image=LOCAL_CPU_IMAGE))
    # Two different requirements.txt: two builder stages, each model mapped to its own.
    assert spec.text.count("AS python-requirements-") == 2
    envs = json.loads(dict(spec.context_texts)["env/envs.json"])
    assert envs["/models/six-new"] != envs["/models/six-old"]
    assert set(envs) == {"/models/six-new", "/models/six-old"}


def test_identical_requirements_share_one_environment(tmp_path: Path) -> None:
    files = repository_files()
    files["six-old/requirements.txt"] = files["six-new/requirements.txt"]
    package = analyze_package([read_input(write_tree(tmp_path / "repo", files))])
    spec = dockerfile_for(package, Options(base_image=LOCAL_CPU_IMAGE))
    assert spec.text.count("AS python-requirements-") == 1
    envs = json.loads(dict(spec.context_texts)["env/envs.json"])
    assert envs["/models/six-new"] == envs["/models/six-old"]


def test_model_directories_and_a_model_label_file(tmp_path: Path) -> None:
    """`package A B`: each directory with its manifest; a label file at the top of a model
    directory is placed beside config.pbtxt, warmup data under warmup/."""
    a = write_tree(tmp_path / "a", {
        "odahuflow.model.yaml": "name: alpha\nversion: 3\n",
        "config.pbtxt": IDENTITY_CONFIG.format(name="alpha", i="X", o="Y", extra='''\
model_warmup [ { name: "w" batch_size: 1 inputs { key: "X" value: {
  data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "w.raw" } } } ]
''').replace('dims: [ 4 ] } ]\noutput', 'dims: [ 4 ] } ]\noutput').replace(
            'name: "Y" data_type: TYPE_FP32 dims: [ 4 ]',
            'name: "Y" data_type: TYPE_FP32 dims: [ 4 ] label_filename: "l.txt"'),
        "model.py": AFFINE_MODEL.format(i="X", o="Y", mul=1, add=0),
        "l.txt": "a\nb\nc\nd\n", "w.raw": b"\0" * 16, "helper.py": "X = 1\n",
    })
    b = write_tree(tmp_path / "b", {
        "odahuflow.model.yaml": "name: beta\nversion: 1\n",
        "config.pbtxt": IDENTITY_CONFIG.format(name="beta", i="X", o="Y", extra=""),
        "model.py": AFFINE_MODEL.format(i="X", o="Y", mul=1, add=0),
    })
    package = analyze_package([read_input(a), read_input(b)])
    dests = {e.dest for e in package.plan.entries}
    assert {"alpha/l.txt", "alpha/warmup/w.raw", "alpha/3/helper.py", "alpha/3/model.py",
            "beta/1/model.py"} <= dests
    assert "alpha/3/l.txt" not in dests and "alpha/3/w.raw" not in dests


# --- bad input: one message naming the file and the field, exit 2, nothing written ------------

def _ens(steps: str, inputs: str = 'input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]',
         outputs: str = 'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 4 ] } ]') -> str:
    return (f'name: "ens"\nplatform: "ensemble"\nmax_batch_size: 0\n{inputs}\n{outputs}\n'
            f"ensemble_scheduling {{ step [ {steps} ] }}\n")


STEP_PRE = ('{ model_name: "pre" model_version: -1 input_map { key: "IN" value: "X" } '
            'output_map { key: "MID" value: "t" } }')
STEP_POST = ('{ model_name: "post" model_version: -1 input_map { key: "MID" value: "t" } '
             'output_map { key: "OUT" value: "Y" } }')


def _repo(**changes: str | bytes | None) -> Files:
    files = {k: v for k, v in repository_files().items()
             if not k.startswith(("six-", "warm/", "classify/", "bls/", "versioned/"))}
    for key, value in changes.items():
        path = key.replace("__", "/")
        if value is None:
            files.pop(path, None)
        else:
            files[path] = value
    return files


BAD: dict[str, tuple[Files, tuple[str, ...]]] = {
    "step-missing-model": (_repo(ens__config_pbtxt=None, **{
        "ens/config.pbtxt": _ens(STEP_PRE + ", " + STEP_POST.replace('"post"', '"nope"'))}),
        ("ens", "config.pbtxt", "'nope'", "not in the package")),
    "step-missing-version": (_repo(**{"ens/config.pbtxt": _ens(
        STEP_PRE + ", " + STEP_POST.replace("model_version: -1", "model_version: 7"))}),
        ("ens", "version 7", "post")),
    "step-undeclared-tensor": (_repo(**{"ens/config.pbtxt": _ens(
        STEP_PRE.replace('key: "IN"', 'key: "NOPE"') + ", " + STEP_POST)}),
        ("ens", "input_map", "'NOPE'", "does not declare")),
    "ensemble-cycle": (_repo(**{"ens/config.pbtxt": _ens(
        STEP_PRE.replace('value: "X"', 'value: "u"') + ", "
        + STEP_POST.replace('value: "Y"', 'value: "u"') + ", "
        + '{ model_name: "post" model_version: -1 input_map { key: "MID" value: "X" } '
          'output_map { key: "OUT" value: "Y" } }')}), ("ens", "cycle", "step 1 -> step 2")),
    "output-not-produced": (_repo(**{"ens/config.pbtxt": _ens(
        STEP_PRE + ", " + STEP_POST.replace('value: "Y"', 'value: "Z"'))}),
        ("ens", "output 'Y'", "produced by no step")),
    "dtype-mismatch": (_repo(**{"ens/config.pbtxt": _ens(STEP_PRE + ", " + STEP_POST).replace(
        'input [ { name: "X" data_type: TYPE_FP32', 'input [ { name: "X" data_type: TYPE_INT32')}),
        ("ens", "INT32", "FP32")),
    "policy-absent-version": (_repo(**{"pre/config.pbtxt": IDENTITY_CONFIG.format(
        name="pre", i="IN", o="MID", extra="version_policy: { specific: { versions: [ 4 ] } }\n")}),
        ("pre", "version_policy", "4")),
    "missing-label-file": (_repo(**{"post/config.pbtxt": IDENTITY_CONFIG.format(
        name="post", i="MID", o="OUT", extra="").replace(
        'name: "OUT" data_type: TYPE_FP32 dims: [ 4 ]',
        'name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] label_filename: "labels.txt"')}),
        ("post", "label_filename", "'labels.txt'")),
    "missing-warmup-file": (_repo(**{"post/config.pbtxt": IDENTITY_CONFIG.format(
        name="post", i="MID", o="OUT", extra='model_warmup [ { name: "w" batch_size: 1 inputs '
        '{ key: "MID" value: { data_type: TYPE_FP32 dims: [ 4 ] input_data_file: "m.raw" } } } ]\n')}),
        ("post", "input_data_file", "'m.raw'", "warmup/")),
    "version-dir-v1": (_repo(**{"post/1/model.py": None, "post/v1/model.py":
                                AFFINE_MODEL.format(i="MID", o="OUT", mul=1, add=1)}),
        ("post", "'v1'", "not a version directory", "rename it to 1")),
    "stray-top-file": (_repo(**{"README.md": "hello\n"}),
                       ("'README.md'", "top of a model repository")),
    "ensemble-holds-files": (_repo(**{"ens/1/model.py": "x = 1\n"}),
                             ("ens", "holds only its config.pbtxt", "1/model.py")),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_repository_is_refused_cleanly(case: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    files, fragments = BAD[case]
    root = write_tree(tmp_path / "repo", files)
    out = tmp_path / "out"
    code = main(["package", str(root), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "fix:" in err, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} missing from:\n{err}"
    assert not out.exists()


def test_the_good_repository_passes_the_same_checks(tmp_path: Path) -> None:
    """The bad cases above are each one change away from this, which is accepted."""
    package = analyze_package([read_input(write_tree(tmp_path / "repo", _repo()))])
    assert [m.meta.name for m in package.models] == ["ens", "post", "pre"]


def _model_dir(tmp: Path, name: str) -> Path:
    return write_tree(tmp / name, {
        "odahuflow.model.yaml": f"name: {name}\nversion: 1\n",
        "config.pbtxt": IDENTITY_CONFIG.format(name=name, i="X", o="Y", extra=""),
        "model.py": AFFINE_MODEL.format(i="X", o="Y", mul=1, add=0)})


@pytest.mark.parametrize("case", ["same-name", "given-twice", "nested", "repo-and-dir"])
def test_bad_model_directory_lists(case: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    a = _model_dir(tmp_path, "alpha")
    if case == "same-name":
        b = _model_dir(tmp_path / "other", "alpha")
        argv, fragments = [str(a), str(b)], ["two models are named 'alpha'"]
    elif case == "given-twice":
        argv, fragments = [str(a), str(tmp_path / "." / "alpha")], ["given twice"]
    elif case == "nested":
        inner = _model_dir(a, "inner")
        argv, fragments = [str(a), str(inner)], ["inside another input"]
    else:
        repo = write_tree(tmp_path / "repo", _repo())
        argv, fragments = [str(repo), str(a)], ["model repository", "on its own"]
    out = tmp_path / "out"
    code = main(["package", *argv, "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()


# --- proven by serving ------------------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.serving
def test_repository_image_serves_every_feature(tmp_path: Path) -> None:
    import docker
    import tritonclient.http as httpclient

    from packager.executor.container import serve
    from packager.executor.verify import verify

    repo = write_tree(tmp_path / "repo", repository_files())
    out = tmp_path / "out"
    rec = Recorder()
    # The builder stages reach PyPI through this machine's TLS-inspecting proxy: its CA.
    build_env = BuildEnv(Path("/etc/ssl/certs/ca-certificates.crt"))
    outcome = Workspace(repo, out, Options(base_image=LOCAL_CPU_IMAGE), rec,
                        build_env=build_env).run("package")
    assert outcome.result is not None
    result = json.loads((out / "result.json").read_text())
    assert all(isinstance(v, str) for v in result.values()) and next(iter(result)) == "image"
    assert result["model.versioned.versions"] == "1,2"
    image = outcome.result.image
    client = docker.from_env()
    try:
        x = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)

        def infer(c: httpclient.InferenceServerClient, model: str, inp: str, out_name: str,
                  version: str = "", data: np.ndarray = x, **kw: int) -> np.ndarray:
            t = httpclient.InferInput(inp, list(data.shape), "FP32")
            t.set_data_from_numpy(data)
            outputs = [httpclient.InferRequestedOutput(out_name, **kw)]
            got = c.infer(model, [t], model_version=version, outputs=outputs).as_numpy(out_name)
            assert got is not None
            return got

        with serve(image) as running:
            c = httpclient.InferenceServerClient(running.http_url)
            # Ensemble pre (x*2) -> post (+1), through the ensemble.
            np.testing.assert_allclose(infer(c, "ens", "X", "Y"), x * 2 + 1)
            # BLS: bls calls post on x*10.
            np.testing.assert_allclose(infer(c, "bls", "X", "Y"), x * 10 + 1)
            # Two versions, each answering with its number.
            for v in (1, 2):
                np.testing.assert_allclose(infer(c, "versioned", "X", "Y", str(v)), [v] * 4)
            # Classification through Triton's extension: labels from labels.txt.
            top = infer(c, "classify", "X", "Y", class_count=2)
            assert [t.decode().split(":")[2] for t in top] == ["fish", "bird"]
            # Warmup ran from warmup/x.raw before READY: the first values the model saw.
            np.testing.assert_allclose(infer(c, "warm", "X", "Y"), WARM_VALUES)
            # Each model imports its own pinned six.
            for name, want in (("six-new", b"1.16.0"), ("six-old", b"1.15.0")):
                t = httpclient.InferInput("X", [1], "FP32")
                t.set_data_from_numpy(np.array([0.0], dtype=np.float32))
                assert c.infer(name, [t]).as_numpy("VERSION")[0] == want
        # verify: every model and version READY, one request to each declared model.
        vrec = Recorder()
        verify(out, vrec)
        answered = [ln for ln in vrec.lines if "is ready and answered" in ln]
        assert len(answered) == len(outcome.result.models) == 9, vrec.lines
    finally:
        remove_image(client, image)


def test_repository_artifacts_are_pinned(tmp_path: Path, snapshot) -> None:
    """The generated Dockerfile (one builder stage per environment), the repository tree and
    the weights image (one layer per model) of a repository, reviewed as snapshots."""
    files = repository_files()
    for name in ("trt-a", "trt-b"):
        files[f"{name}/config.pbtxt"] = f'name: "{name}"\nplatform: "tensorrt_plan"\n'
        for v in (1, 2):
            files[f"{name}/{v}/model.plan"] = f"engine {name} {v}".encode()
    files["trt-b/config.pbtxt"] += "version_policy: { all: {} }\n"
    package = analyze_package([read_input(write_tree(tmp_path / "repo", files))])
    spec = dockerfile_for(package, Options(base_image=LOCAL_CPU_IMAGE))
    assert spec.text == snapshot(name="Dockerfile")
    assert package.plan.listing() == snapshot(name="tree")
    assert dict(spec.context_texts)["weights/Dockerfile"] == snapshot(name="weights/Dockerfile")
    # trt-a serves only its latest version (Triton's default policy): a warning, not an error.
    assert [w for w in package.warnings if "not served" in w] == [
        "model trt-a: version(s) 1 are packaged but not served by its version_policy "
        "(latest 1); set version_policy to serve them, or leave them out"]
