"""Fit a small PyTorch model (a linear map R^4 -> R^2) and convert it with OpenVINO's own
converter, openvino.convert_model, then save it as IR (model.xml + model.bin).

The input shape is given as [?, 4] (a dynamic batch axis), so the packager's generated
config.pbtxt batches: max_batch_size 8 (or --max-batch-size N), dims [4] and [2].
"""

import argparse
import os

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
ov.save_model(ov_model, os.path.join(os.environ["ODAHUFLOW_OUTPUT_DIR"], "model.xml"))
