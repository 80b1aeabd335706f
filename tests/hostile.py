"""Model files as a hostile user would write them, built byte by byte (no framework needed):
ONNX and SavedModel protobufs, OpenVINO XML and TorchScript zips. Shared by the example tests
(test_readers_hostile.py), the property tests (test_reader_properties.py) and the fuzz targets
(fuzz/), so every one of them speaks of the same files.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

from models import _field, savedmodel_pb

# ONNX TensorProto.DataType FLOAT; TensorFlow DT_FLOAT.
F32 = 1
TF_F32 = 1

TORCH_CODE = (
    "class Net(Module):\n"
    "  __parameters__ = []\n"
    "  def forward(self: __torch__.Net,\n"
    "    image: Tensor,\n"
    "    mask: Tensor) -> Tensor:\n"
    "    return torch.mul(image, mask)\n"
)


# --- ONNX, field by field (onnx.proto: ModelProto.ir_version=1, opset_import=8, graph=7;
# GraphProto.node=1, initializer=5, input=11, output=12; ValueInfoProto.name=1, type=2;
# TypeProto.tensor_type=1; Tensor.elem_type=1, shape=2; TensorShapeProto.dim=1;
# Dimension.dim_value=1, dim_param=2; TensorProto.name=8, external_data=13, data_location=14)

def onnx_dim(d: int | str) -> bytes:
    return _field(1, _field(1, d) if isinstance(d, int) else _field(2, d.encode()))


def onnx_value(name: bytes, dims: list[int | str] | None, elem: int = F32) -> bytes:
    tensor = _field(1, elem)
    if dims is not None:
        tensor += _field(2, b"".join(onnx_dim(d) for d in dims))
    return _field(1, name) + _field(2, _field(1, tensor))


def onnx_initializer(name: bytes, location: bytes | None = None,
                     offset: bytes | None = None, length: bytes | None = None) -> bytes:
    out = _field(8, name)
    if location is not None:
        out += _field(13, _field(1, b"location") + _field(2, location))
        for key, value in ((b"offset", offset), (b"length", length)):
            if value is not None:
                out += _field(13, _field(1, key) + _field(2, value))
        out += _field(14, 1)
    return out


def onnx_bytes(inputs: list[tuple[bytes, list[int | str] | None]],
               outputs: list[tuple[bytes, list[int | str] | None]],
               initializers: tuple[bytes, ...] = (), extra_graph: bytes = b"",
               extra_model: bytes = b"") -> bytes:
    """A ModelProto with no nodes: enough for the reader, which never looks at them."""
    graph = _field(2, b"g") + b"".join(_field(5, i) for i in initializers)
    graph += b"".join(_field(11, onnx_value(n, d)) for n, d in inputs)
    graph += b"".join(_field(12, onnx_value(n, d)) for n, d in outputs)
    graph += extra_graph
    opset = _field(8, _field(2, 13))
    return _field(1, 8) + opset + _field(7, graph) + extra_model


def onnx_valid() -> bytes:
    return onnx_bytes([(b"INPUT0", ["batch", 4])], [(b"OUTPUT0", ["batch", 4])])


# --- OpenVINO IR ------------------------------------------------------------------------------

def ov_xml(params: list[tuple[str, str | None, list[str] | None]],
           results: int = 1, edges: list[tuple[str, str]] | None = None,
           head: str = '<?xml version="1.0"?>') -> bytes:
    """Parameters (names, shape attribute or None, port dims or None), a ReLU on the first,
    and `results` Result layers fed by it. Edges default to the real wiring."""
    layers = []
    for i, (names, shape, dims) in enumerate(params):
        data = f'<data element_type="f32"{"" if shape is None else f" shape={shape!r}"}/>'
        port_dims = "".join(f"<dim>{d}</dim>" for d in dims or [])
        layers.append(f'<layer id="{i}" name="p{i}" type="Parameter" version="opset1">{data}'
                      f'<output><port id="0" precision="FP32" names="{names}">{port_dims}</port>'
                      "</output></layer>")
    relu = len(params)
    layers.append(f'<layer id="{relu}" name="relu" type="ReLU" version="opset1"><input>'
                  '<port id="0" precision="FP32"><dim>-1</dim></port></input><output>'
                  f'<port id="1" precision="FP32" names="OUTPUT0"><dim>-1</dim></port></output>'
                  "</layer>")
    for r in range(results):
        layers.append(f'<layer id="{relu + 1 + r}" name="r{r}" type="Result" version="opset1">'
                      '<input><port id="0" precision="FP32"><dim>-1</dim></port></input></layer>')
    wiring = edges if edges is not None else [("0", str(relu))] + [
        (str(relu), str(relu + 1 + r)) for r in range(results)]
    edge_xml = "".join(
        f'<edge from-layer="{a}" from-port="{0 if a != str(relu) else 1}" to-layer="{b}" '
        'to-port="0"/>' for a, b in wiring)
    return (f'{head}<net name="n" version="11"><layers>{"".join(layers)}</layers>'
            f"<edges>{edge_xml}</edges></net>").encode()


def ov_valid(shape: str = "?,4", dims: list[str] | None = None) -> bytes:
    return ov_xml([("INPUT0", shape, dims if dims is not None else ["-1", "4"])])


# --- SavedModel --------------------------------------------------------------------------------

def savedmodel_valid() -> bytes:
    return savedmodel_pb({"x": (TF_F32, (-1, 4))}, {"y": (TF_F32, (-1, 4))})


def savedmodel_entries(inputs: list[tuple[bytes, tuple[int, ...]]],
                       outputs: list[tuple[bytes, tuple[int, ...]]],
                       graph_def: bytes = b"") -> bytes:
    """Like models.savedmodel_pb, with raw (possibly repeated or non-UTF-8) keys and an
    optional GraphDef (MetaGraphDef field 2) as a real saved_model.pb carries."""
    def info(key: bytes, dims: tuple[int, ...]) -> bytes:
        shape = b"".join(_field(2, _field(1, d)) for d in dims)
        value = _field(1, key + b":0") + _field(2, TF_F32) + _field(3, shape)
        return _field(1, key) + _field(2, value)

    sig = b"".join(_field(1, info(k, d)) for k, d in inputs)
    sig += b"".join(_field(2, info(k, d)) for k, d in outputs)
    entry = _field(1, b"serving_default") + _field(2, sig)
    meta = _field(1, _field(4, b"serve")) + (_field(2, graph_def) if graph_def else b"") + \
        _field(5, entry)
    return _field(1, 1) + _field(2, meta)


# --- TorchScript -------------------------------------------------------------------------------

def torch_pickle(strings: int = 0) -> bytes:
    """data.pkl as torch writes its start: the module's class first (GLOBAL), then state.
    `strings` extra strings make the state large, as a hostile file would."""
    body = b"\x80\x02c__torch__\nNet\nq\x00)\x81q\x01}q\x02("
    body += b"".join(pickle.dumps(f"s{i}", protocol=2)[2:-1] for i in range(strings))
    return body + b"u."


def torch_zip(members: dict[str, bytes] | None = None,
              compression: int = zipfile.ZIP_STORED) -> bytes:
    members = members if members is not None else {
        "archive/data.pkl": torch_pickle(), "archive/code/__torch__.py": TORCH_CODE.encode(),
        "archive/data/0": b"\x00" * 64, "archive/version": b"3\n"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zip_corrupt_stream(compression: int) -> bytes:
    """A zip whose data.pkl stream is garbage inside (deflate, bzip2 or lzma)."""
    data = torch_pickle(strings=200)
    raw = torch_zip({"archive/data.pkl": data}, compression)
    # The local header is 30 bytes + name; damage the middle of the compressed stream.
    start = 30 + len("archive/data.pkl")
    mid = start + 20
    return raw[:mid] + bytes(b ^ 0x5A for b in raw[mid:mid + 40]) + raw[mid + 40:]


def zip_patch_central(raw: bytes, *, offset: int | None = None, compress_size: int | None = None,
                      file_size: int | None = None) -> bytes:
    """Rewrite the first central-directory entry's header offset or sizes (a lying zip)."""
    at = raw.rfind(b"PK\x01\x02")
    while True:  # the first entry of the central directory
        prev = raw.rfind(b"PK\x01\x02", 0, at)
        if prev < 0:
            break
        at = prev
    buf = bytearray(raw)
    if compress_size is not None:
        struct.pack_into("<I", buf, at + 20, compress_size)
    if file_size is not None:
        struct.pack_into("<I", buf, at + 24, file_size)
    if offset is not None:
        struct.pack_into("<I", buf, at + 42, offset & 0xFFFFFFFF)
    return bytes(buf)


