"""Fit the linear model `score` calls: y = w . x + b by least squares.

Writes linear/1/weights.json into $ODAHUFLOW_OUTPUT_DIR; the trainer adds data/ (both models'
config.pbtxt and model.py).
"""

import argparse
import json
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=512)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
true_w, true_b = np.array([0.8, -0.4, 0.2, 0.1]), -0.5
x = rng.normal(size=(args.samples, 4))
y = x @ true_w + true_b + rng.normal(scale=0.01, size=args.samples)
coef = np.linalg.lstsq(np.hstack([x, np.ones((args.samples, 1))]), y, rcond=None)[0]
print(f"fitted w={np.round(coef[:4], 3)} b={coef[4]:.3f}")

out = os.environ["ODAHUFLOW_OUTPUT_DIR"]
os.makedirs(os.path.join(out, "linear", "1"), exist_ok=True)
with open(os.path.join(out, "linear", "1", "weights.json"), "w") as fh:
    json.dump({"w": coef[:4].round(6).tolist(), "b": round(float(coef[4]), 6)}, fh)
