"""Fit a small PyTorch model (a linear map R^4 -> R^2) and convert it with OpenVINO's own
converter, openvino.convert_model, then save it as IR (model.xml + model.bin).

The input shape is given as [?, 4] (a dynamic batch axis), so the packager's generated
config.pbtxt batches: max_batch_size 8 (or --max-batch-size N), dims [4] and [2].

It also writes samples.npz: a few inputs and the outputs the saved IR gives for them (run by
OpenVINO itself: save_model compresses the weights to FP16, so torch's answers differ slightly),
which `triton-packager verify` sends to the served image and compares (see the README).
"""

import argparse
import os

import numpy as np
import openvino as ov
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=512)
parser.add_argument("--epochs", type=int, default=300)
args = parser.parse_args()

torch.manual_seed(1)
x = torch.randn(args.samples, 4)
y = x @ torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]]) + 0.5

model = torch.nn.Sequential(torch.nn.Linear(4, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
for _ in range(args.epochs):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
print(f"trained: mse={loss.item():.5f}")

model.eval()
ov_model = ov.convert_model(model, example_input=torch.zeros(1, 4),
                            input=[(ov.PartialShape([-1, 4]), ov.Type.f32)])
# Triton's OpenVINO backend serves tensors by these names.
ov_model.inputs[0].get_tensor().set_names({"INPUT0"})
ov_model.outputs[0].get_tensor().set_names({"OUTPUT0"})
out = os.environ["ODAHUFLOW_OUTPUT_DIR"]
ov.save_model(ov_model, os.path.join(out, "model.xml"))

# Samples for `verify`: whole requests (batch 1 and batch 3) and the saved model's answers.
compiled = ov.Core().compile_model(os.path.join(out, "model.xml"), "CPU")
rng = np.random.default_rng(1)
samples = {}
for i, batch in enumerate((1, 3)):
    inputs = rng.standard_normal((batch, 4)).astype(np.float32)
    samples[f"input.INPUT0.{i}"] = inputs
    samples[f"output.OUTPUT0.{i}"] = compiled({"INPUT0": inputs})[compiled.output("OUTPUT0")]
np.savez(os.path.join(out, "samples.npz"), **samples)
