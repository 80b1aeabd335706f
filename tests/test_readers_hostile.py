"""Hostile model files, one per way a reader used to break (issue 21): each is refused with exit
2 and one bounded message naming the model file and what is wrong in it, no traceback, and
nothing written -- or, where the file is fine, read in bounded memory. The files are built byte
by byte in hostile.py; the property tests (test_reader_properties.py) generate and mutate them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from hostile import (
    TORCH_CODE,
    onnx_bytes,
    onnx_initializer,
    onnx_valid,
    onnx_value,
    ov_valid,
    ov_xml,
    peak_rss,
    pytorch_config,
    savedmodel_entries,
    savedmodel_valid,
    torch_pickle,
    torch_zip,
    zip_corrupt_stream,
    zip_patch_central,
    zip_shift_central,
)
from models import _field, write_tree
from test_hostile_package import _fingerprint

from packager import modelread
from packager.cli import main
from packager.errors import InputError
from packager.executor import reader
from packager.layout import read_roots
from packager.modelread import onnx_skeleton, savedmodel_skeleton

Files = dict[str, "bytes | str | None"]

# Line bound of a refusal: the message line and the fix line, each far below a terminal page.
LINE_LIMIT = 400


def _deep_onnx(depth: int) -> bytes:
    t = _field(1, _field(1, 1))
    for _ in range(depth):
        t = _field(4, _field(1, t))  # TypeProto.sequence_type.elem_type
    vi = _field(1, b"A") + _field(2, t)
    return _field(1, 8) + _field(7, _field(11, vi) + _field(12, onnx_value(b"O", [1])))


def _flip_in_data_pkl(raw: bytes) -> bytes:
    """A stored data.pkl with one byte changed: its CRC no longer matches."""
    at = raw.index(b"__torch__")  # inside data.pkl's stored bytes, past its local header
    return raw[:at] + b"_" + raw[at + 1:] if raw[at:at + 1] != b"_" else \
        raw[:at] + b"X" + raw[at + 1:]


def _onnx_config(tensor: str) -> str:
    return ('platform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
            f'input [ {{ name: "INPUT0" data_type: TYPE_FP32 {tensor} }} ]\n')


def _ov(xml: bytes) -> Files:
    return {"model.xml": xml, "model.bin": b""}


def _sm(pb: bytes) -> Files:
    return {"model.savedmodel/saved_model.pb": pb}


def _pt(model: bytes) -> Files:
    return {"model.pt": model, "config.pbtxt": pytorch_config()}


_IN, _OUT = [(b"A", [1])], [(b"O", [1])]

HOSTILE: dict[str, tuple[Files, list[str]]] = {
    # ONNX
    "onnx-name-not-utf8": ({"model.onnx": onnx_bytes([(b"IN\xff", [1])], _OUT)},
                           ["model.onnx", "not UTF-8", "b'IN\\xff'"]),
    "onnx-duplicate-input": ({"model.onnx": onnx_bytes([(b"A", [1]), (b"A", [1])], _OUT)},
                             ["model.onnx", "input name 'A' twice"]),
    "onnx-duplicate-output": ({"model.onnx": onnx_bytes(_IN, [(b"O", [1]), (b"O", [2])])},
                              ["model.onnx", "output name 'O' twice"]),
    "onnx-external-absolute": (
        {"model.onnx": onnx_bytes(_IN, _OUT, (onnx_initializer(b"W", b"/etc/passwd"),))},
        ["model.onnx", "'/etc/passwd'", "outside the model's directory"]),
    "onnx-external-dotdot": (
        {"model.onnx": onnx_bytes(_IN, _OUT, (onnx_initializer(b"W", b"a/../../w.bin"),))},
        ["model.onnx", "'a/../../w.bin'", "outside"]),
    "onnx-external-missing": (
        {"model.onnx": onnx_bytes(_IN, _OUT, (onnx_initializer(b"W", b"w.bin"),))},
        ["model.onnx", "'w.bin'", "not in the model directory"]),
    "onnx-external-missing-in-directory-form": (
        {"model.onnx/model.onnx": onnx_bytes(_IN, _OUT, (onnx_initializer(b"W", b"w.bin"),))},
        ["model.onnx/model.onnx", "'w.bin'", "not in the model directory"]),
    "onnx-external-file-too-short": (
        {"model.onnx": onnx_bytes(_IN, _OUT, (onnx_initializer(b"W", b"w.bin", b"4", b"64"),)),
         "w.bin": b"\0" * 16},
        ["model.onnx", "reads 68 bytes of 'w.bin', which holds 16"]),
    "onnx-external-offset-not-a-number": (
        {"model.onnx": onnx_bytes(_IN, _OUT, (onnx_initializer(b"W", b"w.bin", b"-4"),)),
         "w.bin": b"\0" * 16},
        ["model.onnx", "external-data offset '-4', not a number"]),
    "onnx-type-nesting": ({"model.onnx": _deep_onnx(400)},
                          ["model.onnx", "type nested more than 16 deep"]),
    "onnx-sequence-input": ({"model.onnx": _deep_onnx(3)},
                            ["model.onnx", "input 'A' is of ONNX type sequence_type"]),
    "onnx-negative-dim": ({"model.onnx": onnx_bytes([(b"A", [-5, 4])], _OUT)},
                          ["model.onnx", "dimension -5, neither a size nor -1"]),
    "savedmodel-negative-dim": (_sm(savedmodel_entries([(b"x", (-2,))], [(b"y", (1,))])),
                                ["saved_model.pb", "dimension -2"]),
    "onnx-dims-overflow": ({"model.onnx": onnx_bytes([(b"A", [1] * 65)], _OUT)},
                           ["model.onnx", "65 dimensions"]),
    # config.pbtxt checked against the model: messages stay bounded whatever the dims
    "config-reshape-count-beyond-int-to-str": (
        {"model.onnx": onnx_bytes([(b"INPUT0", [1])], _OUT), "config.pbtxt": _onnx_config(
            "dims: [ 1 ] reshape: { shape: [ " + ", ".join(["9223372036854775807"] * 600)
            + " ] }")},
        ["config.pbtxt vs model.onnx", "'INPUT0'", "about 2^", "changes the count"]),
    "config-100k-dims": (
        {"model.onnx": onnx_bytes([(b"INPUT0", [2])], _OUT),
         "config.pbtxt": _onnx_config("dims: [ " + ", ".join(["1"] * 100_000) + " ]")},
        ["config.pbtxt vs model.onnx", "(100000 dims)", "dims: [ 2 ]"]),
    # OpenVINO
    "openvino-unknown-encoding": (
        _ov(ov_valid().replace(b'version="1.0"', b'version="1.0" encoding="klingon"')),
        ["model.xml", "encoding 'klingon'", "UTF-8"]),
    "openvino-latin1-encoding": (
        _ov(ov_valid().replace(b'version="1.0"', b'version="1.0" encoding="ISO-8859-1"')),
        ["model.xml", "encoding 'ISO-8859-1'"]),
    "openvino-utf16": (_ov(ov_valid().decode().replace('"1.0"', '"1.0" encoding="UTF-16"')
                           .encode("utf-16")), ["model.xml", "UTF-16", "UTF-8 only"]),
    "openvino-dim-not-a-number": (_ov(ov_valid(dims=["abc", "4"])),
                                  ["model.xml", "'abc'", "not a number"]),
    "openvino-shape-not-a-number": (_ov(ov_valid(shape="x,4", dims=[])),
                                    ["model.xml", "'x'", "not a number"]),
    "openvino-dim-31-digits": (_ov(ov_valid(dims=["1" * 31, "4"])),
                               ["model.xml", "'1111111111", "beyond int64"]),
    "openvino-dim-beyond-int64": (_ov(ov_valid(dims=["9223372036854775808", "4"])),
                                  ["model.xml", "beyond int64"]),
    "openvino-dim-arabic-digit": (_ov(ov_valid(dims=["\u0663", "4"])),
                                  ["model.xml", "not a number"]),
    "openvino-parameter-without-shape": (_ov(ov_xml([("INPUT0", None, None)])),
                                         ["model.xml", "'INPUT0' declares no shape"]),
    "openvino-edge-from-nowhere": (
        _ov(ov_xml([("INPUT0", "?,4", None)], edges=[("0", "1"), ("77", "2")])),
        ["model.xml", "no layer has id '77'"]),
    "openvino-duplicate-input": (
        _ov(ov_xml([("INPUT0", "?,4", None), ("INPUT0", "?,4", None)])),
        ["model.xml", "input name 'INPUT0' twice"]),
    "openvino-dangling-result": (
        _ov(ov_xml([("INPUT0", "?,4", None)], results=2, edges=[("0", "1"), ("1", "2")])),
        ["model.xml", "Result layer 'r1' has no incoming edge"]),
    "openvino-duplicate-layer-id": (
        _ov(ov_valid().replace(b'id="1" name="relu"', b'id="0" name="relu"')),
        ["model.xml", "two layers with id '0'"]),
    "openvino-nesting": (_ov(b'<?xml version="1.0"?><net>' + b"<a>" * 5000 + b"</a>" * 5000
                             + b"</net>"), ["model.xml", "nested more than 64"]),
    "openvino-huge-name": (_ov(ov_xml([("N" * 600_000, "?,4", None)])),
                           ["model.xml", "600000 characters"]),
    # SavedModel
    "savedmodel-duplicate-input": (
        _sm(savedmodel_entries([(b"x", (-1, 4)), (b"x", (-1, 4))], [(b"y", (-1, 4))])),
        ["saved_model.pb", "input name 'x' twice"]),
    "savedmodel-name-not-utf8": (_sm(savedmodel_entries([(b"x\xff", (1,))], [(b"y", (1,))])),
                                 ["saved_model.pb", "not UTF-8"]),
    "savedmodel-truncated": (_sm(savedmodel_valid()[:-7]),
                             ["saved_model.pb", "is not a TensorFlow SavedModel"]),
    "savedmodel-rank-overflow": (_sm(savedmodel_entries([(b"x", (1,) * 70)], [(b"y", (1,))])),
                                 ["saved_model.pb", "70 dimensions"]),
    # TorchScript zips
    "torchscript-corrupt-deflate": (_pt(zip_corrupt_stream(zipfile.ZIP_DEFLATED)),
                                    ["model.pt", "damaged zip", "archive/data.pkl"]),
    "torchscript-corrupt-bzip2": (_pt(zip_corrupt_stream(zipfile.ZIP_BZIP2)),
                                  ["model.pt", "damaged zip", "archive/data.pkl"]),
    "torchscript-corrupt-lzma": (_pt(zip_corrupt_stream(zipfile.ZIP_LZMA)),
                                 ["model.pt", "damaged zip"]),
    "torchscript-negative-offset": (_pt(zip_patch_central(torch_zip(), offset=-5)),
                                    ["model.pt", "lies about its place"]),
    "torchscript-negative-header-offset": (_pt(zip_shift_central(torch_zip(), 100)),
                                           ["model.pt", "offset -100"]),
    "torchscript-lying-size": (
        _pt(zip_patch_central(torch_zip(), compress_size=1 << 31, file_size=1 << 31)),
        ["model.pt", "lies about its place"]),
    "torchscript-short-member": (_pt(zip_patch_central(torch_zip(), file_size=5000)),
                                 ["model.pt", "declares 5000"]),
    "torchscript-zip-bomb": (
        _pt(torch_zip({"archive/data.pkl": torch_pickle(), "archive/data/0": b"\0" * (8 << 20)},
                      zipfile.ZIP_DEFLATED)),
        ["model.pt", "archive/data/0", "more than 100x", "zip bomb"]),
    "torchscript-truncated-zip": (_pt(torch_zip()[:-30]), ["model.pt", "damaged zip"]),
    "torchscript-bad-crc": (_pt(_flip_in_data_pkl(torch_zip())),
                            ["model.pt", "damaged zip", "CRC"]),
}


def _check_refusal(err: str, words: list[str]) -> None:
    assert err.startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 2 and lines[1].startswith("  fix: "), err
    assert all(len(line) <= LINE_LIMIT for line in lines), err
    for word in words:
        assert word in err, (word, err)


@pytest.mark.parametrize("case", sorted(HOSTILE), ids=sorted(HOSTILE))
def test_hostile_model_file_exits_2_and_writes_nothing(tmp_path: Path, capsys, case: str) -> None:
    files, words = HOSTILE[case]
    root = write_tree(tmp_path / "in", dict(files))
    before = _fingerprint(root)
    out = tmp_path / "out"
    for argv in (["config", str(root)], ["repository", str(root), "-o", str(out)]):
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 2, captured.err
        _check_refusal(captured.err, words)
        assert captured.out == ""
    assert not out.exists()
    assert _fingerprint(root) == before


def test_hostile_model_in_a_repository_names_the_model(tmp_path: Path, capsys) -> None:
    files = {f"bad/1/{k}": v for k, v in HOSTILE["torchscript-corrupt-bzip2"][0].items()
             if k != "config.pbtxt"}
    files["bad/config.pbtxt"] = pytorch_config()
    root = write_tree(tmp_path / "repo", files)
    assert main(["repository", str(root), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    _check_refusal(err, ["bad", "model.pt", "damaged zip"])
    assert not (tmp_path / "out").exists()


# --- what is fine is read, and only what is needed ----------------------------------------------

def test_valid_files_of_every_kind_are_read(tmp_path: Path, capsys) -> None:
    for i, files in enumerate([{"model.onnx": onnx_valid()}, _ov(ov_valid()),
                               _sm(savedmodel_valid()), _pt(torch_zip())]):
        root = write_tree(tmp_path / f"in{i}", dict(files))
        assert main(["config", str(root)]) == 0, capsys.readouterr().err
    capsys.readouterr()


def test_external_data_beside_the_model_is_accepted(tmp_path: Path, capsys) -> None:
    model = onnx_bytes(_IN, _OUT, (onnx_initializer(b"W", b"sub/./w.bin"),))
    root = write_tree(tmp_path / "in", {"model.onnx/model.onnx": model,
                                        "model.onnx/sub/w.bin": b"\0" * 4})
    assert main(["config", str(root)]) == 0, capsys.readouterr().err


def test_what_cannot_be_told_is_a_warning_not_a_guess(tmp_path: Path, capsys) -> None:
    onnx_config = ('platform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
                   'input [ { name: "A" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    unshaped = onnx_bytes([(b"A", None)], _OUT)
    root = write_tree(tmp_path / "onnx", {"model.onnx": unshaped, "config.pbtxt": onnx_config})
    assert main(["config", str(root)]) == 0
    assert "tensor 'A' declares no shape; the dims config.pbtxt gives it are not checked" in \
        capsys.readouterr().err
    # ... and a config generated from it is refused, not written with made-up dims
    root = write_tree(tmp_path / "onnx-gen", {"model.onnx": unshaped})
    assert main(["config", str(root)]) == 2
    assert "'A' of model.onnx has no known rank" in capsys.readouterr().err
    one = savedmodel_entries([(b"x", (-1, 4))], [(b"y", (-1, 4))])
    meta = one[one.index(b"\x12", 2):]  # SavedModel.meta_graphs (field 2), after the version
    root = write_tree(tmp_path / "sm", _sm(one + meta))
    assert main(["repository", str(root), "-o", str(tmp_path / "out")]) == 0
    assert "has 2 MetaGraphs tagged 'serve'; the first one's signature is read" in \
        capsys.readouterr().err


def test_openvino_intervals_and_question_marks_are_dynamic() -> None:
    sig = modelread.read_openvino(ov_valid(shape="1..8,4", dims=[]))
    assert sig.inputs[0].dims == (-1, 4)
    sig = modelread.read_openvino(ov_valid(shape="?,..4", dims=[]))
    assert sig.inputs[0].dims == (-1, -1)
    assert modelread.read_openvino(ov_valid(shape="", dims=[])).inputs[0].dims == ()


def test_onnx_skeleton_drops_unknown_and_large_fields() -> None:
    big = b"\x01" * (4 << 20)
    model = onnx_bytes(_IN, _OUT, extra_graph=_field(1, big) + _field(10, big),
                       extra_model=_field(6, big) + _field(99, big) + _field(14, big))
    skeleton = onnx_skeleton(model)
    assert len(skeleton) < 200, len(skeleton)
    assert modelread.read_onnx(skeleton).inputs[0].name == "A"


def test_savedmodel_skeleton_drops_the_graph() -> None:
    pb = savedmodel_entries([(b"x", (-1, 4))], [(b"y", (-1, 4))], graph_def=b"\x01" * (4 << 20))
    skeleton = savedmodel_skeleton(pb)
    assert len(skeleton) < 300
    sig = modelread.read_savedmodel(skeleton)
    assert not isinstance(sig, str) and sig.inputs[0].name == "x"


def test_onnx_skeleton_keeps_only_initializers_that_matter() -> None:
    """A million weight names are not copied: only initializers a graph input names (which
    are then not inputs) and external ones (whose location is checked)."""
    inits = [onnx_initializer(f"w{i}".encode()) for i in range(1000)]
    inits += [onnx_initializer(b"A"), onnx_initializer(b"E", b"e.bin")]
    model = onnx_bytes([(b"A", [1]), (b"B", [1])], _OUT, tuple(inits))
    assert len(onnx_skeleton(model)) < 120
    sig = modelread.read_onnx(onnx_skeleton(model))
    assert [t.name for t in sig.inputs] == ["B"] and sig.external == (("e.bin", 0),)


def test_skeleton_budgets_are_checked_while_walking(monkeypatch: pytest.MonkeyPatch) -> None:
    model = onnx_bytes(_IN, _OUT, tuple(onnx_initializer(f"w{i}".encode(), b"w.bin")
                                        for i in range(50)))
    monkeypatch.setattr(modelread, "MAX_INITIALIZERS", 10)
    with pytest.raises(InputError, match="more than 10 initializers"):
        onnx_skeleton(model)
    monkeypatch.setattr(modelread, "MAX_INITIALIZERS", 1000)
    monkeypatch.setattr(modelread, "MAX_SKELETON_BYTES", 100)
    with pytest.raises(InputError, match="exceed"):
        onnx_skeleton(model)
    monkeypatch.setattr(modelread, "MAX_SKELETON_BYTES", 1 << 20)
    monkeypatch.setattr(modelread, "MAX_WIRE_FIELDS", 20)
    with pytest.raises(InputError, match="more than 20 fields"):
        onnx_skeleton(model)


def test_zip_entry_budget_is_checked_before_zipfile_reads(tmp_path: Path, capsys,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "TORCHSCRIPT_MAX_ENTRIES", 10)
    members = {f"archive/data/{i}": b"x" for i in range(20)}
    members["archive/data.pkl"] = torch_pickle()
    root = write_tree(tmp_path / "in", _pt(torch_zip(members)))
    assert main(["config", str(root)]) == 2
    _check_refusal(capsys.readouterr().err, ["model.pt", "zip of 21 entries", "at most 10"])


@pytest.mark.parametrize(("body", "said"), [
    ("def forward(self, x: " + "a." * 100_000 + "b) -> Tensor:\n    return x\n",
     "model.pt: forward's arguments could not be found"),
    ("def forward(self, x: Tensor) -> Tensor:\n    return " + "(" * 100_000 + ")" * 100_000,
     "config.pbtxt agrees with model.pt: input names and count"),
    ("def forward(self, x: Tensor) -> Tensor:\n" + "    x = 1\n" * 700_000,
     "config.pbtxt agrees with model.pt: input names and count"),
], ids=["annotation-100k-deep", "body-100k-parentheses", "body-7MiB"])
def test_torchscript_forward_is_read_from_its_header_only(tmp_path: Path, capsys, body: str,
                                                          said: str) -> None:
    """Only forward's header is parsed (ast of a whole code file costs ~250x its size): a
    body of any depth or size is never parsed; a header nested too deep gets a note."""
    code = "class Net(Module):\n  " + body
    root = write_tree(tmp_path / "in", {
        "model.pt": torch_zip({"archive/data.pkl": torch_pickle(),
                               "archive/code/__torch__.py": code.encode()}),
        "config.pbtxt": pytorch_config(("x",))})
    assert main(["config", str(root)]) == 0
    assert said in capsys.readouterr().err


def test_torchscript_header_with_string_defaults_is_read() -> None:
    code = ('class Net(Module):\n  training : bool\n  def forward(self: __torch__.Net,\n'
            '    image: Tensor,\n    mask: Tensor,\n    mode: str="a)\\"b") -> Tensor:\n'
            '    return image\n')
    sig = modelread.read_torchscript({"a/data.pkl": torch_pickle(),
                                      "a/code/__torch__.py": code.encode()})
    assert not isinstance(sig, str)
    assert [t.name for t in sig.inputs] == ["image", "mask", "mode"]


def test_pickle_of_many_strings_reads_a_prefix_only(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "in", _pt(torch_zip({
        "archive/data.pkl": torch_pickle(strings=300_000),
        "archive/code/__torch__.py": TORCH_CODE.encode()})))
    tree = reader.read_input(root)
    pkl = tree.members("model.pt")["archive/data.pkl"]
    assert len(pkl) == reader.TORCHSCRIPT_PICKLE_PREFIX
    assert modelread.torchscript_class(pkl) == ("__torch__", "Net")


def test_first_global_keeps_no_strings_and_stops_at_its_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelread, "MAX_PICKLE_OPS", 50)
    strings = b"\x80\x02" + b"X\x01\x00\x00\x00a" * 100 + b"c__torch__\nNet\n."
    assert modelread.torchscript_class(strings) is None  # beyond the budget: a note, no guess
    monkeypatch.setattr(modelread, "MAX_PICKLE_OPS", 500)
    assert modelread.torchscript_class(strings) == ("__torch__", "Net")


def test_repository_roots_are_found_in_one_pass() -> None:
    from packager.backends import EntryKind
    from packager.inputs import Entry

    entries = []
    for i in range(3000):
        entries += [Entry(f"m{i}", EntryKind.DIR), Entry(f"m{i}/1", EntryKind.DIR),
                    Entry(f"m{i}/config.pbtxt", EntryKind.FILE)]
    roots = read_roots(entries)
    assert len(roots) == 6000 and roots[:2] == ("m0/", "m0/1/")


# --- peak memory, measured in a fresh interpreter ----------------------------------------------

def test_hostile_files_are_read_in_bounded_memory(tmp_path: Path) -> None:
    """A 64 MiB unknown ONNX field, a 64 MiB GraphDef, a pickle of a million strings, 2 MiB of
    TorchScript code: each read with less than 40 MiB over the interpreter's own start (which
    already loads protobuf). Measured before issue 21: 192, 128, 13 and 476 MiB; after:
    18 (the onnx import), 2, 3 and 5 MiB."""
    big = b"\x01" * (64 << 20)
    cases: dict[str, Files] = {
        "onnx": {"model.onnx": onnx_bytes([(b"A", ["b", 4])], [(b"O", ["b", 4])],
                                          extra_model=_field(99, big))},
        "savedmodel": _sm(savedmodel_entries([(b"x", (-1, 4))], [(b"y", (-1, 4))],
                                             graph_def=big)),
        "pickle": _pt(torch_zip({"archive/data.pkl": torch_pickle(strings=1_000_000),
                                 "archive/code/__torch__.py": TORCH_CODE.encode()})),
        "code": _pt(torch_zip({"archive/data.pkl": torch_pickle(),
                               "archive/code/__torch__.py": (TORCH_CODE + "    x = 1\n"
                                                             * 200_000).encode()})),
    }
    del big
    for name, files in cases.items():
        root = write_tree(tmp_path / name, files)
        code, start, peak, _ = peak_rss(root)
        assert code == 0, name
        assert peak - start < 40 << 10, (name, start, peak)
