"""Fit a linear map R^4 -> R^2 by least squares and export it as ONNX (MatMul + Add).

The batch dimension is dynamic, so config.pbtxt sets max_batch_size: 8.
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=512)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
true_w = np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0], [2.0, 1.0]])
true_b = np.array([0.25, -1.0])
x = rng.normal(size=(args.samples, 4))
y = x @ true_w + true_b + rng.normal(scale=0.01, size=(args.samples, 2))
coef = np.linalg.lstsq(np.hstack([x, np.ones((args.samples, 1))]), y, rcond=None)[0]
w, b = coef[:4].astype(np.float32), coef[4].astype(np.float32)
print(f"fitted W={np.round(w, 3).tolist()} b={np.round(b, 3).tolist()}")

graph = helper.make_graph(
    [helper.make_node("MatMul", ["INPUT0", "W"], ["XW"]),
     helper.make_node("Add", ["XW", "B"], ["OUTPUT0"])],
    "linear",
    [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["batch", 2])],
    initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8  # readable by the ONNX Runtime of every supported Triton release
onnx.checker.check_model(model)
onnx.save(model, os.path.join(os.environ["ODAHUFLOW_OUTPUT_DIR"], "model.onnx"))
