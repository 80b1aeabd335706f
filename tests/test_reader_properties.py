"""Properties of the model readers over generated and mutated files (issue 21): whatever the
bytes, a reader either reads the model or refuses it with an InputError -- through the CLI exit
2, one bounded message naming the model file, no traceback, nothing written -- and what it
accepts is what the file says: no tensor declared twice, no unreadable dimension turned into a
dynamic one.

Two levels: the pure readers with many examples (cheap), and the CLI end to end with fewer.
"""

from __future__ import annotations

import random
import re
import tempfile
import zipfile
from pathlib import Path

import pytest
from hostile import (
    TORCH_CODE,
    onnx_bytes,
    onnx_initializer,
    ov_xml,
    pytorch_config,
    savedmodel_entries,
    torch_pickle,
    torch_zip,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import write_tree
from test_hostile_package import _fingerprint
from test_readers_hostile import LINE_LIMIT

from packager import modelread
from packager.cli import main
from packager.errors import InputError
from packager.executor.reader import read_input
from packager.modelconfig import parse_config

PURE = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CLI = settings(max_examples=40, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_NAME = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                max_size=10)
_RAW_NAME = st.one_of(_NAME.map(str.encode), st.binary(min_size=1, max_size=10))
_ONNX_DIM = st.one_of(st.integers(-2, 1 << 64), st.sampled_from(["batch", "seq", ""]))
_DIMS = st.one_of(st.none(), st.lists(_ONNX_DIM, max_size=5))


@st.composite
def onnx_models(draw: st.DrawFn, hostile: bool = True) -> bytes:
    """Valid graphs (unique UTF-8 names, ranks known, external data beside the model) or, with
    `hostile`, anything the wire format can say: raw names, huge or missing dims, duplicates,
    external data anywhere."""
    if not hostile or draw(st.booleans()):
        names = draw(st.lists(_NAME, min_size=2, max_size=6, unique=True))
        split = draw(st.integers(1, len(names) - 1))
        dims = st.lists(st.one_of(st.integers(1, 8), st.just("batch")), min_size=1, max_size=4)
        return onnx_bytes([(n.encode(), draw(dims)) for n in names[:split]],
                          [(n.encode(), draw(dims)) for n in names[split:]],
                          tuple(onnx_initializer(b"W", b"w.bin")
                                for _ in range(draw(st.integers(0, 1)))))
    inputs = draw(st.lists(st.tuples(_RAW_NAME, _DIMS), min_size=0, max_size=4))
    outputs = draw(st.lists(st.tuples(_RAW_NAME, _DIMS), min_size=0, max_size=4))
    inits = draw(st.lists(st.tuples(_RAW_NAME, st.one_of(
        st.none(), st.sampled_from([b"w.bin", b"/abs", b"../up", b"a/../../b", b"C:x"]),
        st.binary(max_size=8))), max_size=3))
    return onnx_bytes(inputs, outputs, tuple(onnx_initializer(n, loc) for n, loc in inits))


_OV_DIM_TEXT = st.one_of(st.sampled_from(["-1", "?", "1..8", "..4", "2..", "0", "4", "-2",
                                          "1" * 19, "9" * 19, "1" * 31, "\u0663", "1.5", "0x10",
                                          " 7 ", "", "...", "+3"]),
                         st.text(max_size=6))
_OV_GOOD_DIM = st.sampled_from(["-1", "?", "1..8", "4", "2", "16"])


def _xml_safe(text: str) -> str:
    return "".join(c for c in text if c not in "<>&'\"" and (c.isprintable() or c == " "))


@st.composite
def openvino_models(draw: st.DrawFn) -> bytes:
    """An IR with 1-3 Parameters, a ReLU and Results; dims valid, or hostile text."""
    hostile = draw(st.booleans())
    n = draw(st.integers(1, 3))
    params = []
    for i in range(n):
        names = draw(st.sampled_from(["INPUT0", "INPUT1", "A,B", "x\\,y"])) if hostile \
            else f"INPUT{i}"
        use_shape = draw(st.booleans())
        dims = [_xml_safe(d) for d in draw(st.lists(_OV_DIM_TEXT if hostile else _OV_GOOD_DIM,
                                                    min_size=0 if hostile else 1, max_size=4))]
        shape = ",".join(dims) if use_shape else None
        port_dims = None if use_shape and draw(st.booleans()) else dims
        params.append((names, shape, port_dims))
    return ov_xml(params, draw(st.integers(0, 2)) if hostile else 1)


@st.composite
def savedmodels(draw: st.DrawFn) -> bytes:
    """A serving signature: valid (unique names, dims -1 or positive) or hostile (raw names,
    any int64, repeats), with a GraphDef of noise as a real file carries."""
    if draw(st.booleans()):
        names = draw(st.lists(_NAME, min_size=2, max_size=6, unique=True))
        split = draw(st.integers(1, len(names) - 1))
        dims = st.lists(st.sampled_from([-1, 1, 4]), min_size=1, max_size=4).map(tuple)
        return savedmodel_entries([(n.encode(), draw(dims)) for n in names[:split]],
                                  [(n.encode(), draw(dims)) for n in names[split:]],
                                  graph_def=draw(st.binary(max_size=64)))
    dims = st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=5).map(tuple)
    inputs = draw(st.lists(st.tuples(_RAW_NAME, dims), max_size=4))
    outputs = draw(st.lists(st.tuples(_RAW_NAME, dims), max_size=4))
    return savedmodel_entries(inputs, outputs, graph_def=draw(st.binary(max_size=64)))


