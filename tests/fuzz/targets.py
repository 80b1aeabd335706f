"""The fuzz targets: each takes any bytes and must either read them or raise InputError (the
one error class the CLI turns into exit 2). Shared by the atheris harness (run.py, `nox -s
fuzz`) and the corpus replay in the unit tests (test_fuzz_corpus.py), so what a fuzzer found
stays a regression test.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from packager import modelread
from packager.errors import InputError

LINE_LIMIT = 400  # as tests/test_readers_hostile.py: a refusal's lines stay short


def _refused(err: InputError, file: str) -> None:
    text = str(err)
    assert text.startswith(file + ": "), text
    assert all(len(line) <= LINE_LIMIT for line in text.split("\n")), text


def onnx(data: bytes) -> None:
    try:
        sig = modelread.read_onnx(modelread.onnx_skeleton(data))
    except InputError as err:
        _refused(err, "model.onnx")
        return
    assert len({t.name for t in sig.inputs}) == len(sig.inputs)


def savedmodel(data: bytes) -> None:
    file = "model.savedmodel/saved_model.pb"
    try:
        modelread.read_savedmodel(modelread.savedmodel_skeleton(data))
    except InputError as err:
        _refused(err, file)


def openvino(data: bytes) -> None:
    try:
        modelread.read_openvino(data)
    except InputError as err:
        _refused(err, "model.xml")


def pickle(data: bytes) -> None:
    top = modelread.torchscript_class(data)
    assert top is None or top[0].startswith("__torch__")


def torchscript(data: bytes) -> None:
    """Code member text after a data.pkl: forward's arguments, or a note."""
    members = {"archive/data.pkl": b"\x80\x02c__torch__\nNet\nq\x00.",
               "archive/code/__torch__.py": data}
    got = modelread.read_torchscript(members)
    assert isinstance(got, (str, modelread.ModelSignature))


_ZIP = Path(tempfile.gettempdir()) / f"triton-packager-fuzz-{os.getpid()}" / "model.pt"


def zip_archive(data: bytes) -> None:
    """The executor's TorchScript zip reader (executor/reader.py) on any bytes as model.pt:
    its members, or an InputError -- never zlib.error, MemoryError or an OSError blamed on
    the machine."""
    from packager.executor.reader import _torchscript_members

    _ZIP.parent.mkdir(exist_ok=True)
    _ZIP.write_bytes(data)
    try:
        for _name, blob in _torchscript_members(_ZIP):
            assert len(blob) <= 8 << 20
    except InputError as err:
        _refused(err, "model.pt")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "onnx": onnx, "savedmodel": savedmodel, "openvino": openvino, "pickle": pickle,
    "torchscript": torchscript, "zip": zip_archive,
}
