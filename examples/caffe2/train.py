"""Write a Caffe2 NetDef pair (model.netdef + init_model.netdef) for y = x * 2.

Legacy: Caffe2 was folded into PyTorch and dropped from it (its Python API is gone from current
torch wheels), and Triton removed its Caffe2 backend in release 20.11. This needs an old
environment with `caffe2.python` (PyTorch <= 1.x built with Caffe2); elsewhere it stops with
exit code 3 and says so.
"""

import os
import sys

try:
    from caffe2.python import core, workspace  # type: ignore[import-not-found]
except ImportError:
    print("cannot write NetDef files here: caffe2.python is not importable. Caffe2 needs an "
          "old PyTorch (1.x with Caffe2) and a Triton release <= 20.10; convert the model to "
          "ONNX instead (see examples/onnx).", file=sys.stderr)
    sys.exit(3)

init = core.Net("init")
init.GivenTensorFill([], "scale", shape=[1], values=[2.0])
predict = core.Net("predict")
predict.Mul(["INPUT0", "scale"], "OUTPUT0", broadcast=1)
out = os.environ["ODAHUFLOW_OUTPUT_DIR"]
with open(os.path.join(out, "init_model.netdef"), "wb") as fh:
    fh.write(init.Proto().SerializeToString())
with open(os.path.join(out, "model.netdef"), "wb") as fh:
    fh.write(predict.Proto().SerializeToString())
workspace.ResetWorkspace()
print("wrote model.netdef and init_model.netdef")
