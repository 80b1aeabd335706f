"""Fit a small PyTorch model (a linear map R^4 -> R^2) and export it with torch.onnx.export.

The batch axis is exported as dynamic ("batch"), so the packager's generated config.pbtxt
batches: max_batch_size 8 (or --max-batch-size N), dims [4] and [2]. No config.pbtxt is shipped
in data/: the packager writes a complete one from model.onnx.

It also writes samples.npz: a few inputs and the outputs the model gave for them, which
`triton-packager verify` sends to the served image and compares (see the README).
"""

import argparse
import os
import warnings

import numpy as np
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=512)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=300)
args = parser.parse_args()

torch.manual_seed(args.seed)
true_w = torch.tensor([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0], [2.0, 1.0]])
true_b = torch.tensor([0.25, -1.0])
x = torch.randn(args.samples, 4)
y = x @ true_w + true_b + 0.01 * torch.randn(args.samples, 2)

model = torch.nn.Sequential(torch.nn.Linear(4, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
for _ in range(args.epochs):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
print(f"trained: mse={loss.item():.5f}")

model.eval()
# The TorchScript-based exporter (dynamo=False) needs no onnxscript; torch warns that the
# torch.export-based one is the default now. Its output is a standard ONNX graph either way.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    torch.onnx.export(
        model,
        (torch.zeros(1, 4),),
        os.path.join(os.environ["ODAHUFLOW_OUTPUT_DIR"], "model.onnx"),
        input_names=["INPUT0"],
        output_names=["OUTPUT0"],
        dynamic_axes={"INPUT0": {0: "batch"}, "OUTPUT0": {0: "batch"}},
        opset_version=17,  # readable by the ONNX Runtime of every supported Triton release
        dynamo=False,
    )

# Samples for `verify`: whole requests (batch 1 and batch 3) and the model's answers to them.
rng = np.random.default_rng(args.seed)
samples = {}
for i, batch in enumerate((1, 3)):
    inputs = rng.standard_normal((batch, 4)).astype(np.float32)
    with torch.no_grad():
        samples[f"input.INPUT0.{i}"] = inputs
        samples[f"output.OUTPUT0.{i}"] = model(torch.from_numpy(inputs)).numpy()
np.savez(os.path.join(os.environ["ODAHUFLOW_OUTPUT_DIR"], "samples.npz"), **samples)
