"""Fit a linear map R^4 -> R^2 with numpy and save it as OpenVINO IR (model.xml + model.bin),
built with OpenVINO's own graph API."""

import argparse
import os

import numpy as np
import openvino as ov
import openvino.opset13 as ops

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=512)
args = parser.parse_args()

rng = np.random.default_rng(1)
x = rng.normal(size=(args.samples, 4))
y = x @ np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]]) + 0.5
coef = np.linalg.lstsq(np.hstack([x, np.ones((args.samples, 1))]), y, rcond=None)[0]
w, b = coef[:4].astype(np.float32), coef[4].astype(np.float32)
print(f"fitted W={np.round(w, 3).tolist()} b={np.round(b, 3).tolist()}")

inp = ops.parameter([-1, 4], ov.Type.f32, name="INPUT0")
out = ops.add(ops.matmul(inp, ops.constant(w), False, False), ops.constant(b))
out.output(0).get_tensor().set_names({"OUTPUT0"})
model = ov.Model([out], [inp], "linear")
ov.save_model(model, os.path.join(os.environ["ODAHUFLOW_OUTPUT_DIR"], "model.xml"))