def zip_shift_central(raw: bytes, delta: int) -> bytes:
    """Move the end record's central-directory offset by `delta`: zipfile then computes
    negative header offsets for every entry (issue 21: reported as an environment fault)."""
    buf = bytearray(raw)
    at = raw.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack_from("<I", buf, at + 16)
    struct.pack_into("<I", buf, at + 16, offset + delta)
    return bytes(buf)


def pytorch_config(inputs: tuple[str, ...] = ("image", "mask")) -> str:
    tensors = ", ".join(f'{{ name: "{n}" data_type: TYPE_FP32 dims: [ 2 ] }}' for n in inputs)
    return ('platform: "pytorch_libtorch"\nmax_batch_size: 0\n'
            f"input [ {tensors} ]\n"
            'output [ { name: "out" data_type: TYPE_FP32 dims: [ 2 ] } ]\n')



# --- peak memory of one `triton-packager config` run --------------------------------------------

_PROBE = textwrap.dedent("""
    import sys, time
    import packager
    from packager.cli import main
    import packager.configgen, google.protobuf  # the start every run pays

    def hwm():  # peak RSS in KiB; ru_maxrss would keep the forking parent's peak across exec
        with open("/proc/self/status") as fh:
            return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))

    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    before = hwm()
    t = time.perf_counter()
    code = main(["config", sys.argv[1]])
    print("RESULT", code, before, hwm(), time.perf_counter() - t, packager.__file__)
""")


def peak_rss(root: Path, packager_root: Path | None = None) -> tuple[int, int, int, float]:
    """(exit code, RSS at start, peak RSS, seconds) of `config ROOT` in a fresh interpreter,
    KiB. The start already holds the packager and protobuf; the peak is VmHWM, reset at start
    so the parent's size (kept across exec by ru_maxrss) does not hide the run's own."""
    here = Path(__file__).resolve().parent
    # cwd: `python -c` puts it first on sys.path, before PYTHONPATH's packager
    out = subprocess.run([sys.executable, "-c", _PROBE, str(root)], capture_output=True,
                         text=True, timeout=1800, check=False, cwd=root.parent,
                         env={**os.environ, "PYTHONPATH": str(packager_root or here.parent)})
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        return -1, -1, -1, 0.0
    _, code, before, after, secs, where = line.split()
    assert Path(where).resolve().is_relative_to((packager_root or here.parent).resolve()), where
    return int(code), int(before), int(after), float(secs)