@st.composite
def torchscript_zips(draw: st.DrawFn) -> bytes:
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                                        zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
    pkl = torch_pickle(strings=draw(st.integers(0, 50)))
    members = {"archive/data.pkl": pkl, "archive/code/__torch__.py": TORCH_CODE.encode(),
               "archive/data/0": b"\0" * draw(st.integers(0, 4096))}
    return torch_zip(members, compression)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """A valid-shaped file, then up to three byte-level edits: flips, cuts, inserts, copies."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "set", "dup"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
        else:
            end = min(len(data), at + draw(st.integers(1, 32)))
            data[at:at] = data[at:end]
    return bytes(data)


# --- the pure readers: InputError or a signature, never anything else --------------------------

def _read_onnx(data: bytes) -> modelread.ModelSignature | None:
    try:
        return modelread.read_onnx(modelread.onnx_skeleton(data))
    except InputError as err:
        assert "model.onnx" in str(err)
        return None


@PURE
@given(mutated(onnx_models()))
def test_onnx_reader_reads_or_refuses(data: bytes) -> None:
    sig = _read_onnx(data)
    if sig is None:
        return
    names = [t.name for t in sig.inputs]
    assert len(names) == len(set(names))  # never a tensor twice
    assert len({t.name for t in sig.outputs or ()}) == len(sig.outputs or ())
    for loc, _ in sig.external:
        assert not loc.startswith("/") and ".." not in loc.split("/")


@PURE
@given(openvino_models())
def test_openvino_dims_are_numbers_or_refused(xml: bytes) -> None:
    """Never an unreadable dimension read as -1: every accepted dim is the number written, or
    -1 for what OpenVINO itself calls dynamic (-1, ?, an interval)."""
    try:
        sig = modelread.read_openvino(xml)
    except InputError as err:
        assert str(err).startswith("model.xml: ")
        return
    text = xml.decode()
    for t in sig.inputs:
        assert t.dims is not None
        for d in t.dims:
            assert d == -1 or f"<dim>{d}</dim>" in text or str(d) in text
    assert len({t.name for t in sig.inputs}) == len(sig.inputs)


@PURE
@given(_OV_DIM_TEXT)
def test_one_openvino_dim(text: str) -> None:
    """Accepted exactly when OpenVINO's grammar says so: a number within int64 is itself,
    -1, ? and intervals are dynamic, anything else is refused."""
    stripped = text.strip()
    number = stripped.isascii() and stripped.isdigit() and int(stripped) <= modelread.MAX_DIM
    dynamic = stripped in ("-1", "?") or re.fullmatch(r"[0-9]*\.\.[0-9]*", stripped) is not None
    try:
        value = modelread._ov_dim("model.xml", "x", text)
    except InputError as err:
        assert not (number or dynamic), text
        assert str(err).startswith("model.xml: ") and len(str(err).split("\n")[0]) < LINE_LIMIT
        return
    assert value == (int(stripped) if number else -1) and (number or dynamic)


@PURE
@given(mutated(openvino_models()))
def test_openvino_reader_reads_or_refuses(xml: bytes) -> None:
    try:
        modelread.read_openvino(xml)
    except InputError as err:
        assert str(err).startswith("model.xml: ")


@PURE
@given(mutated(savedmodels()))
def test_savedmodel_reader_reads_or_refuses(data: bytes) -> None:
    try:
        sig = modelread.read_savedmodel(modelread.savedmodel_skeleton(data))
    except InputError as err:
        assert str(err).startswith("model.savedmodel/saved_model.pb: ")
        return
    if not isinstance(sig, str):
        assert len({t.name for t in sig.inputs}) == len(sig.inputs)


@PURE
@given(st.binary(max_size=256), mutated(st.just(torch_pickle(strings=5))))
def test_pickle_walker_never_raises(noise: bytes, pkl: bytes) -> None:
    for data in (noise, pkl, pkl + noise):
        top = modelread.torchscript_class(data)
        assert top is None or top[0].startswith("__torch__")


@PURE
@given(mutated(torchscript_zips()))
def test_zip_reader_reads_or_refuses(data: bytes) -> None:
    """The executor's TorchScript zip reader on mutated archives (deflate, bzip2, lzma, stored):
    members within their budgets, or an InputError naming model.pt -- never zlib.error,
    MemoryError, or an OSError reported as the machine's fault."""
    from fuzz.targets import zip_archive

    zip_archive(data)


