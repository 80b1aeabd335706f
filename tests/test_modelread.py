"""Complete configs from model files, the config-vs-model check, and the runtime proof: every
generated config runs its model with the model's own runtime exactly as the config says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import onnx_add_model, onnx_external_data_files, openvino_relu_xml, write_tree
from proof import onnxruntime_runner, openvino_runner, prove, require

from packager.analysis import analyze
from packager.backends import BY_KEY
from packager.cli import main
from packager.configgen import ConfigOptions, check_config, generate_config
from packager.errors import InputError
from packager.executor.reader import read_input
from packager.modelconfig import parse_config
from packager.modelread import MAX_RANK, read_onnx, read_openvino

onnx = pytest.importorskip("onnx")  # a test dependency; always there in the [test] extra
from onnx import TensorProto, helper  # noqa: E402

ONNX = BY_KEY["onnx"]
F, I64, B, S, H = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING, \
    TensorProto.FLOAT16


def onnx_model(nodes: list[tuple[str, list[str], list[str]]],
               inputs: list[tuple[str, int, list[int | str] | None]],
               outputs: list[tuple[str, int, list[int | str] | None]],
               initializers: list[object] | None = None) -> bytes:
    graph = helper.make_graph(
        [helper.make_node(op, i, o) for op, i, o in nodes], "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def identity(pairs: list[tuple[str, str, int, list[int | str]]]) -> bytes:
    """One Identity node per (input, output, type, shape)."""
    return onnx_model([("Identity", [i], [o]) for i, o, _, _ in pairs],
                      [(i, t, s) for i, _, t, s in pairs], [(o, t, s) for _, o, t, s in pairs])


SYMBOLIC = onnx_model([("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"])],
                      [("INPUT0", F, ["batch", 4]), ("INPUT1", F, ["batch", 4])],
                      [("OUTPUT0", F, ["batch", 4])])
FIXED = identity([("INPUT0", "OUTPUT0", F, [1, 4])])
INT64_MODEL = identity([("INPUT0", "OUTPUT0", I64, ["batch", 4])])
MIXED = onnx_model([("Identity", ["A"], ["X"]), ("Identity", ["B"], ["Y"])],
                   [("A", F, ["batch", 2]), ("B", F, [2, 2])], [("X", F, ["batch", 2]),
                                                                 ("Y", F, [2, 2])])
TYPES = onnx_model(
    [("Identity", ["HALF"], ["HALF_OUT"]), ("Not", ["FLAG"], ["FLAG_OUT"]),
     ("Identity", ["TEXT"], ["TEXT_OUT"]), ("Identity", ["IDS"], ["IDS_OUT"])],
    [("HALF", H, ["n", 3]), ("FLAG", B, ["n", 2]), ("TEXT", S, ["n"]), ("IDS", I64, ["n", "seq"])],
    [("HALF_OUT", H, ["n", 3]), ("FLAG_OUT", B, ["n", 2]), ("TEXT_OUT", S, ["n"]),
     ("IDS_OUT", I64, ["n", "seq"])])


def config_for(data: bytes, opts: ConfigOptions | None = None) -> str:
    return generate_config(ONNX, "m", read_onnx(data), opts or ConfigOptions())


def proven_onnx(tmp_path: Path, files: dict[str, bytes], text: str) -> int:
    """Write the model, prove the config with ONNX Runtime; the number of requests run."""
    root = write_tree(tmp_path / "m", dict(files))
    path = root / ("model.onnx/model.onnx" if "model.onnx/model.onnx" in files else "model.onnx")
    return prove(parse_config(text), onnxruntime_runner(str(path)))


# --- generation, per case, with the proof ----------------------------------------------------

def test_symbolic_batch_becomes_max_batch_size(tmp_path: Path) -> None:
    text = config_for(SYMBOLIC)
    config = parse_config(text)
    assert config.max_batch_size == 8  # the documented default
    assert config.inputs == (("INPUT0", "FP32", (4,)), ("INPUT1", "FP32", (4,)))
    assert config.outputs == (("OUTPUT0", "FP32", (4,)),)
    assert config.platform == "onnxruntime_onnx" and config.name == "m"
    assert proven_onnx(tmp_path, {"model.onnx": SYMBOLIC}, text) == 3  # batch 1, 3 and 8


def test_max_batch_size_option_and_the_rest(tmp_path: Path) -> None:
    text = config_for(SYMBOLIC, ConfigOptions(max_batch_size=2, dynamic_batching=True,
                                              instance_count=2, instance_kind="cpu"))
    assert "dynamic_batching { }" in text and "count: 2 kind: KIND_CPU" in text
    config = parse_config(text)
    assert config.max_batch_size == 2
    assert proven_onnx(tmp_path, {"model.onnx": SYMBOLIC}, text) == 2


def test_fixed_first_dimension_means_no_batching(tmp_path: Path) -> None:
    config = parse_config(config_for(FIXED))
    assert config.max_batch_size == 0 and config.inputs == (("INPUT0", "FP32", (1, 4)),)
    assert proven_onnx(tmp_path, {"model.onnx": FIXED}, config.text) == 1


def test_one_fixed_tensor_turns_batching_off(tmp_path: Path) -> None:
    config = parse_config(config_for(MIXED))
    assert config.max_batch_size == 0
    assert config.inputs == (("A", "FP32", (-1, 2)), ("B", "FP32", (2, 2)))
    assert proven_onnx(tmp_path, {"model.onnx": MIXED}, config.text) == 1


def test_string_bool_fp16_int64_and_a_scalar_per_batch_item(tmp_path: Path) -> None:
    text = config_for(TYPES)
    config = parse_config(text)
    assert config.max_batch_size == 8
    assert dict((n, (t, d)) for n, t, d in config.inputs) == {
        "HALF": ("FP16", (3,)), "FLAG": ("BOOL", (2,)), "TEXT": ("STRING", (1,)),
        "IDS": ("INT64", (-1,))}
    assert dict(config.input_reshapes) == {"TEXT": ()}  # [batch] alone: dims [1], reshape []
    assert dict(config.output_reshapes) == {"TEXT_OUT": ()}
    assert proven_onnx(tmp_path, {"model.onnx": TYPES}, text) == 3


def test_external_data_directory_reads_the_graph_only(tmp_path: Path) -> None:
    files = onnx_external_data_files()
    root = write_tree(tmp_path / "in", dict(files))
    tree = read_input(root)
    assert tree.blob("model.onnx/weights.bin") is None  # never read
    analysis = analyze(tree)
    assert analysis.config_source == "model"
    assert analysis.config.inputs == (("INPUT0", "FP32", (256,)),)
    assert proven_onnx(tmp_path, files, analysis.plan.config_text) == 3


def test_initializers_listed_as_inputs_are_not_inputs() -> None:
    w = helper.make_tensor("W", F, [4], [1.0] * 4)
    data = onnx_model([("Add", ["INPUT0", "W"], ["OUTPUT0"])],
                      [("INPUT0", F, [4]), ("W", F, [4])], [("OUTPUT0", F, [4])], [w])
    assert [t.name for t in read_onnx(data).inputs] == ["INPUT0"]


def test_names_that_need_escaping_round_trip() -> None:
    name = 'in "quoted"\\ \n\t ünï'
    text = config_for(identity([(name, "out", F, [2])]))
    assert parse_config(text).inputs == ((name, "FP32", (2,)),)


def test_openvino_ir_generation_and_proof(tmp_path: Path) -> None:
    ov = require("openvino")
    ops = pytest.importorskip("openvino.opset13")
    x = ops.parameter([-1, 3], ov.Type.f32, name="pixels")
    ids = ops.parameter([-1, 2], ov.Type.i64, name="ids")
    x.output(0).get_tensor().set_names({"pixels", "alias_b"})
    ids.output(0).get_tensor().set_names({"ids"})
    y = ops.relu(x)
    y.output(0).get_tensor().set_names({"scores"})
    z = ops.convert(ids, "f32")
    z.output(0).get_tensor().set_names({"ids_float"})
    path = tmp_path / "ov" / "model.xml"
    ov.save_model(ov.Model([y, z], [x, ids], "two"), str(path))
    sig = read_openvino(path.read_bytes())
    model = ov.Core().read_model(str(path))
    assert [t.name for t in sig.inputs] == [p.get_any_name() for p in model.inputs]
    assert [t.name for t in sig.outputs or ()] == [p.get_any_name() for p in model.outputs]
    text = generate_config(BY_KEY["openvino"], "m", sig, ConfigOptions())
    config = parse_config(text)
    assert config.max_batch_size == 8 and config.backend == "openvino" and not config.platform
    assert config.inputs == (("alias_b", "FP32", (3,)), ("ids", "INT64", (2,)))
    assert prove(config, openvino_runner(str(path))) == 3


# --- the check of a given config --------------------------------------------------------------

CFG = 'platform: "onnxruntime_onnx"\nmax_batch_size: {mbs}\n{body}'


def _cfg(mbs: int, inputs: str, outputs: str = "") -> str:
    return CFG.format(mbs=mbs, body=f"input [ {inputs} ]\n" + (
        f"output [ {outputs} ]\n" if outputs else ""))


def test_reshape_is_what_the_model_sees() -> None:
    data = identity([("INPUT0", "OUTPUT0", F, ["b", 2, 2])])
    ok = _cfg(4, '{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] reshape: { shape: [ 2, 2 ] } }')
    check_config(parse_config(ok), read_onnx(data), ONNX)
    bad = ok.replace("shape: [ 2, 2 ]", "shape: [ 4 ]")
    with pytest.raises(InputError, match=r"reshape \[ 4 \].*\[ -1, 4 \].*\[ -1, 2, 2 \]"):
        check_config(parse_config(bad), read_onnx(data), ONNX)


def test_minus_one_matches_anything_and_outputs_may_be_a_subset() -> None:
    text = _cfg(8, '{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] },'
                   '{ name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }')
    check_config(parse_config(text), read_onnx(SYMBOLIC), ONNX)


def test_config_without_tensors_is_completed_by_triton() -> None:
    check_config(parse_config('platform: "onnxruntime_onnx"\nmax_batch_size: 4\n'),
                 read_onnx(SYMBOLIC), ONNX)


def test_zero_max_batch_size_with_full_dims_on_a_batchable_onnx_model_is_refused() -> None:
    text = _cfg(0, '{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1, 4 ] },'
                   '{ name: "INPUT1" data_type: TYPE_FP32 dims: [ -1, 4 ] }')
    with pytest.raises(InputError, match="default \\(4\\) at load"):
        check_config(parse_config(text), read_onnx(SYMBOLIC), ONNX)


# --- bad input through the CLI: exit 2, one message, nothing written -------------------------

BAD: dict[str, tuple[dict[str, bytes | str], list[str], list[str]]] = {
    "onnx-not-onnx": ({"model.onnx": b"\x08\x01\x12\x04abcd garbage \xff\xfe" * 3},
                      [], ["model.onnx", "is not an ONNX model"]),
    "onnx-truncated": ({"model.onnx": SYMBOLIC[: len(SYMBOLIC) // 2]}, [],
                       ["model.onnx", "is not an ONNX model"]),
    "onnx-no-outputs": ({"model.onnx": onnx_model([], [("INPUT0", F, [4])], [])}, [],
                        ["model.onnx", "no outputs"]),
    "input-not-in-model": (
        {"model.onnx": SYMBOLIC, "config.pbtxt": _cfg(8, '{ name: "IMAGE" data_type: TYPE_FP32 '
                                                         'dims: [ 4 ] }')},
        [], ["input 'IMAGE' is not an input of the model", "'INPUT0', 'INPUT1'", "fix:"]),
    "dtype-mismatch": (
        {"model.onnx": INT64_MODEL, "config.pbtxt": _cfg(8, '{ name: "INPUT0" data_type: '
                                                            'TYPE_FP32 dims: [ 4 ] }')},
        [], ["input 'INPUT0'", "TYPE_FP32 in the config", "model says TYPE_INT64",
             "fix: set data_type: TYPE_INT64"]),
    "dims-mismatch": (
        {"model.onnx": SYMBOLIC, "config.pbtxt": _cfg(
            8, '{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 5 ] },'
               '{ name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }')},
        [], ["input 'INPUT0'", "dims [ 5 ]", "[ -1, 5 ]", "model says [ -1, 4 ]", "dims: [ 4 ]"]),
    "output-dims-mismatch": (
        {"model.onnx": SYMBOLIC, "config.pbtxt": _cfg(
            8, '{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },'
               '{ name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }',
            '{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4, 1 ] }')},
        [], ["output 'OUTPUT0'", "dims [ 4, 1 ]", "model says [ -1, 4 ]"]),
    "batching-a-fixed-model": (
        {"model.onnx": FIXED, "config.pbtxt": _cfg(8, '{ name: "INPUT0" data_type: TYPE_FP32 '
                                                      'dims: [ 4 ] }')},
        [], ["max_batch_size is 8", "'INPUT0'", "[ 1, 4 ]", "fixed", "max_batch_size: 0"]),
    "model-input-missing-from-config": (
        {"model.onnx": SYMBOLIC, "config.pbtxt": _cfg(8, '{ name: "INPUT0" data_type: '
                                                         'TYPE_FP32 dims: [ 4 ] }')},
        [], ["model's input 'INPUT1' is not in the config"]),
    "openvino-without-bin": ({"model.xml": openvino_relu_xml()}, [], ["model.bin"]),
    "openvino-entity-bomb": (
        {"model.xml": '<?xml version="1.0"?><!DOCTYPE net [<!ENTITY a "aaaaaaaaaa">'
                      '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;'
                      '&b;&b;&b;&b;&b;">]><net name="&c;"><layers/></net>', "model.bin": b""},
        [], ["model.xml", "is refused", "DTDs and entities"]),
    "openvino-external-entity": (
        {"model.xml": '<?xml version="1.0"?><!DOCTYPE net [<!ENTITY x SYSTEM '
                      '"file:///etc/passwd">]><net name="&x;"/>', "model.bin": b""},
        [], ["model.xml", "is refused"]),
    "openvino-not-xml": ({"model.xml": b"\x00\x01binary", "model.bin": b""}, [],
                         ["model.xml", "is not OpenVINO IR XML"]),
    "openvino-dim-beyond-int64": (
        {"model.xml": openvino_relu_xml((99999999999999999999,)), "model.bin": b""}, [],
        ["model.xml", "beyond int64"]),
    "onnx-rank-too-large": (
        {"model.onnx": identity([("x", "y", F, [2] * (MAX_RANK + 1))])}, [],
        ["model.onnx", f"{MAX_RANK + 1} dimensions"]),
    "onnx-huge-name": ({"model.onnx": identity([("n" * 300_000, "y", F, [2])])}, [],
                       ["model.onnx", "300000 characters", "..."]),
    "max-batch-size-on-a-fixed-model": ({"model.onnx": FIXED}, ["--max-batch-size", "4"],
                                        ["--max-batch-size 4", "'INPUT0'", "[ 1, 4 ]", "fixed"]),
    "zero-max-batch-size-on-a-batchable-onnx": (
        {"model.onnx": SYMBOLIC}, ["--max-batch-size", "0"], ["--max-batch-size 0", "(4)"]),
    "dynamic-batching-without-batching": ({"model.onnx": FIXED}, ["--dynamic-batching"],
                                          ["--dynamic-batching needs batching"]),
    "options-with-a-given-config": (
        {"model.onnx": SYMBOLIC, "config.pbtxt": 'platform: "onnxruntime_onnx"\n'},
        ["--max-batch-size", "4", "--instance-count", "2"],
        ["--max-batch-size 4, --instance-count 2", "config.pbtxt", "edit config.pbtxt"]),
    "options-for-an-unreadable-format": (
        {"model.plan": b"engine"}, ["--instance-kind", "gpu"],
        ["--instance-kind gpu", "cannot read a TensorRT model"]),
    "max-batch-size-not-a-number": ({"model.onnx": SYMBOLIC}, ["--max-batch-size", "eight"],
                                    ["--max-batch-size", "'eight' is not a whole number"]),
    "max-batch-size-negative": ({"model.onnx": SYMBOLIC}, ["--max-batch-size=-1"],
                                ["--max-batch-size", "not a whole number"]),
    "instance-count-zero": ({"model.onnx": SYMBOLIC}, ["--instance-count", "0"],
                            ["--instance-count", "not between 1 and 256"]),
    "instance-kind-unknown": ({"model.onnx": SYMBOLIC}, ["--instance-kind", "tpu"],
                              ["--instance-kind", "'tpu'"]),
}


@pytest.mark.parametrize("command", ["package", "config"])
@pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys, case: str,
                                              command: str) -> None:
    files, options, words = BAD[case]
    root = write_tree(tmp_path / "in", dict(files))
    out = tmp_path / "out"
    argv = [command, str(root), *options] + (["-o", str(out)] if command == "package" else [])
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, err
    for word in words:
        assert word in err, (word, err)
    assert "Traceback" not in err and captured.out == ""
    assert len(err) < 2000
    assert not out.exists()


# --- the `config` command and detect -----------------------------------------------------------

def test_config_command_prints_the_generated_config_and_writes_nothing(tmp_path: Path,
                                                                        capsys) -> None:
    root = write_tree(tmp_path / "in", {"model.onnx": SYMBOLIC})
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["config", str(root), "--max-batch-size", "16", "--dynamic-batching"]) == 0
    out = capsys.readouterr().out
    config = parse_config(out)
    assert config.max_batch_size == 16 and config.name == "model"
    assert "dynamic_batching { }" in out
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    # Saved beside the model, it is a given config: used as it is, and it passes the check.
    (root / "config.pbtxt").write_text(out)
    assert main(["config", str(root)]) == 0
    assert capsys.readouterr().out == out


def test_config_command_prints_a_given_config_byte_for_byte(tmp_path: Path, capsys) -> None:
    text = _cfg(8, '{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
                   '{ name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }  # comment kept\n')
    root = write_tree(tmp_path / "in", {"model.onnx": SYMBOLIC, "config.pbtxt": text})
    assert main(["config", str(root)]) == 0
    captured = capsys.readouterr()
    assert captured.out == text and "agrees with model.onnx" in captured.err


def test_detect_shows_the_generated_config(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "in", {"model.onnx": SYMBOLIC})
    assert main(["detect", str(root), "-o", str(tmp_path / "out"), "--max-batch-size", "4"]) == 0
    doc = json.loads((tmp_path / "out" / "detect.json").read_text())
    assert doc["config"]["source"] == "model" and doc["config"]["max_batch_size"] == 4
    assert doc["model_read"] == {"file": "model.onnx", "format": "ONNX",
                                 "config": "generated from it"}
    # A different option is a different config: the phase reruns.
    assert main(["repository", str(root), "-o", str(tmp_path / "out"), "--max-batch-size",
                 "2"]) == 0
    text = (tmp_path / "out" / "model_repository" / "model" / "config.pbtxt").read_text()
    assert "max_batch_size: 2" in text


def test_unreadable_formats_get_a_note_not_a_guess(tmp_path: Path, capsys) -> None:
    root = write_tree(tmp_path / "in", {"model.pt": b"not a zip", "config.pbtxt":
                                        'platform: "pytorch_libtorch"\nmax_batch_size: 0\n'
                                        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'})
    assert main(["config", str(root)]) == 0
    assert "model.pt is not a TorchScript zip archive" in capsys.readouterr().err


def test_torchscript_inputs_are_checked_by_forward_arguments(tmp_path: Path, capsys) -> None:
    torch = require("torch")

    class Net(torch.nn.Module):
        def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return image * mask

    root = tmp_path / "in"
    root.mkdir()
    torch.jit.save(torch.jit.script(Net()), str(root / "model.pt"))
    head = 'platform: "pytorch_libtorch"\nmax_batch_size: 0\n'

    def run(inputs: str) -> tuple[int, str]:
        (root / "config.pbtxt").write_text(head + f"input [ {inputs} ]\n")
        code = main(["config", str(root)])
        return code, capsys.readouterr().err

    t = 'data_type: TYPE_FP32 dims: [ 2 ]'
    assert run(f'{{ name: "image" {t} }}, {{ name: "mask" {t} }}')[0] == 0
    assert run(f'{{ name: "INPUT__0" {t} }}, {{ name: "INPUT__1" {t} }}')[0] == 0
    code, err = run(f'{{ name: "image" {t} }}, {{ name: "pixels" {t} }}')
    assert code == 2 and "'pixels' is not an argument of forward (image, mask)" in err
    code, err = run(f'{{ name: "image" {t} }}')
    assert code == 2 and "declares 1 input(s), but forward takes 2 (image, mask)" in err


# --- property: any ONNX signature gives a config that parses and passes the check ------------

_TYPES = st.sampled_from([F, H, TensorProto.DOUBLE, TensorProto.INT8, TensorProto.INT32, I64,
                          TensorProto.UINT8, B, S, TensorProto.BFLOAT16])
_NAMES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                 max_size=12)


@st.composite
def signatures(draw: st.DrawFn) -> tuple[bytes, bool]:
    batch = draw(st.booleans())
    names = draw(st.lists(_NAMES, min_size=2, max_size=6, unique=True))
    split = draw(st.integers(1, len(names) - 1))

    def tensor(name: str) -> tuple[str, int, list[int | str]]:
        dims: list[int | str] = draw(st.lists(st.one_of(st.integers(1, 5), st.just("s")),
                                              max_size=4))
        return (name, draw(_TYPES), (["batch"] if batch else [draw(st.integers(1, 3))]) + dims)

    return onnx_model([], [tensor(n) for n in names[:split]],
                      [tensor(n) for n in names[split:]]), batch


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signatures(), st.one_of(st.none(), st.integers(1, 64)))
def test_generated_configs_always_parse_and_agree_with_their_model(
        case: tuple[bytes, bool], mbs: int | None) -> None:
    data, batch = case
    sig = read_onnx(data)
    opts = ConfigOptions(max_batch_size=mbs if batch else None)
    config = parse_config(generate_config(ONNX, "m", sig, opts))
    check_config(config, sig, ONNX)
    assert config.max_batch_size == ((mbs or 8) if batch else 0)
    assert [n for n, _, _ in config.inputs] == [t.name for t in sig.inputs]
    assert [n for n, _, _ in config.outputs] == [t.name for t in sig.outputs or ()]
    # And the check is not vacuous: one wrong fixed dim or type in the config is caught.
    fixed = [d for _, _, dims in config.inputs for d in dims if d > 0]
    if fixed:
        d = fixed[0]
        wrong = config.text.replace(f"dims: [ {d}", f"dims: [ {d + 1}", 1)
        if wrong != config.text and parse_config(wrong).inputs != config.inputs:
            with pytest.raises(InputError):
                check_config(parse_config(wrong), sig, ONNX)


def test_real_onnx_helper_models_from_the_suite_are_read() -> None:
    sig = read_onnx(onnx_add_model())
    assert [t.name for t in sig.inputs] == ["INPUT0", "INPUT1"] and not sig.batchable


def test_empty_onnx_bytes_are_refused(tmp_path: Path) -> None:
    # Bytes protobuf accepts (an empty ModelProto) but that hold no graph are still refused.
    with pytest.raises(InputError, match="no IR version or no graph"):
        read_onnx(b"")
    root = write_tree(tmp_path / "in", {"model.onnx": b""})
    with pytest.raises(InputError, match="is not an ONNX model"):
        analyze(read_input(root))


def test_weights_inside_model_onnx_are_skipped_not_read(tmp_path: Path) -> None:
    """A single-file model.onnx is memory-mapped and cut to a skeleton: the InputTree holds its
    inputs, outputs and initializer names, not its 4 MiB of weights."""
    weights = helper.make_tensor("W", F, [1 << 20], np.ones(1 << 20, dtype=np.float32).tobytes(),
                                 raw=True)
    data = onnx_model([("Add", ["INPUT0", "W"], ["OUTPUT0"])], [("INPUT0", F, ["b", 1 << 20])],
                      [("OUTPUT0", F, ["b", 1 << 20])], [weights])
    root = write_tree(tmp_path / "in", {"model.onnx": data})
    tree = read_input(root)
    skeleton = tree.blob("model.onnx")
    assert skeleton is not None and len(skeleton) < 1024 < len(data)
    assert read_onnx(skeleton) == read_onnx(data)
    assert analyze(tree).config.inputs == (("INPUT0", "FP32", (1 << 20,)),)
