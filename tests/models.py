"""Model directories for tests: real tiny model files where a library here can make them."""

from __future__ import annotations

from pathlib import Path

PYTHON_MODEL = '''\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x * 2)]))
        return out
'''

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
    # Frameworks for these formats (TensorRT, TensorFlow, Caffe2, OpenVINO) are not installable
    # here; the packager never parses model bytes, so tests that only package them use marked
    # stand-in bytes. ONNX and Python models are real.
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
            "model.savedmodel/saved_model.pb": placeholder("SavedModel"),
            "model.savedmodel/variables/variables.index": placeholder("variables index"),
        },
        "tf_graphdef": lambda: {"model.graphdef": placeholder("GraphDef")},
        "onnx": lambda: {"model.onnx": onnx_add_model()},
        "pytorch": lambda: {"model.pt": placeholder("TorchScript")},
        "caffe2": lambda: {"model.netdef": placeholder("NetDef"),
                           "init_model.netdef": placeholder("init NetDef")},
        "openvino": lambda: {"model.xml": placeholder("OpenVINO IR"),
                             "model.bin": placeholder("OpenVINO weights")},
    }[key]()
    if with_config:
        if platform:
            files["config.pbtxt"] = GENERIC_CONFIG.format(name=name, platform=platform)
        else:
            files["config.pbtxt"] = GENERIC_CONFIG.format(name=name, platform="").replace(
                'platform: ""', 'backend: "openvino"')
    return files


def manifest(name: str, version: int | str) -> str:
    return f"name: {name}\nversion: {version}\n"

