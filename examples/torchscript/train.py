"""Train a tiny MLP (4 -> 8 -> 3, a softmax classifier of which quadrant-ish region x lies in)
on the CPU and save it as TorchScript (model.pt)."""

import argparse
import os

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=200)
parser.add_argument("--lr", type=float, default=0.05)
args = parser.parse_args()

torch.manual_seed(0)
x = torch.randn(512, 4)
labels = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 0, 1 or 2


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                        torch.nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.body(x), dim=-1)


model = MLP()
opt = torch.optim.Adam(model.parameters(), lr=args.lr)
for _ in range(args.epochs):
    opt.zero_grad()
    loss = torch.nn.functional.nll_loss(torch.log(model(x) + 1e-9), labels)
    loss.backward()
    opt.step()
accuracy = (model(x).argmax(dim=-1) == labels).float().mean().item()
print(f"loss {loss.item():.4f} accuracy {accuracy:.3f}")
torch.jit.script(model.eval()).save(os.path.join(os.environ["ODAHUFLOW_OUTPUT_DIR"], "model.pt"))
