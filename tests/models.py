"""Model directories for tests: real tiny model files where a library here can make them."""

from __future__ import annotations

from pathlib import Path


def python_model_source(input_name: str, *lines: str, modules: tuple[str, ...] = (),
                 initialize: tuple[str, ...] = ()) -> str:
    """A Python-backend model.py: `execute` reads `input_name` of each request `r` into `x`,
    then runs `lines` (which append its response to `out`). `modules` are imported besides
    numpy; `initialize` is the body of `initialize(self, args)`."""
    imports = "".join(f"import {m}\n" for m in sorted(("numpy as np", *modules)))
    init = ("    def initialize(self, args):\n" + "".join(f"        {line}\n" for line in initialize)
            + "\n") if initialize else ""
    body = "".join(f"            {line}\n" for line in lines)
    return (f"{imports}import triton_python_backend_utils as pb_utils\n\n\n"
            f"class TritonPythonModel:\n{init}    def execute(self, requests):\n"
            "        out = []\n        for r in requests:\n"
            f"            x = pb_utils.get_input_tensor_by_name(r, \"{input_name}\").as_numpy()\n"
            f"{body}        return out\n")


PYTHON_MODEL = python_model_source(
    "INPUT0", 'out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x * 2)]))')

PYTHON_CONFIG = '''\
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
'''

GENERIC_CONFIG = '''\
name: "{name}"
platform: "{platform}"
max_batch_size: 0
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
'''


def onnx_add_model() -> bytes:
    """A real ONNX graph: OUTPUT0 = INPUT0 + INPUT1, float32[4]."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("INPUT0", "INPUT1")]
    output = helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"])],
                              "add", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def onnx_external_data_files(width: int = 256) -> dict[str, bytes]:
    """The directory form: model.onnx/model.onnx (graph) + weights.bin (external data).
    OUTPUT0 = INPUT0 + W, float32, batch axis symbolic."""
    import tempfile

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(width, dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT0", "W"], ["OUTPUT0"])], "add-external",
        [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", width])],
        initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save_model(model, str(path), save_as_external_data=True, location="weights.bin",
                        size_threshold=0)
        return {f"model.onnx/{p.name}": p.read_bytes() for p in Path(tmp).iterdir()}


OPENVINO_XML = """<?xml version="1.0"?>
<net name="relu" version="11">
  <layers>
    <layer id="0" name="INPUT0" type="Parameter" version="opset1">
      <data shape="{shape}" element_type="f32" />
      <output><port id="0" precision="FP32" names="INPUT0">{dims}</port></output>
    </layer>
    <layer id="1" name="Relu_2" type="ReLU" version="opset1">
      <input><port id="0" precision="FP32">{dims}</port></input>
      <output><port id="1" precision="FP32" names="OUTPUT0">{dims}</port></output>
    </layer>
    <layer id="2" name="Result_3" type="Result" version="opset1">
      <input><port id="0" precision="FP32">{dims}</port></input>
    </layer>
  </layers>
  <edges>
    <edge from-layer="0" from-port="0" to-layer="1" to-port="0" />
    <edge from-layer="1" from-port="1" to-layer="2" to-port="0" />
  </edges>