# --- end to end: the CLI's promise -------------------------------------------------------------

def _files(kind: str, data: bytes) -> dict[str, bytes | str | None]:
    if kind == "onnx":
        return {"model.onnx": data, "w.bin": b"\0"}
    if kind == "openvino":
        return {"model.xml": data, "model.bin": b""}
    if kind == "savedmodel":
        return {"model.savedmodel/saved_model.pb": data}
    return {"model.pt": data, "config.pbtxt": pytorch_config()}


_MODEL_FILE = {"onnx": "model.onnx", "openvino": "model.xml",
               "savedmodel": "model.savedmodel/saved_model.pb", "torchscript": "model.pt"}
_STRATEGIES = {"onnx": onnx_models(), "openvino": openvino_models(),
               "savedmodel": savedmodels(), "torchscript": torchscript_zips()}


def _promise(kind: str, data: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_tree(Path(tmp) / "in", _files(kind, data))
        before = _fingerprint(root)
        out = Path(tmp) / "out"
        code = main(["repository", str(root), "-o", str(out)])
        err = capsys.readouterr().err
        assert code in (0, 2), err
        assert "Traceback" not in err and "internal error" not in err, err
        assert _fingerprint(root) == before
        if code == 2:
            lines = err.rstrip("\n").split("\n")
            assert lines[0].startswith("error: "), err
            assert len(lines) == 2 and lines[1].startswith("  fix: "), err
            assert all(len(line) <= LINE_LIMIT for line in lines), err
            assert not out.exists()
            # blamed on the model file (or the config it is checked against), never on the
            # generated config.pbtxt
            assert _MODEL_FILE[kind] in lines[0] or (
                kind == "torchscript" and "config.pbtxt" in lines[0]), err
        else:
            config = out / "model_repository" / "model" / "config.pbtxt"
            parsed = parse_config(config.read_text())
            names = [n for n, _, _ in parsed.inputs]
            assert len(names) == len(set(names))


@pytest.mark.parametrize("kind", sorted(_STRATEGIES))
def test_cli_keeps_its_promise_on_generated_and_mutated_models(kind: str, capsys) -> None:
    @CLI
    @given(st.one_of(_STRATEGIES[kind], mutated(_STRATEGIES[kind])))
    def run(data: bytes) -> None:
        _promise(kind, data, capsys)

    run()


# Found by Hypothesis: an ONNX output of shape [0] was blamed on the generated config.pbtxt.
_EMPTY_DIM_ONNX = (b"\x08\x08B\x02\x10\r:\x14\x12\x01gb\x0f\n\x010\x12\n\n\x08\x08\x01"
                   b"\x12\x04\n\x02\x08\x00")


def test_a_size_0_dimension_is_blamed_on_the_model_file(tmp_path: Path, capsys) -> None:
    _promise("onnx", _EMPTY_DIM_ONNX, capsys)  # the promise, whatever the exit code
    root = write_tree(tmp_path / "in", _files("onnx", _EMPTY_DIM_ONNX))
    assert main(["repository", str(root), "-o", str(tmp_path / "out")]) == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("error: model.onnx: ") and "size 0" in first, first


def test_read_input_on_a_random_byte_file_of_each_name(tmp_path: Path) -> None:
    rng = random.Random(21)
    for i, name in enumerate(["model.onnx", "model.xml", "model.savedmodel/saved_model.pb",
                              "model.pt"]):
        data = bytes(rng.randrange(256) for _ in range(4096))
        tree = read_input(write_tree(tmp_path / str(i), {name: data}))
        assert tree.entries
