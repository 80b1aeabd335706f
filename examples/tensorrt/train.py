"""Export a linear model to ONNX, then build a TensorRT engine (model.plan) from it.

A plan is specific to the GPU and TensorRT version that built it, so it can only be made on a
machine with both; elsewhere this stops with exit code 3 and says so.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def fail(message: str) -> None:
    print(f"cannot build model.plan here: {message}", file=sys.stderr)
    print("TensorRT plans must be built on a machine with an NVIDIA GPU and the TensorRT "
          "version of the target Triton image; use examples/onnx on a CPU-only machine.",
          file=sys.stderr)
    sys.exit(3)


w = np.array([[1.0, -1.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["INPUT0", "W"], ["OUTPUT0"])], "linear",
    [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", 2])],
    initializer=[numpy_helper.from_array(w, "W")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
onnx_bytes = model.SerializeToString()

if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi"],
                                                         capture_output=True).returncode != 0:
    fail("no NVIDIA GPU (nvidia-smi is missing or failed)")
try:
    import tensorrt as trt
except ImportError:
    fail("the tensorrt Python package is not installed")

logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
network = builder.create_network(0)
parser = trt.OnnxParser(network, logger)
if not parser.parse(onnx_bytes):
    fail("TensorRT could not parse the ONNX graph")
config = builder.create_builder_config()
profile = builder.create_optimization_profile()
profile.set_shape("INPUT0", (1, 4), (8, 4), (16, 4))
config.add_optimization_profile(profile)
plan = builder.build_serialized_network(network, config)
with open(os.path.join(os.environ["ODAHUFLOW_OUTPUT_DIR"], "model.plan"), "wb") as fh:
    fh.write(plan)
print("built model.plan")