</net>
"""


def openvino_relu_xml(dims: tuple[int, ...] = (4,)) -> bytes:
    """OpenVINO IR as openvino.save_model writes it: OUTPUT0 = relu(INPUT0), float32. The
    weights file is empty for this graph (no constants)."""
    shape = ",".join("?" if d < 0 else str(d) for d in dims)
    return OPENVINO_XML.format(
        shape=shape, dims="".join(f"<dim>{d}</dim>" for d in dims)).encode()


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def savedmodel_pb(inputs: dict[str, tuple[int, tuple[int, ...]]],
                  outputs: dict[str, tuple[int, tuple[int, ...]]], tag: str = "serve") -> bytes:
    """saved_model.pb bytes written field by field from TensorFlow's saved_model.proto
    (SavedModel.meta_graphs=2, MetaGraphDef.meta_info_def=1/.signature_def=5, MetaInfoDef.tags=4,
    SignatureDef.inputs=1/.outputs=2, TensorInfo.name=1/.dtype=2/.tensor_shape=3,
    TensorShapeProto.dim=2, Dim.size=1); values are (DataType enum, dims)."""
    def info(key: str, dtype: int, dims: tuple[int, ...]) -> bytes:
        shape = b"".join(_field(2, _field(1, d)) for d in dims)
        value = _field(1, f"{key}:0".encode()) + _field(2, dtype) + _field(3, shape)
        return _field(1, key.encode()) + _field(2, value)

    sig = b"".join(_field(1, info(k, *v)) for k, v in inputs.items())
    sig += b"".join(_field(2, info(k, *v)) for k, v in outputs.items())
    sig += _field(3, b"tensorflow/serving/predict")
    entry = _field(1, b"serving_default") + _field(2, sig)
    meta = _field(1, _field(4, tag.encode())) + _field(5, entry)
    return _field(1, 1) + _field(2, meta)


def write_tree(root: Path, files: dict[str, bytes | str | None]) -> Path:
    """files maps relative paths to content (None = directory)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return root


def placeholder(label: str) -> bytes:
    # Model files the packager does not parse (TensorRT plans, GraphDefs, NetDefs, weights) are
    # marked stand-in bytes. The files it reads -- model.onnx, model.xml, saved_model.pb -- are
    # real; a stand-in model.pt is noted as unreadable, never guessed at.
    return f"stand-in {label} bytes for packaging tests\n".encode()


def backend_files(key: str, name: str, with_config: bool) -> dict[str, bytes | str | None]:
    files: dict[str, bytes | str | None]
    if key == "python":
        files = {"model.py": PYTHON_MODEL}
        if with_config:
            files["config.pbtxt"] = PYTHON_CONFIG.format(name=name)
        return files
    platform = {
        "tensorrt": "tensorrt_plan", "tf_savedmodel": "tensorflow_savedmodel",
        "tf_graphdef": "tensorflow_graphdef", "onnx": "onnxruntime_onnx",
        "pytorch": "pytorch_libtorch", "caffe2": "caffe2_netdef", "openvino": "",
    }[key]
    files = {
        "tensorrt": lambda: {"model.plan": placeholder("TensorRT plan")},
        "tf_savedmodel": lambda: {
            "model.savedmodel/saved_model.pb": savedmodel_pb({"INPUT0": (1, (4,))},
                                                             {"OUTPUT0": (1, (4,))}),
            "model.savedmodel/variables/variables.index": placeholder("variables index"),
        },
        "tf_graphdef": lambda: {"model.graphdef": placeholder("GraphDef")},
        "onnx": lambda: {"model.onnx": onnx_add_model()},
        "pytorch": lambda: {"model.pt": placeholder("TorchScript")},
        "caffe2": lambda: {"model.netdef": placeholder("NetDef"),
                           "init_model.netdef": placeholder("init NetDef")},
        "openvino": lambda: {"model.xml": openvino_relu_xml(), "model.bin": b""},
    }[key]()
    if with_config:
        if key == "onnx":  # the real graph adds two inputs; the config must name both
            files["config.pbtxt"] = GENERIC_CONFIG.format(name=name, platform=platform).replace(
                '{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] }',
                '{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },\n'
                '        { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] }')
        elif platform:
            files["config.pbtxt"] = GENERIC_CONFIG.format(name=name, platform=platform)
        else:
            files["config.pbtxt"] = GENERIC_CONFIG.format(name=name, platform="").replace(
                'platform: ""', 'backend: "openvino"')
    return files


def manifest(name: str, version: int | str) -> str:
    return f"name: {name}\nversion: {version}\n"

